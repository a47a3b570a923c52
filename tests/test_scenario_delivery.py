"""The delivery scenarios of the library, shown against a real receiver on a real socket.

`{receiver}` in a scenario's destination is the app's webhook: here `Settings.webhook_url`.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from emulator.server import Server
from tests.conftest import REDOX_EMR, event
from tests.receiver import Receiver
from tests.test_delivery import eventually, get_log, outbound_attempts

LIBRARY = Path(__file__).resolve().parents[1] / "scenarios"
CLIENT_WEBHOOK = "3f0e2a4c-5d6b-4c7a-9e8f-0a1b2c3d4e5f"


def activate(api: httpx.Client, stem: str) -> None:
    r = api.post("/__emulator/scenarios", json={"name": str(LIBRARY / f"{stem}.yaml")})
    assert r.status_code == 200, r.text


def test_redelivery_sends_the_acknowledged_message_again(hook: Receiver, api: httpx.Client) -> None:
    activate(api, "redelivery")
    first, again = hook.wait_for(2)  # 30 emulated seconds apart: half a second at 60x
    assert first.log_id == again.log_id
    assert first.attempt_id != again.attempt_id
    assert first.status == again.status == 200
    assert first.json()["Orders"][0]["ID"] == "ORD-1001"
    assert first.json()["Meta"]["Destinations"] == [{"ID": CLIENT_WEBHOOK, "Name": "Client Webhook"}]
    assert get_log(api, first.log_id)["status"] == "SUCCEEDED"


def test_destination_outage_holds_the_queue_then_delivers_in_order(hook: Receiver, api: httpx.Client) -> None:
    activate(api, "destination-outage")
    log_ids = eventually(lambda: [entry["id"] for entry in api.get(
        "/__emulator/logs", params={"type": "RECEIVE"}).json()["payload"]["logs"]] or None)
    assert hook.deliveries() == []  # refused at the network: nothing reached the app yet
    api.post("/__emulator/clock", json={"advance": 300})  # the outage is over
    got = hook.wait_for(3)
    assert [g.json()["Meta"]["EventType"] for g in got] == ["Arrival", "Transfer", "Discharge"]
    admit = got[0].log_id
    attempts = outbound_attempts(api, admit)
    assert len(attempts) >= 2
    assert all("connection refused (scripted outage)" in a["response"] for a in attempts[:-1])
    assert attempts[-1]["httpStatus"] == 200
    assert admit in log_ids


def test_out_of_order_delivery_sends_the_later_event_first(hook: Receiver, api: httpx.Client) -> None:
    activate(api, "out-of-order-delivery")
    update, new = hook.wait_for(2)
    assert update.json()["Meta"]["EventType"] == "PatientUpdate"
    assert new.json()["Meta"]["EventType"] == "NewPatient"
    assert update.json()["Meta"]["EventDateTime"] > new.json()["Meta"]["EventDateTime"]  # it happened later


def test_wrong_verification_token_is_a_one_off_forgery(hook: Receiver, api: httpx.Client) -> None:
    hook.script(403)  # a correct app refuses the forgery
    activate(api, "wrong-verification-token")
    forged, genuine = hook.wait_for(2)
    assert forged.headers["verification-token"] == "not-the-token-you-configured"
    assert genuine.headers["verification-token"] == "sandbox-verification-token"
    assert genuine.json()["Orders"][0]["ID"] == "ORD-GENUINE"
    api.post("/__emulator/clock", json={"advance": 600})
    api.get("/__emulator/health")
    assert len(hook.deliveries()) == 2  # a forgery is never retried
    journal = api.get("/__emulator/exchanges").json()["payload"]["exchanges"]
    forgeries = [e for e in journal if e["direction"] == "out" and (e.get("scenario") or {}).get("forged")]
    assert [e["scenario"] for e in forgeries] == [{"scenario": "wrong-verification-token", "push": "forged",
                                                   "forged": True}]  # posted once
    assert forgeries[0]["status"] == 403  # the emulator saw the refusal, and did not retry it


def test_deactivating_a_scenario_cancels_its_pending_pushes(webhook_server: Server, hook: Receiver,
                                                            api: httpx.Client) -> None:
    scenario = """
description: Two pushes an hour apart; the scenario is switched off before the second.
setup:
  clock: {mode: manual}
pushes:
  - {name: now, when: {at: 0}, body: {Meta: {DataModel: Results, EventType: New}}}
  - {name: later, when: {at: 3600}, body: {Meta: {DataModel: Results, EventType: New}}}
"""
    r = api.post("/__emulator/scenarios?name=hourly", content=scenario, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    assert len(hook.wait_for(1)) == 1
    api.delete("/__emulator/scenarios")
    api.post("/__emulator/clock", json={"advance": 7200})
    time.sleep(0.3)  # long enough for a wrongly kept push to go out
    assert len(hook.deliveries()) == 1


def test_order_rejection_pushes_the_cancel_and_the_canceled_results(hook: Receiver, api: httpx.Client) -> None:
    activate(api, "order-rejection")
    order = event("Order", "New", destinations=[REDOX_EMR],
                  Order={"ID": "ORD-85025", "Procedure": {"Code": "85025", "Codeset": "CPT"}})
    r = api.post("/endpoint", json=order)
    assert r.status_code == 400 and "Order rejected by the EHR" in r.json()["Meta"]["Errors"][0]["Text"]
    api.post("/__emulator/clock", json={"advance": 10})  # the pushes follow the rejection by 5 s and 10 s
    cancel, results = hook.wait_for(2)
    assert (cancel.json()["Meta"]["DataModel"], cancel.json()["Meta"]["EventType"]) == ("Order", "Cancel")
    assert results.json()["Orders"][0]["Status"] == "Canceled"


def test_patient_merge_is_pushed_a_minute_in(hook: Receiver, api: httpx.Client) -> None:
    activate(api, "patient-merge")
    time.sleep(0.2)  # nothing is due before a minute has passed
    assert hook.deliveries() == []
    api.post("/__emulator/clock", json={"advance": 60})
    [merge] = hook.wait_for(1)
    patient = merge.json()["Patient"]
    assert merge.json()["Meta"]["EventType"] == "PatientMerge"
    assert patient["PreviousIdentifiers"] == [{"ID": "0000009102", "IDType": "MR"}]
