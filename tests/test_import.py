"""`redox-emulator import`: VCR cassettes (Ruby VCR, vcrpy) and HAR files become scenario files that
`redox-emulator check` accepts, and replaying each answers the recorded request with the recorded status.

The real Redox recordings in ../shared/redox-reference are read in place (skipped when absent;
REDOX_REFERENCE points elsewhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from emulator import har
from emulator.cli import main
from emulator.scenarios import cassettes, recording
from emulator.server import Server
from emulator.settings import Settings
from tests.conftest import SHARED, event

REFERENCE = Path(os.environ.get("REDOX_REFERENCE") or SHARED)
CASSETTES = sorted((REFERENCE / "recordings").rglob("*.yml")) if REFERENCE.is_dir() else []
CLI = [sys.executable, "-m", "emulator"]


@pytest.fixture(scope="module")
def replay() -> Iterator[Server]:
    with Server(Settings(db=":memory:", port=0)) as server:
        yield server


def convert(tmp_path: Path, source: Path) -> tuple[Path, str]:
    out = tmp_path / "converted" / f"{source.stem}.yaml"
    result = CliRunner().invoke(main, ["import", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def replayed(server: Server, scenario: Path, exchanges: list[recording.Recorded]) -> list[tuple[int, Any]]:
    """Each recorded request sent again with the emulator's credentials, the scenario active."""
    base = server.url
    activated = httpx.post(f"{base}/__emulator/scenarios", params={"name": scenario.stem},
                           content=scenario.read_bytes(), headers={"Content-Type": "application/yaml"})
    assert activated.status_code == 200, activated.text
    token = httpx.post(f"{base}/auth/authenticate", json={"apiKey": "sandbox-api-key",
                                                          "secret": "sandbox-secret"}).json()["accessToken"]
    answers = []
    try:
        for exchange in exchanges:
            headers = {k: v for k, v in exchange.request_headers
                       if k in ("content-type", "accept") and "boundary" not in v}
            body = exchange.request_body
            if exchange.path in recording.AUTH_PATHS and 200 <= exchange.status < 300:
                body = json.dumps({"apiKey": "sandbox-api-key", "secret": "sandbox-secret"}).encode()
            elif exchange.path not in recording.AUTH_PATHS:
                headers["Authorization"] = f"Bearer {token}"
            if exchange.path == "/upload":  # its own boundary: the recorded body names it
                headers["Content-Type"] = dict(exchange.request_headers)["content-type"]
            answer = httpx.request(exchange.method, base + exchange.path, content=body, headers=headers)
            answers.append((answer.status_code, recording.json_or_none(answer.content)))
    finally:
        httpx.delete(f"{base}/__emulator/scenarios")
    return answers


def normal(body: Any) -> Any:
    return recording._normal(body)


@pytest.mark.skipif(not CASSETTES, reason="../shared/redox-reference (the real Redox recordings) is not here")
@pytest.mark.parametrize("cassette", CASSETTES, ids=lambda p: str(p.relative_to(REFERENCE / "recordings")))
def test_each_real_redox_cassette_imports_checks_and_replays_its_statuses(
        cassette: Path, tmp_path: Path, replay: Server) -> None:
    out, _ = convert(tmp_path, cassette)
    checked = subprocess.run([*CLI, "check", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    exchanges, skipped = cassettes.load(cassette)
    assert exchanges and not skipped
    text = out.read_text()
    for secret in ("test-secret", "test-access-token", "test-refresh-token", "test-api-key"):
        assert secret not in text, secret  # the cassettes' (placeholder) credentials and tokens
    answers = replayed(replay, out, exchanges)
    assert [status for status, _ in answers] == [e.status for e in exchanges]
    for exchange, (_, body) in zip(exchanges, answers, strict=True):
        recorded = recording.json_or_none(exchange.response_body)
        if exchange.path == "/endpoint" and recorded is not None:
            assert normal(body) == normal(recorded)


def test_a_har_of_the_emulators_own_logs_imports_skipping_what_is_not_redox(tmp_path: Path, replay: Server) -> None:
    with Server(Settings(db=":memory:", port=0)) as source:
        token = httpx.post(f"{source.url}/auth/authenticate", json={"apiKey": "sandbox-api-key",
                                                                    "secret": "sandbox-secret"}).json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}
        sent = [event("PatientAdmin", "NewPatient"),
                {"Meta": {"DataModel": "PatientSearch", "EventType": "Query",
                          "Destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9"}]},
                 "Patient": {"Identifiers": [{"ID": "0000000001", "IDType": "MR"}]}},
                {"Meta": {"DataModel": "Nope", "EventType": "New"}}]
        answered = [httpx.post(f"{source.url}/endpoint", json=body, headers=auth) for body in sent]
        logs = httpx.get(f"{source.url}/__emulator/logs", params={"full": "true"}).json()["payload"]["logs"]
        document = har.document(logs, source.url)
    document["log"]["entries"].append({
        "startedDateTime": "2026-01-01T00:00:00.000Z", "time": 1,
        "request": {"method": "GET", "url": "https://example.com/analytics", "headers": []},
        "response": {"status": 204, "headers": [], "content": {"text": ""}}})
    file = tmp_path / "session.har"
    file.write_text(json.dumps(document))
    out, said = convert(tmp_path, file)
    assert "skipped GET https://example.com/analytics: not a Redox request" in said
    assert subprocess.run([*CLI, "check", str(out)], capture_output=True).returncode == 0
    exchanges, _ = cassettes.load(file)
    assert sorted(e.status for e in exchanges) == sorted(a.status_code for a in answered)
    answers = replayed(replay, out, exchanges)
    assert [status for status, _ in answers] == [e.status for e in exchanges]


def test_a_vcrpy_cassette_imports_with_a_note_per_skipped_request(tmp_path: Path, replay: Server) -> None:
    search = {"Meta": {"DataModel": "PatientSearch", "EventType": "Query",
                       "Destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9"}]},
              "Patient": {"Identifiers": [{"ID": "VCR-1", "IDType": "MR"}]}}
    found = {"Meta": {**search["Meta"], "Logs": [{"ID": "x", "AttemptID": "y"}]},
             "Patient": {"Identifiers": [{"ID": "VCR-1", "IDType": "MR"}], "Demographics": {"FirstName": "Vee"}}}
    busy = {"Meta": {**search["Meta"], "Errors": [{"ID": 1, "Text": "slow down", "Type": "transmission",
                                                   "Module": "RateLimit"}]}}

    def interaction(uri: str, status: int, body: Any, answer: Any, headers: dict[str, list[str]]) -> dict[str, Any]:
        return {"request": {"body": json.dumps(body).encode(), "headers": {"Authorization": ["Bearer vcr-token-1"],
                                                                            "Content-Type": ["application/json"]},
                            "method": "POST", "uri": uri},
                "response": {"body": {"string": json.dumps(answer)}, "headers": headers,
                             "status": {"code": status, "message": ""}}}

    cassette = {"version": 1, "interactions": [
        interaction("https://api.redoxengine.com/endpoint", 429, search, busy, {"Retry-After": ["3"]}),
        interaction("https://api.redoxengine.com/endpoint", 200, search, found, {}),
        interaction("https://hooks.example.org/notify", 200, {"a": 1}, {}, {})]}
    file = tmp_path / "vcrpy.yaml"
    file.write_text(yaml.safe_dump(cassette))
    out, said = convert(tmp_path, file)
    assert said.count("skipped") == 1 and "https://hooks.example.org/notify" in said
    assert "vcr-token-1" not in out.read_text()
    rules = yaml.safe_load(out.read_text())["rules"]
    assert [(r["when"].get("nth"), r["then"]["respond"]["status"]) for r in rules] == [("2+", 200), (None, 429)]
    assert rules[1]["then"]["respond"]["headers"] == {"retry-after": "3"}
    exchanges, _ = cassettes.load(file)
    answers = replayed(replay, out, [*exchanges, exchanges[-1]])  # and a third time: the last answer holds
    assert [s for s, _ in answers] == [429, 200, 200]
    assert normal(answers[1][1]) == normal(found)
