from __future__ import annotations

import httpx

from tests.conftest import event


def test_guide_flow_token_send_and_log(authed: httpx.Client) -> None:
    r = authed.post("/endpoint", json=event("PatientAdmin", "NewPatient", Patient={"Identifiers": []}))
    assert r.status_code == 200, r.text
    log_id = r.json()["Meta"]["Logs"][0]["ID"]
    logs = authed.get("/__emulator/logs").json()["payload"]["logs"]
    assert [entry["id"] for entry in logs] == [log_id]
