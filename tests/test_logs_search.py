"""Logs list filters and search, the live stream, and the CLI's logs commands against a real server (issue 7)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from emulator import log_filters
from emulator.cli import main
from emulator.server import Server
from emulator.settings import Settings
from emulator.store import Exchange, Log, LogStatus, LogStore, LogType
from tests.conftest import event


def patient(mrn: str, last: str) -> dict[str, object]:
    return {"Identifiers": [{"ID": mrn, "IDType": "MR"}, {"ID": f"E-{mrn}", "IDType": "EHRID"}],
            "Demographics": {"FirstName": "Ada", "LastName": last}}


def send(authed: httpx.Client, model: str, kind: str, mrn: str, last: str) -> str:
    r = authed.post("/endpoint", json=event(model, kind, Patient=patient(mrn, last)))
    assert r.status_code == 200, r.text
    return str(r.json()["Meta"]["Logs"][0]["ID"])


def logs(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/__emulator/logs", params=params)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["payload"]["logs"]
    return found


def test_search_by_mrn_log_id_and_text(authed: httpx.Client) -> None:
    ada = send(authed, "PatientAdmin", "NewPatient", "4242", "Lovelace")
    grace = send(authed, "Results", "New", "5151", "Hopper")
    assert [entry["id"] for entry in logs(authed, mrn="4242")] == [ada]
    assert [entry["id"] for entry in logs(authed, mrn="E-5151")] == [grace]  # any identifier of the patient
    assert logs(authed, mrn="424") == []  # exact, not a prefix
    assert [entry["id"] for entry in logs(authed, q=ada)] == [ada]  # a log ID
    assert [entry["id"] for entry in logs(authed, q="5151")] == [grace]  # an MRN
    assert [entry["id"] for entry in logs(authed, q="hOpPeR")] == [grace]  # text, any case
    assert logs(authed, q="50%_off") == []  # % and _ are not wildcards
    assert [entry["id"] for entry in logs(authed, q="Lovelace", dataModel="PatientAdmin")] == [ada]
    assert logs(authed, q="Lovelace", dataModel="Results") == []


def test_failed_send_is_found_by_its_error_text(authed: httpx.Client) -> None:
    body = event("PatientAdmin", "NewPatient", Patient=patient("1", "X"))
    body["Meta"]["Destinations"] = [{"ID": "not-a-destination"}]  # type: ignore[index]
    assert authed.post("/endpoint", json=body).status_code >= 400
    found = logs(authed, status="FAILED")
    assert len(found) == 1 and found[0]["errors"]
    word = found[0]["errors"][0]["Text"].split()[0]
    assert [entry["id"] for entry in logs(authed, q=word)] == [found[0]["id"]]


def test_full_pages_carry_attempts_and_bodies(authed: httpx.Client) -> None:
    send(authed, "PatientAdmin", "NewPatient", "4242", "Lovelace")
    (entry,) = logs(authed, full="true")
    (attempt,) = entry["attempts"]
    assert attempt["httpStatus"] == 200
    assert attempt["request"]["Patient"]["Demographics"]["LastName"] == "Lovelace"
    assert "attempts" not in logs(authed)[0]


@pytest.mark.parametrize(("params", "says"), [
    ({"mrn": ""}, "mrn must not be empty"),
    ({"q": "x" * 201}, "at most 200"),
    ({"full": "maybe"}, "full must be true or false"),
    ({"statsu": "FAILED"}, "did you mean"),
    ({"createdAfter": "nan"}, "finite"),
    ({"cursor": "-1"}, "cursor must be between"),
])
def test_bad_log_queries_are_told_why(client: httpx.Client, params: dict[str, str], says: str) -> None:
    r = client.get("/__emulator/logs", params=params)
    assert r.status_code == 400
    assert says in r.json()["error"].lower()
    r = client.get("/__emulator/logs/stream", params=params)
    assert r.status_code == 400


def test_text_search_pages_through_windows() -> None:
    """A rare word in an old log: the first page searches a window, its cursor leads to the match."""
    store = LogStore(":memory:")
    try:
        total = log_filters.TEXT_WINDOW + 10
        for i in range(total):
            body = json.dumps({"Patient": {"Demographics": {"LastName": "Zebulon" if i == 0 else f"N{i}"}}}).encode()
            store.record(Exchange(id=i + 1, at=float(i), method="POST", path="/endpoint", status=200, latency_ms=1.0,
                                  request_body=body),
                         [Log(f"log-{i}", float(i), LogType.SEND, LogStatus.SUCCEEDED, "PatientAdmin", "NewPatient",
                              attempts=[(f"a-{i}", i + 1, float(i), 200)])])
        page, cursor = store.list_logs({"q": "zebulon"}, limit=50)
        assert page == [] and cursor is not None
        page, cursor = store.list_logs({"q": "zebulon"}, limit=50, cursor=cursor)
        assert [entry["id"] for entry in page] == ["log-0"] and cursor is None
    finally:
        store.close()


def test_stream_sends_new_logs_and_ends_when_the_server_stops(authed: httpx.Client) -> None:
    with Server(Settings(db=":memory:", port=0)) as server:
        got: list[tuple[str, Any]] = []
        started, logged = threading.Event(), threading.Event()

        def listen() -> None:
            with httpx.stream("GET", server.url + "/__emulator/logs/stream", params={"dataModel": "Results"},
                              timeout=30) as r:
                name = ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        got.append((name, json.loads(line[6:])))
                        started.set()
                        if name == "log":
                            logged.set()

        reader = threading.Thread(target=listen)
        reader.start()
        assert started.wait(10)
        with httpx.Client(base_url=server.url) as c:
            token = c.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                   "client_secret": "sandbox-client-secret"}).json()["access_token"]
            c.headers["Authorization"] = f"Bearer {token}"
            send(c, "PatientAdmin", "NewPatient", "1", "Skipped")  # filtered out
            result = send(c, "Results", "New", "2", "Shown")
            assert logged.wait(20), f"no log event on the stream: {got}"
        server.stop()  # with the stream still open
        reader.join(10)
        assert not reader.is_alive()
    names = [name for name, _ in got]
    assert names[0] == "hello" and names[-1] == "bye"
    assert [data["id"] for name, data in got if name == "log"] == [result]


def test_cli_logs_table_json_and_exports(emulator: Server, authed: httpx.Client, tmp_path: Path) -> None:
    ada = send(authed, "PatientAdmin", "NewPatient", "4242", "Lovelace")
    send(authed, "Results", "New", "5151", "Hopper")
    runner = CliRunner()
    url = ["--url", emulator.url]
    table = runner.invoke(main, ["logs", *url])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("TIME") and len(lines) == 3
    assert "PatientAdmin.NewPatient" in lines[1] and "Results.New" in lines[2]  # oldest first, like a tail
    assert "Redox Dev Tools → Redox EMR" in lines[1] and "SUCCEEDED" in lines[1]

    as_json = runner.invoke(main, ["logs", "--json", "--mrn", "4242", *url])
    assert [json.loads(line)["id"] for line in as_json.output.splitlines()] == [ada]

    jsonl = tmp_path / "logs.jsonl"
    done = runner.invoke(main, ["logs", "export", "--format", "jsonl", str(jsonl), *url])
    assert done.exit_code == 0, done.output
    exported = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(exported) == 2 and all(entry["attempts"][0]["request"]["Meta"] for entry in exported)

    har = tmp_path / "logs.har"
    done = runner.invoke(main, ["logs", "export", "--format", "har", "--data-model", "PatientAdmin", str(har), *url])
    assert done.exit_code == 0, done.output
    (entry,) = json.loads(har.read_text())["log"]["entries"]
    assert entry["request"]["url"] == emulator.url + "/endpoint"
    assert json.loads(entry["request"]["postData"]["text"])["Patient"]["Demographics"]["LastName"] == "Lovelace"
    assert entry["response"]["status"] == 200 and entry["_redox"]["logId"] == ada


def test_cli_logs_says_when_no_emulator_answers() -> None:
    result = CliRunner().invoke(main, ["logs", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "no emulator at http://127.0.0.1:9" in result.output
