"""`redox-emulator record`: real processes and sockets. A session through the recorder against an
emulator running a library scenario, replayed from the written file by a fresh emulator with no
upstream: same statuses and bodies (log IDs and timestamps aside), no secret in the file, and the
harness suite that passes against the library scenario passes against the recording."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulator.harness import client as client_module
from emulator.harness.runner import Harness
from emulator.scenarios import checker
from tests.receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "emulator"]
# The banner (`serve` or `record`, printed once the port is bound) names the URL; uvicorn's start-up line
# says it is served.
RUNNING = re.compile(r"(?:Redox emulator \S+|Recording \S+) on (http://127\.0\.0\.1:\d+)"
                     r".*?Application startup complete", re.S)
DESTINATION = "af394f14-b34a-464f-8d24-895f370af4c9"
VOLATILE = ("Logs", "Message", "Transmission", "EventDateTime")


class Process:
    """`python -m emulator ARGS` on a port it picks (port 0), once it says where it listens."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.log = tmp / f"{name}.log"
        with self.log.open("w") as sink:
            self.process = subprocess.Popen([*CLI, *args, "--port", "0", "--db", ":memory:"], cwd=tmp, text=True,
                                            stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while (found := RUNNING.search(self.output())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{name} did not come up: {self.output()}")
            time.sleep(0.05)
        self.url = found.group(1)

    def output(self) -> str:
        return self.log.read_text()

    def wait(self) -> int:
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(name: str, *args: str) -> Process:
        started.append(Process(tmp_path, name, *args))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def normal(body: Any) -> Any:
    """A body without what differs on every answer: log and message IDs, timestamps, tokens."""
    if isinstance(body, dict):
        if "Meta" in body and isinstance(body["Meta"], dict):
            meta = {k: v for k, v in body["Meta"].items() if k not in VOLATILE}
            if "Errors" in meta:
                meta["Errors"] = [{k: v for k, v in e.items() if k != "ID"} for e in meta["Errors"]]
            body = {**body, "Meta": meta}
        if {"accessToken", "access_token"} & set(body):  # the emulator's own tokens on replay
            return sorted(body)
    return body


def event(model: str, event_type: str, **sections: Any) -> dict[str, Any]:
    return {"Meta": {"DataModel": model, "EventType": event_type, "Test": True,
                     "Destinations": [{"ID": DESTINATION}]}, **sections}


def session(base: str, expire: Callable[[], None], secrets: set[str]) -> list[tuple[int, Any]]:
    """What a client does: every auth flow, sends, searches (ambiguous ones), mistakes, a token that dies."""
    seen: list[tuple[int, Any]] = []

    def keep(r: httpx.Response) -> httpx.Response:
        try:
            seen.append((r.status_code, normal(r.json())))
        except ValueError:
            seen.append((r.status_code, r.text))
        return r

    with httpx.Client(base_url=base, timeout=30) as http:
        legacy = keep(http.post("/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"}))
        refreshed = keep(http.post("/auth/refreshToken", json={"apiKey": "sandbox-api-key",
                                                               "refreshToken": legacy.json()["refreshToken"]}))
        keep(http.post("/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "wrong"}))
        oauth = keep(http.post("/v2/auth/token", data={"grant_type": "client_credentials",
                                                       "client_id": "sandbox-client",
                                                       "client_secret": "sandbox-client-secret"}))
        for answer in (legacy.json(), refreshed.json()):
            secrets.update((answer["accessToken"], answer["refreshToken"]))
        token = oauth.json()["access_token"]
        secrets.add(token)
        auth = {"Authorization": f"Bearer {token}"}
        for i in (1, 2):
            keep(http.post("/endpoint", headers=auth, json=event("PatientAdmin", "NewPatient", Patient={
                "Identifiers": [{"ID": f"REC-{i}", "IDType": "MR"}],
                "Demographics": {"FirstName": "Rec", "LastName": f"Patient{i}", "DOB": "1990-01-0{i}"}})))
        search = event("PatientSearch", "Query", Patient={
            "Demographics": {"FirstName": "Jordan", "LastName": "Rivera", "DOB": "1979-05-04"}})
        keep(http.post("/query", headers=auth, json=search))
        keep(http.post("/endpoint", headers=auth, json=event("PatientSearch", "Query", Patient={
            "Identifiers": [{"ID": "0000009999", "IDType": "MR"}]})))
        keep(http.post("/endpoint", headers=auth, json=event("PatientSearch", "Query", Patient={})))  # too few
        keep(http.post("/endpoint", headers={**auth, "Content-Type": "application/json"}, content=b'{"Meta": '))
        keep(http.post("/endpoint", headers=auth, json=event("Order", "New", Patient={
            "Identifiers": [{"ID": "0000000001", "IDType": "MR"}]},
            Order={"ID": "ORD-1", "Procedure": {"Code": "85025", "Codeset": "CPT", "Description": "CBC"}})))
        expire()  # the token dies: a 401, a new token, the same request again
        update = event("PatientAdmin", "PatientUpdate", Patient={
            "Identifiers": [{"ID": "REC-1", "IDType": "MR"}],
            "Demographics": {"FirstName": "Rec", "LastName": "Patient1", "DOB": "1990-01-01"}})
        keep(http.post("/endpoint", headers=auth, json=update))
        again = keep(http.post("/v2/auth/token", data={"grant_type": "client_credentials",
                                                       "client_id": "sandbox-client",
                                                       "client_secret": "sandbox-client-secret"}))
        secrets.add(again.json()["access_token"])
        keep(http.post("/endpoint", headers={"Authorization": f"Bearer {again.json()['access_token']}"}, json=update))
        keep(http.post("/query", headers={"Authorization": f"Bearer {again.json()['access_token']}"}, json=search))
    return seen


def test_a_recorded_session_replays_the_same_answers_and_keeps_no_secret(
        tmp_path: Path, processes: Callable[..., Process]) -> None:
    upstream = processes("upstream", "serve", "--scenario", "duplicate-patient-matches")
    out = tmp_path / "scenarios" / "recorded-dupes.yaml"
    recorder = processes("recorder", "record", "--upstream", upstream.url, "--out", str(out))
    secrets = {"sandbox-secret", "sandbox-client-secret", "sandbox-api-key"}

    def expire_upstream() -> None:
        httpx.post(f"{upstream.url}/__emulator/clock", json={"advance": 301})

    recorded = session(recorder.url, expire_upstream, secrets)
    stopped = httpx.post(f"{recorder.url}/__emulator/record/stop").json()["payload"]
    assert recorder.wait() == 0, recorder.output()
    assert stopped["out"] == str(out) and out.exists()
    assert "Traceback" not in recorder.output()
    assert [s for s, _ in recorded] == [200, 200, 401, 200, 200, 200, 200, 200, 400, 400, 200, 401, 200, 200, 200]

    text = out.read_text()
    for secret in secrets:  # every credential and token the session used or was given
        assert secret not in text, secret
    assert checker.check_file(out) == []
    assert subprocess.run([*CLI, "check", str(out)], capture_output=True).returncode == 0

    replay = processes("replay", "serve", "--scenario", str(out))  # no upstream anywhere
    replayed = session(replay.url, lambda: None, set())
    assert replayed == recorded
    exchanges = httpx.get(f"{replay.url}/__emulator/exchanges").json()["payload"]["exchanges"]
    rules = [e["scenario"]["rule"] for e in exchanges if (e.get("scenario") or {}).get("rule")]
    assert sum(rule.startswith("patientsearch-query") for rule in rules) == 4, rules  # answered by recorded rules


def test_the_harness_suite_passes_against_the_recording_as_against_the_upstream(
        tmp_path: Path, processes: Callable[..., Process]) -> None:
    upstream = processes("upstream", "serve", "--scenario", "duplicate-patient-matches")
    out = tmp_path / "recorded.yaml"
    recorder = processes("recorder", "record", "--upstream", upstream.url, "--out", str(out))
    base = recorder.url
    env = {**os.environ, "REDOX_BASE_URL": base, "REDOX_TOKEN_URL": f"{base}/v2/auth/token",
           "REDOX_API_URL": f"{base}/endpoint", "REDOX_CLIENT_ID": "sandbox-client",
           "REDOX_CLIENT_SECRET": "sandbox-client-secret", "REDOX_DESTINATION_ID": DESTINATION,
           "REDOX_HARNESS_WORKDIR": str(tmp_path)}
    client = ROOT / "tests" / "clients" / "redox_client.py"
    subprocess.run([sys.executable, str(client), "send"], env=env, check=True, timeout=60)
    recorder.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert recorder.wait() == 0, recorder.output()
    assert "sandbox-client-secret" not in out.read_text()

    library = yaml.safe_load((ROOT / "scenarios" / "duplicate-patient-matches.yaml").read_text())
    replay = yaml.safe_load(out.read_text())
    assert "setup" not in replay, "the upstream's patients are not copied: the rules answer for them"
    replay["expectations"] = library["expectations"]  # the contract the suite checks, on the recorded behaviour
    (tmp_path / "suite").mkdir()
    against_replay = tmp_path / "suite" / "duplicate-patient-matches.yaml"
    against_replay.write_text(yaml.safe_dump(replay, sort_keys=False))

    def verdicts(fault: str, scenario: Path) -> dict[str, bool]:
        spec = tmp_path / f"client-{fault or 'correct'}.yaml"
        run = f"{sys.executable} {client}"
        spec.write_text(f"send: {run} send\nserve: {run} serve --port {{port}}\n"
                        f"webhook_url: http://127.0.0.1:{{port}}/redox\nready_url: http://127.0.0.1:{{port}}/health\n"
                        f"probe: {run} probe\ntimeout: 10\nenv: {{CLIENT_FAULT: '{fault}'}}\n")
        (result,) = Harness(client_module.load(spec)).run([scenario])
        assert result.error is None, result.error
        return {v.expectation: v.ok for v in result.verdicts}

    upstream_scenario = ROOT / "scenarios" / "duplicate-patient-matches.yaml"
    assert verdicts("", upstream_scenario) == verdicts("", against_replay) == {
        "no-update-to-an-ambiguous-patient": True}
    # the recording reproduces the ambiguity: a client that takes the first match breaks the contract on both
    assert verdicts("first-match", upstream_scenario) == verdicts("first-match", against_replay) == {
        "no-update-to-an-ambiguous-patient": False}


def test_webhook_deliveries_seen_while_recording_become_pushes(tmp_path: Path,
                                                               processes: Callable[..., Process]) -> None:
    with Receiver() as first, Receiver() as second:
        upstream = processes("upstream", "serve")
        out = tmp_path / "pushes.yaml"
        recorder = processes("recorder", "record", "--upstream", upstream.url, "--out", str(out),
                             "--webhook-url", first.url)
        hook = f"{recorder.url}/__emulator/record/webhook"
        created = httpx.post(f"{upstream.url}/__emulator/destinations", json={
            "id": "11111111-2222-4333-8444-555555555555", "name": "Recorded app", "url": hook})
        assert created.status_code in (200, 201), created.text
        pushed = httpx.post(f"{upstream.url}/__emulator/push", json={
            "DataModel": "Results", "EventType": "New", "payload": {
                "Patient": {"Identifiers": [{"ID": "0000000001", "IDType": "MR"}]},
                "Orders": [{"ID": "ORD-9", "Status": "Final", "Results": []}]}})
        assert pushed.status_code == 200, pushed.text
        deadline = time.monotonic() + 20
        while not [r for r in first.received if not r.is_handshake] and time.monotonic() < deadline:
            time.sleep(0.05)
        delivered = [r for r in first.received if not r.is_handshake]
        assert delivered and any(r.is_handshake for r in first.received)
        httpx.post(f"{recorder.url}/__emulator/record/stop")
        assert recorder.wait() == 0, recorder.output()
        document = yaml.safe_load(out.read_text())
        assert [p["body"]["Meta"]["EventType"] for p in document["pushes"]] == ["New"]
        assert "sandbox-verification-token" not in out.read_text()

        replay = processes("replay", "serve", "--scenario", str(out), "--webhook-url", second.url)
        deadline = time.monotonic() + 20
        while not [r for r in second.received if not r.is_handshake] and time.monotonic() < deadline:
            time.sleep(0.05)
        (again,) = [r for r in second.received if not r.is_handshake]
        assert normal(again.json()) == normal(delivered[0].json()) | {"Meta": normal(again.json())["Meta"]}
        assert again.json()["Orders"] == delivered[0].json()["Orders"]
        assert again.json()["Patient"] == delivered[0].json()["Patient"]
        replay.stop()


def _silent_upstream() -> tuple[socket.socket, threading.Event]:
    """Accepts and reads; a request with an `x-test: drop` header loses its connection, any other gets no
    answer at all."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    done = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            data = conn.recv(65536)
            if b"x-test: drop" in data.lower():
                conn.close()
            else:
                held.append(conn)
        for conn in held:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, done


def test_an_upstream_that_fails_or_hangs_is_answered_502_or_504_and_recorded_so(
        tmp_path: Path, processes: Callable[..., Process]) -> None:
    server, done = _silent_upstream()
    try:
        out = tmp_path / "broken.yaml"
        recorder = processes("recorder", "record", "--upstream", f"http://127.0.0.1:{server.getsockname()[1]}",
                             "--out", str(out), "--timeout", "0.5")
        hang = event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": "HANG", "IDType": "MR"}]})
        drop = event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": "drop", "IDType": "MR"}]})
        slow = httpx.post(f"{recorder.url}/endpoint", json=hang, headers={"Authorization": "Bearer abcdefgh"})
        lost = httpx.post(f"{recorder.url}/endpoint", json=drop, headers={"Authorization": "Bearer abcdefgh",
                                                                           "X-Test": "drop"})
        assert slow.status_code == 504 and lost.status_code == 502
        for answer in (slow, lost):
            (error,) = answer.json()["Meta"]["Errors"]
            assert error["Type"] == "transmission" and answer.json()["Meta"]["DataModel"] == "PatientSearch"
        httpx.post(f"{recorder.url}/__emulator/record/stop")
        assert recorder.wait() == 0
    finally:
        done.set()
        server.close()
    document = yaml.safe_load(out.read_text())
    assert sorted(r["then"]["respond"]["status"] for r in document["rules"]) == [502, 504]
    assert "abcdefgh" not in out.read_text()
    replay = processes("replay", "serve", "--scenario", str(out))
    token = httpx.post(f"{replay.url}/v2/auth/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client",
        "client_secret": "sandbox-client-secret"}).json()["access_token"]
    again = httpx.post(f"{replay.url}/endpoint", json=hang, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 504 and normal(again.json()) == normal(slow.json())
    assert json.loads(again.text)["Meta"]["Errors"][0]["Text"] == slow.json()["Meta"]["Errors"][0]["Text"]
