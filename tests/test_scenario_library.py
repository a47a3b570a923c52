"""The scenario library in scenarios/: every file checks, and each behaviour shows through a real HTTP client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulator.scenarios import checker
from emulator.server import Server
from tests.conftest import event

LIBRARY = Path(__file__).resolve().parents[1] / "scenarios"
STEMS = {"duplicate-patient-matches", "order-rejection", "token-expiry", "token-revocation", "redelivery",
         "destination-outage", "rate-limiting", "sync-timeout", "out-of-order-delivery",
         "wrong-verification-token", "unsupported-event-type", "payload-too-large", "patient-merge",
         "malformed-json", "fhir-duplicate-match", "fhir-writeback-rejected", "fhir-token-expiry", "fhir-paging",
         "fhir-search-timeout", "fhir-notification-redelivery"}
DELIVERY = ("redelivery", "destination-outage", "out-of-order-delivery", "wrong-verification-token")
LAB_SYSTEM = "9b1d2c3e-4f5a-4b6c-8d7e-1f2a3b4c5d6e"


def test_the_library_has_exactly_the_named_behaviours() -> None:
    assert {p.stem for p in LIBRARY.glob("*.yaml")} == STEMS


@pytest.mark.parametrize("stem", sorted(STEMS))
def test_each_library_file_checks_and_describes_itself(stem: str) -> None:
    scenario = checker.load_file(LIBRARY / f"{stem}.yaml")
    assert scenario.name == stem
    assert len(scenario.description.split()) >= 25  # a paragraph a QA reader can follow


@pytest.mark.parametrize("stem", DELIVERY)
def test_delivery_scenarios_parse_their_pushes(stem: str) -> None:
    scenario = checker.load_file(LIBRARY / f"{stem}.yaml")
    assert scenario.pushes
    assert all(p.destination == "Client Webhook" for p in scenario.pushes)
    assert any(d.url == "{receiver}" for d in scenario.setup.destinations)


def test_delivery_details_reach_the_parsed_model() -> None:
    redelivery = checker.load_file(LIBRARY / "redelivery.yaml").pushes[0]
    assert (redelivery.redeliver_times, redelivery.redeliver_after) == (1, 30)
    outage = checker.load_file(LIBRARY / "destination-outage.yaml").outages[0]
    assert (outage.start, outage.end, outage.failure) == (0, 300, "refused")
    ordered = checker.load_file(LIBRARY / "out-of-order-delivery.yaml").pushes
    assert [p.when.at for p in ordered] == [0, 5] and [p.event_time for p in ordered] == [60, 0]
    forged = checker.load_file(LIBRARY / "wrong-verification-token.yaml").pushes[0]
    assert forged.verification_token == "not-the-token-you-configured"


# ---- behaviours, through httpx against the live server -----------------------------------------------

@pytest.fixture
def activate(emulator: Server, client: httpx.Client) -> Iterator[object]:
    def go(stem: str) -> None:
        r = client.post("/__emulator/scenarios", json={"name": str(LIBRARY / f"{stem}.yaml")})
        assert r.status_code == 200, r.text
    yield go
    client.delete("/__emulator/scenarios")


def _token(client: httpx.Client) -> str:
    r = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                            "client_secret": "sandbox-client-secret"})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _send(client: httpx.Client, token: str, body: object) -> httpx.Response:
    return client.post("/endpoint", json=body, headers={"Authorization": f"Bearer {token}"})


def _search(**demographics: str) -> dict[str, object]:
    return event("PatientSearch", "Query", Patient={"Demographics": demographics})


def test_duplicate_patient_matches(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("duplicate-patient-matches")
    token = _token(client)
    r = _send(client, token, _search(FirstName="Jordan", LastName="Rivera", DOB="1979-05-04"))
    assert r.status_code == 200
    assert r.json()["Patient"] == {} and len(r.json()["PotentialMatches"]) >= 2
    by_id = _send(client, token, event("PatientSearch", "Query",
                                       Patient={"Identifiers": [{"ID": "0000009999", "IDType": "MR"}]}))
    assert by_id.json()["Patient"] == {} and len(by_id.json()["PotentialMatches"]) == 2


def test_order_rejection(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("order-rejection")
    token = _token(client)
    cbc = _send(client, token, event("Order", "New", Order={"ID": "O-1", "Procedure": {"Code": "85025"}}))
    assert cbc.status_code == 400
    assert cbc.json()["Meta"]["Errors"][0]["Text"].startswith("Order rejected by the EHR")
    other = _send(client, token, event("Order", "New", Order={"ID": "O-2", "Procedure": {"Code": "80053"}}))
    assert other.status_code == 200


def test_token_expiry_mid_batch_and_on_the_clock(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("token-expiry")
    token = _token(client)
    send = event("PatientAdmin", "NewPatient", Patient={"Identifiers": [{"ID": "x1", "IDType": "MR"}]})
    assert [_send(client, token, send).status_code for _ in range(3)] == [200, 200, 401]
    assert _send(client, token, send).status_code == 401  # dead for good
    fresh = _token(client)
    assert _send(client, fresh, send).status_code == 200
    client.post("/__emulator/clock", json={"advance": 299})
    assert _send(client, fresh, send).status_code == 200
    client.post("/__emulator/clock", json={"advance": 2})  # 5 minutes and a second: the lifetime is over
    assert _send(client, fresh, send).status_code == 401
    assert _send(client, _token(client), send).status_code == 200


def test_token_revocation(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("token-revocation")
    token = _token(client)
    send = event("PatientAdmin", "NewPatient", Patient={"Identifiers": [{"ID": "x2", "IDType": "MR"}]})
    assert _send(client, token, send).status_code == 200
    assert _send(client, token, send).status_code == 401
    assert _send(client, _token(client), send).status_code == 200  # the state moved on: no second revocation
    active = client.get("/__emulator/scenarios").json()["payload"]["active"][0]
    assert active["state"] == "revoked"


def test_rate_limiting(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("rate-limiting")
    token = _token(client)  # the token request counts too: 4 sends remain in the window
    send = event("PatientAdmin", "NewPatient", Patient={"Identifiers": [{"ID": "x3", "IDType": "MR"}]})
    assert [_send(client, token, send).status_code for _ in range(4)] == [200] * 4
    limited = _send(client, token, send)
    assert limited.status_code == 429 and limited.headers["X-RateLimit-Limit"] == "5"
    client.post("/__emulator/clock", json={"advance": 61})
    assert _send(client, token, send).status_code == 200


def test_rate_limiting_rule_throttles_slot_searches(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("rate-limiting")
    token = _token(client)
    slots = event("Scheduling", "AvailableSlots", StartDateTime="2030-01-07T00:00:00.000Z")
    assert [_send(client, token, slots).status_code for _ in range(2)] == [200, 200]
    throttled = _send(client, token, slots)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "60"


def test_sync_timeout(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("sync-timeout")
    token = _token(client)
    before = client.get("/__emulator/clock").json()["payload"]["epoch"]
    r = _send(client, token, _search(FirstName="Timothy", LastName="Bixby", DOB="2008-01-06"))
    assert r.status_code == 504
    error = r.json()["Meta"]["Errors"][0]
    assert (error["Type"], error["Module"]) == ("transmission", "Send") and "120 seconds" in error["Text"]
    assert client.get("/__emulator/clock").json()["payload"]["epoch"] - before >= 120  # emulated time passed
    summary = _send(client, token, event("Clinical Summary", "PatientQuery",
                                         Patient={"Identifiers": [{"ID": "0000000001", "IDType": "MR"}]}))
    assert summary.status_code == 200  # 30 s: slow, but inside the timeout


def test_sync_timeout_on_a_manual_clock(emulator: Server, client: httpx.Client) -> None:
    """A delay waits for the emulator's clock, however long that takes in real time."""
    r = client.post("/__emulator/scenarios", content="""
description: slow
setup: {clock: {mode: manual}}
rules: [{name: slow, when: {data_model: PatientSearch}, then: {delay: 600}}]
""")
    assert r.status_code == 200, r.text
    token = _token(client)
    answers: dict[str, httpx.Response] = {}
    worker = threading.Thread(target=lambda: answers.setdefault("r", _send(client, token, _search(
        FirstName="Timothy", LastName="Bixby", DOB="2008-01-06"))))
    worker.start()
    deadline = time.monotonic() + 20
    while client.get("/__emulator/clock").json()["payload"]["sleepers"] == 0:  # the request sleeps on the clock
        assert time.monotonic() < deadline and worker.is_alive(), f"the request never waited: {answers}"
        time.sleep(0.01)
    assert "r" not in answers  # still waiting: nobody moved the clock
    client.post("/__emulator/clock", json={"advance": 1800})  # 30 emulated minutes
    worker.join(10)
    assert answers["r"].status_code == 504


def test_unsupported_event_type(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("unsupported-event-type")
    token = _token(client)
    cancel = _send(client, token, event("Order", "Cancel", destinations=[LAB_SYSTEM], Order={"ID": "1"}))
    assert cancel.status_code == 400
    error = cancel.json()["Meta"]["Errors"][0]
    assert error["Module"] == "Subscriptions" and error["Text"].startswith("No subscriptions")
    assert _send(client, token, event("Order", "New", destinations=[LAB_SYSTEM], Order={"ID": "1"})).status_code == 200
    client.delete("/__emulator/scenarios")
    gone = _send(client, token, event("Order", "New", destinations=[LAB_SYSTEM], Order={"ID": "1"}))
    assert gone.status_code == 400  # the scenario's destination left with it


def test_payload_too_large(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("payload-too-large")
    token = _token(client)
    def note(size: int) -> dict[str, object]:
        valid = event("Notes", "New")  # a complete Note, from the payload generator
        valid["Note"] = {**valid["Note"], "FileContents": "x" * size}  # type: ignore[dict-item]
        return valid

    big = note(70_000)
    assert _send(client, token, big).status_code == 413
    small = _send(client, token, note(1000))
    assert small.status_code == 200, small.text
    client.delete("/__emulator/scenarios")
    assert _send(client, token, big).status_code == 200  # the configured 10 MB limit again


def test_patient_merge(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("patient-merge")
    token = _token(client)

    def by_mrn(mrn: str) -> dict[str, object]:
        query = event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": mrn, "IDType": "MR"}]})
        r = _send(client, token, query)
        assert r.status_code == 200
        return dict(r.json()["Patient"])

    assert [i["ID"] for i in by_mrn("0000009102")["Identifiers"]] == ["0000009102"]  # type: ignore[index]
    merge = event("PatientAdmin", "PatientMerge", Patient={
        "Identifiers": [{"ID": "0000009101", "IDType": "MR"}],
        "PreviousIdentifiers": [{"ID": "0000009102", "IDType": "MR"}]})
    assert _send(client, token, merge).status_code == 200
    survivor = by_mrn("0000009102")
    assert "0000009101" in [i["ID"] for i in survivor["Identifiers"]]  # type: ignore[index]
    assert by_mrn("0000009101") == survivor


def test_malformed_json(activate, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    activate("malformed-json")
    token = _token(client)
    r = client.post("/endpoint", content=b'{"Meta": {"DataModel": "PatientAdmin",', headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["Meta"]["Errors"][0]["Text"].startswith("Malformed JSON")
    assert client.get("/__emulator/scenarios").json()["payload"]["active"][0]["state"] == \
        "client-sent-malformed-json"
    note = client.get("/__emulator/exchanges").json()["payload"]["exchanges"][-1]["scenario"]
    assert note["rule"] == "note-malformed-body"
