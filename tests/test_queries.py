"""Queries through /endpoint answered by the synthetic EHR, and events that change what they answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from emulator.ehr import BIXBY_MRN, DUPLICATE_GROUPS
from tests.conftest import event

BIXBY = {"FirstName": "Timothy", "LastName": "Bixby", "DOB": "2008-01-06"}


def search(client: httpx.Client, **patient: Any) -> httpx.Response:
    return client.post("/endpoint", json=event("PatientSearch", "Query", Patient=patient))


def mrns(patient: dict[str, Any]) -> set[str]:
    return {i["ID"] for i in patient.get("Identifiers", []) if i["IDType"] == "MR"}


def test_one_match_by_demographics_keeps_event_type_query(authed: httpx.Client) -> None:
    r = search(authed, Demographics=BIXBY)
    assert r.status_code == 200
    body = r.json()
    assert body["Meta"]["EventType"] == "Query" and body["Meta"]["Logs"]
    assert mrns(body["Patient"]) == {BIXBY_MRN}
    assert "PotentialMatches" not in body


def test_one_match_by_identifier(authed: httpx.Client) -> None:
    body = search(authed, Identifiers=[{"ID": BIXBY_MRN, "IDType": "MR"}]).json()
    assert body["Patient"]["Demographics"]["LastName"] == "Bixby"


def test_no_match_is_an_empty_patient(authed: httpx.Client) -> None:
    body = search(authed, Demographics={**BIXBY, "FirstName": "Tim"}).json()
    assert body["Patient"] == {}


def test_several_matches_are_potential_matches(authed: httpx.Client) -> None:
    group = DUPLICATE_GROUPS[0]
    body = search(authed, Demographics={"FirstName": group.first_name, "LastName": group.last_name,
                                        "DOB": group.dob}).json()
    assert body["Patient"] == {}
    assert {m for match in body["PotentialMatches"] for m in mrns(match)} == {a.mrn for a in group.members}


def test_too_few_criteria_is_a_transmission_error(authed: httpx.Client) -> None:
    r = search(authed, Demographics={"LastName": "Bixby", "Address": {"ZIP": "53566"}})
    assert r.status_code == 400
    [error] = r.json()["Meta"]["Errors"]
    assert (error["Type"], error["Module"]) == ("transmission", "Send")
    [log] = authed.get("/__emulator/logs").json()["payload"]["logs"]
    assert (log["type"], log["status"]) == ("REQUEST", "FAILED")


def test_new_patient_update_and_merge_change_later_answers(authed: httpx.Client) -> None:
    ada = {"FirstName": "Ada", "LastName": "Lovelace", "DOB": "1815-12-10"}
    assert search(authed, Demographics=ada).json()["Patient"] == {}
    new = event("PatientAdmin", "NewPatient", Patient={"Identifiers": [{"ID": "7000000001", "IDType": "MR"}],
                                                       "Demographics": ada})
    assert authed.post("/endpoint", json=new).status_code == 200
    assert mrns(search(authed, Demographics=ada).json()["Patient"]) == {"7000000001"}

    update = event("PatientAdmin", "PatientUpdate", Patient={
        "Identifiers": [{"ID": "7000000001", "IDType": "MR"}], "Demographics": {**ada, "LastName": "King"}})
    assert authed.post("/endpoint", json=update).status_code == 200
    assert search(authed, Demographics=ada).json()["Patient"] == {}
    assert mrns(search(authed, Demographics={**ada, "LastName": "King"}).json()["Patient"]) == {"7000000001"}

    merge = event("PatientAdmin", "PatientMerge", Patient={
        "Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}],
        "PreviousIdentifiers": [{"ID": "7000000001", "IDType": "MR"}]})
    assert authed.post("/endpoint", json=merge).status_code == 200
    by_old_mrn = search(authed, Identifiers=[{"ID": "7000000001", "IDType": "MR"}]).json()["Patient"]
    assert mrns(by_old_mrn) == {BIXBY_MRN}
    assert search(authed, Demographics={**ada, "LastName": "King"}).json()["Patient"] == {}


def test_scheduling_booked_sees_a_new_appointment(authed: httpx.Client) -> None:
    start = datetime.now(UTC) + timedelta(days=400)
    window = {"StartDateTime": start.isoformat(), "EndDateTime": (start + timedelta(days=1)).isoformat()}
    assert authed.post("/endpoint", json=event("Scheduling", "Booked", **window)).json()["Visits"] == []
    booked = event("Scheduling", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
                   Visit={"VisitNumber": "V-1", "VisitDateTime": (start + timedelta(hours=2)).isoformat(),
                          "Duration": 30, "Reason": "Check up",
                          "Location": {"Type": "Outpatient", "Facility": "Madison Clinic",
                                       "Department": "Family Medicine"}})
    assert authed.post("/endpoint", json=booked).status_code == 200
    visits = authed.post("/endpoint", json=event("Scheduling", "Booked", **window)).json()["Visits"]
    assert [v["VisitNumber"] for v in visits] == ["V-1"]
    assert mrns(visits[0]["Patient"]) == {BIXBY_MRN}


def test_available_slots_and_clinical_summary_answer_from_the_same_state(authed: httpx.Client) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    slots = authed.post("/endpoint", json=event("Scheduling", "AvailableSlots", StartDateTime=start.isoformat(),
                                                EndDateTime=(start + timedelta(days=7)).isoformat())).json()
    assert slots["AvailableSlots"] and all("DateTime" in s for s in slots["AvailableSlots"])
    summary = authed.post("/endpoint", json=event("Clinical Summary", "PatientQuery", Patient={
        "Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]})).json()
    assert summary["Meta"]["DataModel"] == "Clinical Summary"
    assert mrns(summary["Header"]["Patient"]) == {BIXBY_MRN}
    assert isinstance(summary["Allergies"], list) and isinstance(summary["Problems"], list)
