"""`redox-emulator push | verify-destination | queue` against a running emulator, as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from emulator.server import Server
from emulator.settings import WEBHOOK_ID
from tests.receiver import Receiver

CLI = [sys.executable, "-m", "emulator"]


def run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--url", server.url], capture_output=True, text=True, timeout=60)


def test_push_a_file_with_overrides(tmp_path: Path, hook: Receiver, webhook_server: Server) -> None:
    payload = tmp_path / "arrival.json"
    payload.write_text(json.dumps({"Meta": {"Test": True}, "Patient": {"Identifiers": [{"ID": "1", "IDType": "MR"}]}}))
    result = run(webhook_server, "push", "PatientAdmin.Arrival", "--file", str(payload), "--count", "2",
                 "--set", "Patient.Demographics.FirstName=Ann", "--set", "Meta.Test=false")
    assert result.returncode == 0, result.stderr
    assert "2 message(s) queued" in result.stderr
    got = hook.wait_for(2)
    assert [g.log_id for g in got] == [line.split()[0] for line in result.stdout.splitlines()]
    body = got[0].json()
    assert body["Meta"]["DataModel"] == "PatientAdmin" and body["Meta"]["EventType"] == "Arrival"
    assert body["Meta"]["Test"] is False
    assert body["Patient"]["Demographics"]["FirstName"] == "Ann"


def test_push_mistakes_are_one_line_errors(tmp_path: Path, webhook_server: Server) -> None:
    result = run(webhook_server, "push", "PatientAdmin")
    assert result.returncode == 2 and "expected DataModel.EventType" in result.stderr
    (tmp_path / "x.json").write_text("{}")
    result = run(webhook_server, "push", "PatientAdmin.Nope", "--file", str(tmp_path / "x.json"))
    assert result.returncode == 1 and "unknown event type PatientAdmin.Nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_emulator_running_is_said_plainly() -> None:
    with Receiver() as gone:
        url = gone.url.rsplit("/", 1)[0]
    result = subprocess.run([*CLI, "queue", "list", "--url", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"no emulator at {url}" in result.stderr


def test_verify_destination_exit_status_follows_the_verdict(hook: Receiver, webhook_server: Server) -> None:
    result = run(webhook_server, "verify-destination", WEBHOOK_ID, "--form", "get")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("verified (GET)")
    hook.echo_challenge = False
    result = run(webhook_server, "verify-destination", WEBHOOK_ID)
    assert result.returncode == 1
    assert "NOT verified (POST)" in result.stdout and "without the challenge" in result.stdout


def test_queue_pause_list_purge_resume(hook: Receiver, webhook_server: Server, api: httpx.Client) -> None:
    assert run(webhook_server, "queue", "pause", WEBHOOK_ID).returncode == 0
    for _ in range(2):
        api.post("/__emulator/push", json={"DataModel": "Results", "EventType": "New", "payload": {}})
    listed = run(webhook_server, "queue", "list", WEBHOOK_ID)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2 and "Results.New" in listed.stdout
    overview = run(webhook_server, "queue", "list")
    assert "2 pending  paused" in overview.stdout
    purged = run(webhook_server, "queue", "purge", WEBHOOK_ID)
    assert "purged 2 message(s)" in purged.stdout
    assert "running" in run(webhook_server, "queue", "resume", WEBHOOK_ID).stdout
    assert hook.deliveries() == []


def test_push_an_event_the_ehr_builds(hook: Receiver, webhook_server: Server) -> None:
    mrn = next(webhook_server.sandbox.ehr.state.patients.active()).identifiers[0]["ID"]
    result = run(webhook_server, "push", "PatientAdmin.NewPatient", "--patient", mrn)
    assert result.returncode == 0, result.stderr
    [got] = hook.wait_for(1)
    assert got.json()["Patient"]["Identifiers"][0]["ID"] == mrn
    assert webhook_server.sandbox.contracts.problems(got.json(), "PatientAdmin", "NewPatient") == []
