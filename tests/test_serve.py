"""`redox-emulator serve` as a user runs it: a real process, real signals, the SQLite file afterwards."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import event

CLI = [sys.executable, "-m", "emulator"]


# The banner (printed once the port is bound) names the URL; uvicorn's start-up line says it is served.
RUNNING = re.compile(r"Redox emulator \S+ on (http://127\.0\.0\.1:\d+).*?Application startup complete", re.S)


def output(tmp_path: Path) -> str:
    """What `serve` processes started by `start` in `tmp_path` printed so far."""
    return (tmp_path / "serve.log").read_text()


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """`redox-emulator serve` on a port it picks itself (port 0), once it says where it listens.

    Not a port found free beforehand: another test's server could take it before this process binds
    it, and the health check would then be answered by that server. Output goes to serve.log in
    `tmp_path` (read it with `output`), appended across restarts.
    """
    log = tmp_path / "serve.log"
    seen = log.stat().st_size if log.exists() else 0
    with log.open("a") as sink:
        process = subprocess.Popen([*CLI, "serve", "--port", "0", *args], cwd=tmp_path, text=True,
                                   stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 30  # a loaded CI machine takes seconds to import and start
    while (found := RUNNING.search(output(tmp_path)[seen:])) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"serve did not come up: {output(tmp_path)[seen:]}")
        time.sleep(0.05)
    url = found.group(1)
    assert httpx.get(f"{url}/__emulator/health").status_code == 200
    return process, url


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_every_answered_request_is_in_the_store_after_a_graceful_stop(tmp_path: Path, sig: signal.Signals) -> None:
    process, url = start(tmp_path)  # default db: .emulator/emulator.db under the working directory
    with httpx.Client(base_url=url) as client:
        r = client.post("/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"})
        client.headers["Authorization"] = f"Bearer {r.json()['accessToken']}"
        ids = [client.post("/endpoint", json=event("PatientAdmin", "NewPatient")).json()["Meta"]["Logs"][0]["ID"]
               for _ in range(300)]
    process.send_signal(sig)
    process.wait(timeout=20)
    said = output(tmp_path)
    assert process.returncode == 0, said
    assert "Traceback" not in said
    db = sqlite3.connect(tmp_path / ".emulator" / "emulator.db")
    stored = {row[0] for row in db.execute("SELECT id FROM logs")}
    assert stored == set(ids)
    assert db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0] == 301


def test_environment_variables_configure_serve(tmp_path: Path) -> None:
    process, url = start(tmp_path, "--db", ":memory:", env={"REDOX_EMULATOR_OAUTH_TOKEN_LIFETIME": "42"})
    try:
        r = httpx.post(f"{url}/v2/auth/token", data={"grant_type": "client_credentials",
                                                      "client_id": "sandbox-client",
                                                      "client_secret": "sandbox-client-secret"})
        assert r.json()["expires_in"] == 42
        assert not (tmp_path / ".emulator").exists()  # :memory: leaves nothing on disk
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_a_bad_config_file_exits_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("prot: 1\n")
    result = subprocess.run([*CLI, "serve", "--config", "bad.yaml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "bad.yaml: unknown setting 'prot'. Did you mean \"port\"?" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_log_store_of_another_layout_exits_with_a_message(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "old.db").execute("CREATE TABLE logs (a)").connection.commit()
    result = subprocess.run([*CLI, "serve", "--db", "old.db"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "old.db holds logs in another layout" in result.stderr and "Traceback" not in result.stderr


def test_port_0_banner_names_the_port_served(tmp_path: Path) -> None:
    """The banner's URL is where the emulator answers, the port the kernel chose for --port 0."""
    process, _ = start(tmp_path, "--db", ":memory:")
    try:
        banner = re.search(r"Redox emulator \S+ on (http://127\.0\.0\.1:(\d+))", output(tmp_path))
        assert banner is not None and banner.group(2) != "0", output(tmp_path)
        assert httpx.get(f"{banner.group(1)}/__emulator/health").status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_a_port_in_use_exits_with_a_message(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([*CLI, "serve", "--port", str(port), "--db", ":memory:"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
