"""The emulator as another project installs it: the sdist and the wheel built from it, installed into a
fresh virtual environment in a folder outside the clone, run from a folder of the user's own.

`make test` otherwise runs from the clone through an editable install, which reads contracts/ and
scenarios/ from the working tree and so never sees what the wheel leaves out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REDOX_EMR
from tests.test_serve import RUNNING

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "token-revocation"  # a library scenario the user's folder does not have
BUILD_TIMEOUT = 600  # pip downloads the dependencies; a cold cache on a slow mirror takes minutes


def run(*args: str | Path, cwd: Path, timeout: float = BUILD_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "PYTEST_"))}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(dist folder with the sdist and the wheel, the fresh venv's bin/) — built from a copy of the tracked
    files, so nothing the clone has lying around (an egg-info, a build/) reaches the artefacts."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    files = run("git", "ls-files", "-z", cwd=ROOT).stdout.split("\0")
    for name in filter(None, files):
        origin, copy = ROOT / name, source / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            copy.symlink_to(os.readlink(origin))
        elif origin.is_file():
            copy.write_bytes(origin.read_bytes())
    dist = base / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, source, cwd=base)  # the sdist, then the wheel from it
    venv = base / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=base)
    wheel = next(dist.glob("*.whl"))
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, "pytest", cwd=base)
    yield dist, venv / "bin"


def site_files(bin_dir: Path) -> set[Path]:
    packages = next((bin_dir.parent / "lib").glob("python*/site-packages"))
    return {p for p in packages.rglob("*") if "__pycache__" not in p.parts}


def request(url: str, body: object | None = None, token: str | None = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def serve(bin_dir: Path, folder: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    log = folder / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen([str(bin_dir / "redox-emulator"), "serve", "--port", "0", *args], cwd=folder,
                                   text=True, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while (found := RUNNING.search(log.read_text())) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"the installed emulator did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return process, found.group(1)


def test_the_artefacts_carry_the_contracts_the_scenario_library_and_the_page(installed: tuple[Path, Path]) -> None:
    dist, _ = installed
    wheel = set(zipfile.ZipFile(next(dist.glob("*.whl"))).namelist())
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        in_sdist = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in ("contracts/schemas/PatientAdmin.Arrival.json", "contracts/suites/auth.yaml",
                   "contracts/probe-output.schema.json", "scenarios/token-expiry.yaml"):
        assert f"emulator/_data/{needed}" in wheel, needed
        assert f"emulator/_data/{needed}" in in_sdist, needed  # as files: the wheel is built from the sdist
    assert "emulator/web/ui/index.html" in wheel
    assert "emulator/scenarios/schema.json" in wheel
    schemas = [n for n in wheel if n.startswith("emulator/_data/contracts/schemas/")]
    assert len(schemas) == len(list((ROOT / "contracts" / "schemas").glob("*.json")))


def test_the_installed_emulator_serves_validates_runs_library_scenarios_and_the_page(
        installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = installed
    before = site_files(bin_dir)
    listed = run(bin_dir / "redox-emulator", "scenarios", "list", cwd=tmp_path, timeout=120).stdout
    assert SCENARIO in listed and "duplicate-patient-matches" in listed
    process, url = serve(bin_dir, tmp_path, "--scenario", "token-expiry")
    try:
        status, body = request(f"{url}/__emulator/scenarios")
        assert [a["name"] for a in body["payload"]["active"]] == ["token-expiry"]  # type: ignore[index]
        assert SCENARIO in body["payload"]["library"]  # type: ignore[index]
        status, body = request(f"{url}/__emulator/scenarios", {"name": SCENARIO})
        assert status == 200, body
        form = b"grant_type=client_credentials&client_id=sandbox-client&client_secret=sandbox-client-secret"
        with urllib.request.urlopen(f"{url}/v2/auth/token", form, timeout=30) as answer:
            token = json.loads(answer.read())["access_token"]
        invalid = {"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival", "Test": True,
                            "Destinations": [{"ID": REDOX_EMR}]}}
        status, body = request(f"{url}/endpoint", invalid, token)
        assert status == 400, body
        assert "Patient" in json.dumps(body["Meta"]["Errors"])  # type: ignore[index]  # the contract names it
        with urllib.request.urlopen(f"{url}/__emulator/ui", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert (tmp_path / ".emulator" / "emulator.db").is_file()  # the documented default store, in the cwd
    assert site_files(bin_dir) == before  # nothing written into site-packages


def test_a_project_of_its_own_uses_the_pytest_plugin(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = installed
    (tmp_path / "test_my_app.py").write_text(textwrap.dedent(f"""
        import json, urllib.error, urllib.request
        import pytest

        def send(emulator, mrn):
            body = {{"Meta": {{"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": True,
                              "Destinations": [{{"ID": emulator.destination_id}}]}},
                    "Patient": {{"Identifiers": [{{"ID": mrn, "IDType": "MR"}}],
                                "Demographics": {{"FirstName": "A", "LastName": "B", "DOB": "1990-01-01"}}}}}}
            sent = urllib.request.Request(emulator.url + "/endpoint", json.dumps(body).encode(),
                                          {{"Content-Type": "application/json",
                                            "Authorization": "Bearer " + emulator.token()}})
            try:
                return urllib.request.urlopen(sent, timeout=30).status
            except urllib.error.HTTPError as error:
                return error.code

        def test_sends_a_patient(redox_emulator):
            assert send(redox_emulator, "MY-1") == 200
            assert len(redox_emulator.logs(dataModel="PatientAdmin")) == 1

        @pytest.mark.redox_scenario("{SCENARIO}")
        def test_a_library_scenario_by_name(redox_emulator):
            assert send(redox_emulator, "MY-2") == 200
            assert send(redox_emulator, "MY-3") == 401  # the scenario revokes the token on the 2nd request
    """))
    result = subprocess.run([str(bin_dir / "pytest"), "-p", "no:cacheprovider", "-q"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
