"""POST /endpoint and /query: Meta checks, routing, the completed Meta, Redox's error shapes."""

from __future__ import annotations

import gc
import socket
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest

from emulator.server import Server
from emulator.settings import Destination, Settings
from tests.conftest import DEV_TOOLS, REDOX_EMR, event

NEW_PATIENT = {"Identifiers": [{"ID": "77", "IDType": "MR"}], "Demographics": {"FirstName": "Ada"}}


def errors(response: httpx.Response) -> list[dict[str, object]]:
    body = response.json()
    found: list[dict[str, object]] = body["Meta"]["Errors"]
    for error in found:
        # Redox's four keys, and the JSON path of the field an entry is about when there is one.
        assert set(error) - {"Path"} == {"ID", "Text", "Type", "Module"}
        assert isinstance(error["ID"], int)
    return found


def test_async_send_echoes_payload_with_meta_completed(authed: httpx.Client) -> None:
    r = authed.post("/endpoint", json=event("PatientAdmin", "NewPatient", Patient=NEW_PATIENT))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.headers["cache-control"] == "private, no-cache, no-store, must-revalidate"
    assert r.headers["x-frame-options"] == "deny"
    assert "strict-transport-security" in r.headers
    body = r.json()
    assert body["Patient"] == NEW_PATIENT
    meta = body["Meta"]
    assert meta["DataModel"] == "PatientAdmin" and meta["EventType"] == "NewPatient" and meta["Test"] is True
    assert meta["Source"] == {"ID": DEV_TOOLS, "Name": "Redox Dev Tools"}
    assert meta["Destinations"] == [{"ID": REDOX_EMR, "Name": "Redox EMR"}]
    [entry] = meta["Logs"]
    assert set(entry) == {"ID", "AttemptID"}
    uuid.UUID(entry["ID"]), uuid.UUID(entry["AttemptID"])
    assert isinstance(meta["Message"]["ID"], int)


def test_legacy_query_path_takes_the_same_events(authed: httpx.Client) -> None:
    r = authed.post("/query", json=event("PatientAdmin", "NewPatient", Patient=NEW_PATIENT))
    assert r.status_code == 200
    assert r.json()["Meta"]["Logs"]


def test_real_payload_carrying_message_and_transmission_is_accepted(authed: httpx.Client) -> None:
    payload = event("Results", "New", Orders=[])
    payload["Meta"].update({"Message": {"ID": 5565}, "Transmission": {"ID": 12414}, "FacilityCode": None})  # type: ignore[attr-defined]
    assert authed.post("/endpoint", json=payload).status_code == 200


@pytest.mark.parametrize(("model", "event_type", "text"), [
    ("PatientAdmn", "NewPatient", 'Unknown DataModel "PatientAdmn". Did you mean "PatientAdmin"?'),
    ("ClinicalSummary", "PatientQuery", 'Did you mean "Clinical Summary"?'),
    ("PatientAdmin", "NewPatiant", 'Unknown EventType "NewPatiant" for DataModel PatientAdmin. '
                                   'Did you mean "NewPatient"?'),
    ("Order", "new", 'Did you mean "New"?'),
])
def test_unknown_model_or_event_is_a_400_with_did_you_mean(authed: httpx.Client, model: str, event_type: str,
                                                           text: str) -> None:
    r = authed.post("/endpoint", json=event(model, event_type))
    assert r.status_code == 400
    [error] = errors(r)
    assert text in str(error["Text"])
    assert (error["Type"], error["Module"]) == ("message", "DataModels")


@pytest.mark.parametrize(("meta", "missing"), [
    ({}, "Meta.DataModel"),
    ({"DataModel": "Order"}, "Meta.EventType"),
    ({"DataModel": 3, "EventType": "New"}, "Meta.DataModel"),
])
def test_missing_meta_fields(authed: httpx.Client, meta: dict[str, object], missing: str) -> None:
    r = authed.post("/endpoint", json={"Meta": meta})
    assert r.status_code == 400
    assert errors(r)[0]["Text"] == f"Required field missing - {missing}"
    r = authed.post("/endpoint", json={"Patient": {}})
    assert errors(r)[0]["Text"] == "Required field missing - Meta"


@pytest.mark.parametrize("destinations", [None, [], [str(uuid.uuid4())], ["not-a-uuid"]])
def test_no_or_unknown_destination_is_the_no_subscriptions_error(authed: httpx.Client,
                                                                 destinations: list[str] | None) -> None:
    payload = event("PatientAdmin", "NewPatient", destinations=destinations or [])
    if destinations is None:
        del payload["Meta"]["Destinations"]  # type: ignore[attr-defined]
    r = authed.post("/endpoint", json=payload)
    assert r.status_code == 400
    [error] = errors(r)
    assert str(error["Text"]).startswith("No subscriptions. Meta.Destinations needs to contain a destination "
                                         "from existing subscriptions")
    assert (error["Type"], error["Module"]) == ("message", "Subscriptions")


def test_malformed_json_is_a_redox_400_and_is_logged(authed: httpx.Client) -> None:
    r = authed.post("/endpoint", content=b'{"Meta": {"DataModel": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    [error] = errors(r)
    assert str(error["Text"]).startswith("Malformed JSON in the request body")
    [log] = authed.get("/__emulator/logs").json()["payload"]["logs"]
    assert (log["type"], log["status"]) == ("UNKNOWN", "FAILED")
    assert log["id"] == r.json()["Meta"]["Logs"][0]["ID"]


def test_wrong_content_type_is_a_400(authed: httpx.Client) -> None:
    r = authed.post("/endpoint", content=b"Meta=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    assert "Content-Type must be application/json" in str(errors(r)[0]["Text"])


def test_upload_answers_201_with_a_uri_that_serves_the_file(authed: httpx.Client) -> None:
    r = authed.post("/upload", files={"file": ("hello.txt", b"hello\n", "text/plain")})
    assert r.status_code == 201
    uri = r.json()["URI"]
    assert set(r.json()) == {"URI"}
    got = authed.get(uri)
    assert got.status_code == 200 and got.content == b"hello\n"
    assert httpx.get(uri).status_code == 401  # the file is behind the same auth


# ---- several destinations ---------------------------------------------------------------------
LAB = "0f4bd1d1-451d-4351-8cfd-b767d1b488d6"


@pytest.fixture(scope="module")
def two_destinations() -> Iterator[Server]:
    settings = Settings(db=":memory:", port=0, destinations=(
        Destination(),
        Destination(id=LAB, name="Lab", subscriptions={"Results": "all", "PatientAdmin": ["NewPatient"]}),
    ))
    with Server(settings) as server:
        yield server


@pytest.fixture
def lab(two_destinations: Server) -> Iterator[httpx.Client]:
    two_destinations.sandbox.reset()
    with httpx.Client(base_url=two_destinations.url) as c:
        r = c.post("/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"})
        c.headers["Authorization"] = f"Bearer {r.json()['accessToken']}"
        yield c


def test_one_log_per_destination(lab: httpx.Client) -> None:
    r = lab.post("/endpoint", json=event("PatientAdmin", "NewPatient", destinations=[REDOX_EMR, LAB]))
    assert r.status_code == 200
    meta = r.json()["Meta"]
    assert [d["Name"] for d in meta["Destinations"]] == ["Redox EMR", "Lab"]
    assert len({entry["ID"] for entry in meta["Logs"]}) == 2
    logs = lab.get("/__emulator/logs").json()["payload"]["logs"]
    assert sorted(entry["destination"]["Name"] for entry in logs) == ["Lab", "Redox EMR"]


def test_event_type_the_destination_is_not_subscribed_to_is_a_routing_error(lab: httpx.Client) -> None:
    r = lab.post("/endpoint", json=event("PatientAdmin", "Discharge", destinations=[LAB]))
    assert r.status_code == 400
    [error] = errors(r)
    assert "Lab (0f4bd1d1-451d-4351-8cfd-b767d1b488d6) is not subscribed to PatientAdmin.Discharge" in str(
        error["Text"])
    assert error["Module"] == "Subscriptions"
    [log] = lab.get("/__emulator/logs").json()["payload"]["logs"]
    assert (log["status"], log["destination"]["Name"]) == ("FAILED", "Lab")


def test_a_query_names_exactly_one_destination(lab: httpx.Client) -> None:
    r = lab.post("/endpoint", json=event("Results", "Query", destinations=[REDOX_EMR, LAB]))
    assert r.status_code == 400
    assert "exactly one destination" in str(errors(r)[0]["Text"])



@pytest.mark.parametrize("path", ["/endpoint", "/query"])
def test_a_bug_on_the_hot_path_is_a_logged_redox_shaped_500(
        emulator: Server, authed: httpx.Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        path: str) -> None:
    """/endpoint and /query bypass Starlette's middleware (app.py `_direct`); a bug still answers as it would."""
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(emulator.sandbox.router, "handle", broken)
    r = authed.post(path, json=event("PatientAdmin", "NewPatient", Patient=NEW_PATIENT))
    assert r.status_code == 500
    [entry] = errors(r)
    assert entry["Text"] == "Internal emulator error; see the emulator's log"
    assert entry["Module"] == "Emulator" and entry["Type"] == "transmission"
    assert f"unhandled error on POST {path}" in caplog.text


def test_requests_leave_no_reference_cycles_for_the_garbage_collector(emulator: Server, token: str) -> None:
    """Every request's objects are freed as it ends. A cycle through the ASGI scope (the server's `send`
    kept in it) once left each request's objects for the collector: at a few thousand requests a
    second, a collection every few requests and memory that is never warm.

    The requests go over a raw keep-alive socket: the emulator shares this process, and an HTTP client
    library leaves cycles of its own."""
    body = orjson.dumps(event("PatientAdmin", "NewPatient"))
    request = (f"POST /endpoint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
        reader = sock.makefile("rb")

        def post() -> None:
            sock.sendall(request)
            status = reader.readline()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            reader.read(length)
            assert status.startswith(b"HTTP/1.1 200"), status

        post()  # warm: what first use builds is not garbage
        requests = 200
        gc.collect()
        gc.disable()
        try:
            for _ in range(requests):
                post()
            found = gc.collect()
        finally:
            gc.enable()
    assert found < requests, f"{found} objects in reference cycles after {requests} requests"
