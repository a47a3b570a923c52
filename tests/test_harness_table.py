"""The clients x suites table: the three correct reference clients keep every contract (the Perl one has no
FHIR mode: it declares `apis: [data-model]` and the fhir suite is skipped for it, not broken); each faulty
Python client breaks exactly the contracts of its fault, in both APIs, and the report names them.

Run alone with `-s` to print the table (`python -m pytest tests/test_harness_table.py -s`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from emulator.harness import client as client_module
from emulator.harness import suites
from emulator.harness.runner import Harness, RunResult

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "tests" / "clients"
SCRIPTS = {"python3": "redox_client.py", "node": "redox_client.js", "perl": "redox_client.pl"}
PERL_MODULES = ["HTTP::Tiny", "JSON::PP", "IO::Socket::INET", "IO::Select", "POSIX", "Fcntl", "File::Spec",
                "Time::HiRes", "Time::Local"]  # what redox_client.pl uses: all ship with Debian's perl
APIS = {"python3": "[data-model, fhir]", "node": "[data-model, fhir]", "perl": "[data-model]"}
BROKEN = {  # fault -> the contracts (scenarios) it breaks
    "no-reauth": {"token-expiry", "token-revocation", "fhir-token-expiry"},
    "expire-mid-batch": {"token-expiry", "fhir-token-expiry"},
    "retry-4xx": {"payload-too-large", "unsupported-event-type", "order-rejection", "fhir-writeback-rejected"},
    "no-test-flag": {"send-basics"},
    "double-process": {"redelivery", "fhir-notification-redelivery"},
    "no-token-check": {"wrong-verification-token"},
    "bad-handshake": {"webhook-handshake"},
    "first-match": {"duplicate-patient-matches", "fhir-duplicate-match"},
    "ignore-rejection": {"order-rejection", "fhir-writeback-rejected"},
    "slow-ack": {"webhook-ack"},
    "retry-5xx": {"sync-timeout", "fhir-search-timeout"},
    "first-page-only": {"fhir-paging", "fhir-token-expiry"},
    "restart-search": {"fhir-token-expiry"},
}


def describe(tmp: Path, command: str, fault: str | None) -> Path:
    file = tmp / f"{fault or 'correct'}-{command.split()[0]}.yaml"
    script = CLIENTS / SCRIPTS[command]
    run = f"{command} {script}"
    file.write_text(f"send: {run} send\nserve: {run} serve --port {{port}}\n"
                    f"webhook_url: http://127.0.0.1:{{port}}/redox\nready_url: http://127.0.0.1:{{port}}/health\n"
                    f"probe: {run} probe\ntimeout: 4\nenv: {{CLIENT_FAULT: '{fault or ''}'}}\n"
                    f"apis: {APIS[command.split()[0]]}\n")
    return file


def run_all(tmp: Path, command: str, fault: str | None) -> list[RunResult]:
    chosen = suites.resolve([], ROOT / "scenarios", ROOT / "contracts" / "suites")
    harness = Harness(client_module.load(describe(tmp, command, fault)), jobs=3)
    return harness.run([p for _, p in chosen])


def broken_by(tmp: Path, command: str, fault: str | None) -> dict[str, list[str]]:
    """scenario -> the names of its broken expectations, for one client over the whole library."""
    return {r.scenario: [v.expectation for v in r.failed] or [f"error: {r.error}"]
            for r in run_all(tmp, command, fault) if not r.ok}


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_node_reference_client_keeps_every_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert broken_by(tmp_path, "node", None) == {}


def perl_with_core_modules() -> bool:
    """perl-base alone lacks HTTP::Tiny and JSON::PP: Debian's `perl` package brings them."""
    if shutil.which("perl") is None:
        return False
    check = subprocess.run(["perl", *(f"-M{m}" for m in PERL_MODULES), "-e", "1"], capture_output=True, check=False)
    return check.returncode == 0


@pytest.mark.skipif(not perl_with_core_modules(), reason="perl or its core modules (Debian's perl package) missing")
def test_the_perl_reference_client_keeps_every_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    results = run_all(tmp_path, "perl", None)
    assert {r.scenario: r.failed or r.error for r in results if not r.ok} == {}
    fhir = set(suites.load_all(ROOT / "contracts" / "suites")["fhir"].scenarios)
    assert {r.scenario for r in results if r.skipped} == fhir  # skipped as it declares, every other one run
    assert all(r.verdicts for r in results if not r.skipped)


@pytest.mark.parametrize("fault", [None, *BROKEN])
def test_each_python_client_breaks_exactly_its_contracts(fault: str | None, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    broken = broken_by(tmp_path, "python3", fault)
    print(f"\n{fault or 'correct'}: {sorted(broken)}  {broken}")
    assert set(broken) == BROKEN.get(fault or "", set()), broken
    assert all(not names[0].startswith("error") for names in broken.values()), broken
