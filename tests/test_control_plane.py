"""The control plane: health, reset, logs with filters and paging, the journal, the clock, the admin guard."""

from __future__ import annotations

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.settings import Settings
from emulator.web.app import create_app
from tests.conftest import event


def send(client: httpx.Client, model: str, event_type: str) -> str:
    r = client.post("/endpoint", json=event(model, event_type))
    return str(r.json()["Meta"]["Logs"][0]["ID"])


def logs(client: httpx.Client, **params: object) -> dict[str, object]:
    r = client.get("/__emulator/logs", params=params)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_health(client: httpx.Client) -> None:
    body = client.get("/__emulator/health").json()
    assert body["payload"]["status"] == "ok"
    assert body["meta"]["version"]


def test_logs_filters_narrow_the_list(authed: httpx.Client) -> None:
    admitted = send(authed, "PatientAdmin", "NewPatient")
    ordered = send(authed, "Order", "New")
    failed = send(authed, "Order", "Nw")
    page = logs(authed)["payload"]["logs"]  # type: ignore[index]
    assert [entry["id"] for entry in page] == [failed, ordered, admitted]  # newest first
    assert [e["id"] for e in logs(authed, dataModel="Order")["payload"]["logs"]] == [failed, ordered]  # type: ignore[index]
    assert [e["id"] for e in logs(authed, eventType="NewPatient")["payload"]["logs"]] == [admitted]  # type: ignore[index]
    assert [e["id"] for e in logs(authed, status="failed")["payload"]["logs"]] == [failed]  # type: ignore[index]
    assert [e["id"] for e in logs(authed, type="SEND")["payload"]["logs"]] == [ordered, admitted]  # type: ignore[index]


def test_created_after_and_before_follow_the_emulator_clock(authed: httpx.Client) -> None:
    early = send(authed, "PatientAdmin", "NewPatient")
    now = authed.post("/__emulator/clock", json={"advance": 60}).json()["payload"]["now"]
    late = send(authed, "PatientAdmin", "NewPatient")
    assert [e["id"] for e in logs(authed, createdAfter=now)["payload"]["logs"]] == [late]  # type: ignore[index]
    assert [e["id"] for e in logs(authed, createdBefore=now)["payload"]["logs"]] == [early]  # type: ignore[index]


def test_paging_with_a_cursor_visits_every_log_once(authed: httpx.Client) -> None:
    sent = [send(authed, "PatientAdmin", "NewPatient") for _ in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        body = logs(authed, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in body["payload"]["logs"]]  # type: ignore[index]
        cursor = body["meta"]["nextCursor"]  # type: ignore[index]
        if cursor is None:
            break
    assert seen == sent[::-1]


def test_log_detail_has_the_attempt_with_request_and_response(authed: httpx.Client) -> None:
    payload = event("PatientAdmin", "NewPatient", Patient={"Identifiers": [{"ID": "9", "IDType": "MR"}]})
    r = authed.post("/endpoint", json=payload)
    log_id, attempt_id = r.json()["Meta"]["Logs"][0].values()
    detail = authed.get(f"/__emulator/logs/{log_id}").json()["payload"]["log"]
    assert (detail["type"], detail["status"], detail["dataModel"]) == ("SEND", "SUCCEEDED", "PatientAdmin")
    [attempt] = detail["attempts"]
    assert attempt["id"] == attempt_id and attempt["httpStatus"] == 200
    assert attempt["request"] == payload
    assert attempt["response"] == r.json()
    assert authed.get("/__emulator/logs/nope").status_code == 404


@pytest.mark.parametrize(("params", "message"), [
    ({"dataModl": "Order"}, "Did you mean 'dataModel'?"),
    ({"status": "DONE"}, "status must be one of"),
    ({"limit": "0"}, "limit must be between 1 and 500"),
    ({"limit": "many"}, "limit must be an integer"),
    ({"createdAfter": "yesterday"}, "ISO-8601"),
])
def test_bad_log_queries_say_what_is_wrong(client: httpx.Client, params: dict[str, str], message: str) -> None:
    r = client.get("/__emulator/logs", params=params)
    assert r.status_code == 400
    assert message.replace("'", '"') in r.json()["error"].replace("'", '"')


def test_journal_keeps_every_exchange(authed: httpx.Client) -> None:
    send(authed, "PatientAdmin", "NewPatient")
    authed.post("/endpoint", json=[])
    journal = authed.get("/__emulator/exchanges").json()["payload"]["exchanges"]
    assert [(e["method"], e["path"], e["status"]) for e in journal] == [
        ("POST", "/v2/auth/token", 200), ("POST", "/endpoint", 200), ("POST", "/endpoint", 400)]
    assert journal[1]["requestHeaders"]["authorization"] == "[REDACTED]"


def test_clock_advances_and_reset_brings_it_back(client: httpx.Client) -> None:
    before = client.get("/__emulator/clock").json()["payload"]
    after = client.post("/__emulator/clock", json={"advance": 90}).json()["payload"]
    assert after["offsetSeconds"] == 90 and after["epoch"] - before["epoch"] >= 90
    assert client.post("/__emulator/clock", json={"advance": -1}).status_code == 400
    assert client.post("/__emulator/clock", json={"advance": "soon"}).status_code == 400
    client.post("/__emulator/reset")
    assert client.get("/__emulator/clock").json()["payload"]["offsetSeconds"] == 0


def test_reset_forgets_logs_and_tokens(authed: httpx.Client) -> None:
    send(authed, "PatientAdmin", "NewPatient")
    assert authed.post("/__emulator/reset").status_code == 200
    assert logs(authed)["payload"] == {"logs": []}
    assert authed.post("/endpoint", json=event("PatientAdmin", "NewPatient")).status_code == 401


def test_control_plane_needs_the_admin_token_beyond_loopback() -> None:
    app = create_app(Settings(db=":memory:", host="0.0.0.0", admin_token="s3cret"))
    with TestClient(app) as c:
        denied = c.get("/__emulator/health")
        assert denied.status_code == 401 and "admin token" in denied.json()["error"]
        assert c.get("/__emulator/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/__emulator/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/__emulator/logs", headers={"X-Emulator-Admin-Token": "s3cret"}).status_code == 200


def test_beyond_loopback_without_a_configured_token_one_is_generated() -> None:
    app = create_app(Settings(db=":memory:", host="0.0.0.0"))
    generated = app.state.admin_token
    assert generated
    with TestClient(app) as c:
        assert c.get("/__emulator/health").status_code == 401
        assert c.get("/__emulator/health", headers={"Authorization": f"Bearer {generated}"}).status_code == 200
