"""`redox-emulator serve` as a user runs it: a real process, real signals, the SQLite file afterwards."""

from __future__ import annotations

import os
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen([*CLI, "serve", "--port", str(port), *args], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):  # up to 20 s on a loaded CI machine
        try:
            if httpx.get(f"{url}/__emulator/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"serve did not come up: {process.communicate()[0]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_every_answered_request_is_in_the_store_after_a_graceful_stop(tmp_path: Path, sig: signal.Signals) -> None:
    process, url = start(tmp_path)  # default db: .emulator/emulator.db under the working directory
    with httpx.Client(base_url=url) as client:
        r = client.post("/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"})
        client.headers["Authorization"] = f"Bearer {r.json()['accessToken']}"
        ids = [client.post("/endpoint", json=event("PatientAdmin", "NewPatient")).json()["Meta"]["Logs"][0]["ID"]
               for _ in range(300)]
    process.send_signal(sig)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "Traceback" not in output
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
