"""One EHR behind both APIs: what the data-model API changes, the FHIR API shows at once, and each
FHIR exchange is a Redox log like any other (live emulator, real socket)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx

from emulator.ehr import BIXBY_MRN
from emulator.ehr.population import BIXBY_EHRID
from emulator.har import entry
from tests.conftest import event

BASE = "/fhir/R4/redox-fhir-sandbox/Development"
BIXBY_ID = f"urn:redox:health-one:MR|{BIXBY_MRN}"


def fhir_search(client: httpx.Client, kind: str, **params: str) -> dict[str, Any]:
    r = client.post(f"{BASE}/{kind}/_search", data=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/fhir+json; charset=utf-8"
    body: dict[str, Any] = r.json()
    return body


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def test_a_new_patient_is_found_by_fhir_search_at_once_and_an_update_shows(authed: httpx.Client) -> None:
    ada = {"Identifiers": [{"ID": "4242", "IDType": "MR"}],
           "Demographics": {"FirstName": "Ada", "LastName": "Lovelace", "DOB": "1815-12-10", "Sex": "Female"}}
    assert authed.post("/endpoint", json=event("PatientAdmin", "NewPatient", Patient=ada)).status_code == 200
    found = resources(fhir_search(authed, "Patient", identifier="urn:redox:redox-fhir-sandbox:MR|4242"))
    assert [(p["name"][0]["family"], p["birthDate"], p["gender"]) for p in found] == [("Lovelace", "1815-12-10",
                                                                                       "female")]
    assert resources(fhir_search(authed, "Patient", family="lovel", birthdate="1815-12-10"))[0]["id"] == found[0]["id"]
    update = {**ada, "Demographics": {"LastName": "King"}}
    assert authed.post("/endpoint", json=event("PatientAdmin", "PatientUpdate", Patient=update)).status_code == 200
    assert authed.get(f"{BASE}/Patient/{found[0]['id']}").json()["name"][0]["family"] == "King"
    # A seeded patient's FHIR id is its EHRID in the data-model API.
    query = event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": BIXBY_EHRID, "IDType": "EHRID"}]})
    bixby = authed.post("/endpoint", json=query).json()["Patient"]
    assert authed.get(f"{BASE}/Patient/{BIXBY_EHRID}").json()["birthDate"] == bixby["Demographics"]["DOB"]


def test_patient_merge_makes_the_old_id_answer_replaced_by_the_survivor(authed: httpx.Client) -> None:
    dup = {"Identifiers": [{"ID": "7000000001", "IDType": "MR"}],
           "Demographics": {"FirstName": "Tim", "LastName": "Bixby", "DOB": "2008-01-06"}}
    authed.post("/endpoint", json=event("PatientAdmin", "NewPatient", Patient=dup))
    old = resources(fhir_search(authed, "Patient", identifier="7000000001"))[0]
    assert old["active"] is True and old["id"] != BIXBY_EHRID
    merge = event("PatientAdmin", "PatientMerge", Patient={
        "Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}],
        "PreviousIdentifiers": [{"ID": "7000000001", "IDType": "MR"}]})
    assert authed.post("/endpoint", json=merge).status_code == 200
    gone = authed.get(f"{BASE}/Patient/{old['id']}").json()
    assert gone["active"] is False
    assert gone["link"] == [{"other": {"reference": f"Patient/{BIXBY_EHRID}"}, "type": "replaced-by"}]
    survivor = authed.get(f"{BASE}/Patient/{BIXBY_EHRID}").json()
    assert {"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"} in survivor["link"]
    assert {"use": "old", "system": "urn:redox:redox-fhir-sandbox:MR", "value": "7000000001",
            "type": survivor["identifier"][0]["type"]} in survivor["identifier"]
    # The old MRN finds the survivor, as PatientSearch does; the merged-away record is no search result.
    assert [p["id"] for p in resources(fhir_search(authed, "Patient", identifier="7000000001"))] == [BIXBY_EHRID]
    assert [p["id"] for p in resources(fhir_search(authed, "Patient", given="Tim", family="Bixby"))] == [BIXBY_EHRID]


def test_results_new_shows_as_observation_and_diagnostic_report(authed: httpx.Client) -> None:
    before = fhir_search(authed, "Observation", **{"patient.identifier": BIXBY_ID})["total"]
    order = {"ID": "LAB-77", "Status": "Resulted", "ResultsStatus": "Final",
             "CollectionDateTime": "2025-03-01T10:00:00.000Z", "CompletionDateTime": "2025-03-01T12:00:00.000Z",
             "Procedure": {"Code": "2345-7", "Codeset": "LOINC", "Description": "Glucose panel"},
             "Provider": {"NPI": "4356789876", "FirstName": "Pat", "LastName": "Granite"},
             "Results": [{"Code": "2345-7", "Codeset": "LOINC", "Description": "Glucose", "Value": "182",
                          "ValueType": "Numeric", "Units": "mg/dL", "AbnormalFlag": "High", "Status": "Final",
                          "ReferenceRange": {"Low": 70, "High": 99}}]}
    results = event("Results", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]}, Orders=[order])
    assert authed.post("/endpoint", json=results).status_code == 200
    observations = fhir_search(authed, "Observation", **{"patient.identifier": BIXBY_ID, "code": "http://loinc.org|2345-7"})
    assert observations["total"] == 1 and fhir_search(
        authed, "Observation", **{"patient.identifier": BIXBY_ID})["total"] == before + 1
    glucose = resources(observations)[0]
    assert glucose["valueQuantity"] == {"value": 182, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                                        "code": "mg/dL"}
    assert glucose["interpretation"][0]["coding"][0]["code"] == "H"
    assert glucose["subject"]["reference"] == f"Patient/{BIXBY_EHRID}"
    report = resources(fhir_search(authed, "DiagnosticReport", identifier="LAB-77", _include="DiagnosticReport:result"))
    assert [r["result"][0]["reference"] for r in report] == [f"Observation/{glucose['id']}"]
    assert authed.get(f"{BASE}/Observation/{glucose['id']}").json() == glucose
    by_date = fhir_search(authed, "DiagnosticReport", patient=BIXBY_EHRID, date="ge2025-03-01")
    assert [r["id"] for r in resources(by_date)] == [report[0]["id"]]


def test_a_scheduling_new_is_an_appointment(authed: httpx.Client) -> None:
    visit = {"VisitNumber": "998877", "VisitDateTime": "2031-05-01T14:00:00.000Z", "Duration": 30,
             "Reason": "Sports physical", "AttendingProvider": {"ID": "1811456302", "IDType": "NPI"},
             "Location": {"Facility": "Green County Pediatrics", "Department": "Pediatrics"}}
    new = event("Scheduling", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]}, Visit=visit)
    assert authed.post("/endpoint", json=new).status_code == 200
    found = resources(fhir_search(authed, "Appointment", **{"patient.identifier": BIXBY_ID, "date": "2031-05-01"}))
    assert [(a["status"], a["start"], a["minutesDuration"], a["description"]) for a in found] == [
        ("booked", "2031-05-01T14:00:00.000Z", 30, "Sports physical")]
    cancel = event("Scheduling", "Cancel", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
                   Visit={**visit, "Status": "Canceled"})
    assert authed.post("/endpoint", json=cancel).status_code == 200
    assert authed.get(f"{BASE}/Appointment/{found[0]['id']}").json()["status"] == "cancelled"


def test_match_a_near_duplicate_of_bixby_is_probable_not_certain(authed: httpx.Client) -> None:
    near = {"resourceType": "Patient", "name": [{"family": "Bixby", "given": ["Tim"]}], "gender": "male",
            "birthDate": "2008-01-06", "address": [{"postalCode": "53566"}], "telecom": [{"system": "phone",
                                                                                          "value": "608-555-9999"}]}
    body = {"id": "RedoxPatientMatchExample", "onlyCertainMatches": False, "count": 5, "resource": near}
    r = authed.post(f"{BASE}/Patient/$match", json=body)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert entries[0]["resource"]["id"] == BIXBY_EHRID
    assert entries[0]["search"]["extension"] == [{"url": "http://hl7.org/fhir/StructureDefinition/match-grade",
                                                  "valueCode": "probable"}]
    assert 0.7 <= entries[0]["search"]["score"] < 0.9
    assert authed.post(f"{BASE}/Patient/$match", json={**body, "onlyCertainMatches": True}).json()["total"] == 0
    exact = {**near, "name": [{"family": "Bixby", "given": ["Timothy"]}],
             "identifier": [{"system": "urn:redox:health-one:MR", "value": BIXBY_MRN}]}
    certain = authed.post(f"{BASE}/Patient/$match", json={**body, "resource": exact, "onlyCertainMatches": True})
    assert [e["search"]["extension"][0]["valueCode"] for e in certain.json()["entry"]] == ["certain"]


def test_match_duplicate_group_and_hl7_parameters(authed: httpx.Client) -> None:
    maria = {"resourceType": "Patient", "name": [{"family": "Garcia", "given": ["Maria"]}], "gender": "female",
             "birthDate": "1985-03-14"}
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": maria},
                                                              {"name": "count", "valueInteger": 2}]}
    found = authed.post(f"{BASE}/Patient/$match", json=parameters).json()
    assert found["total"] == 2
    assert {e["search"]["extension"][0]["valueCode"] for e in found["entry"]} == {"probable"}
    high = authed.post(f"{BASE}/Patient/$match", json={"resource": maria, "matchScoreThreshold": 0.95}).json()
    assert high["total"] == 0


def test_each_fhir_exchange_is_a_log_found_by_mrn(authed: httpx.Client) -> None:
    fhir_search(authed, "Condition", **{"patient.identifier": BIXBY_ID})
    authed.get(f"{BASE}/Patient/{BIXBY_EHRID}")
    authed.post(f"{BASE}/Patient/_search", data={"nope": "1"})
    logs = authed.get("/__emulator/logs", params={"mrn": BIXBY_MRN}).json()["payload"]["logs"]
    assert [(entry["dataModel"], entry["eventType"], entry["status"]) for entry in logs] == [
        ("FHIR.Patient", "read", "SUCCEEDED"), ("FHIR.Condition", "search", "SUCCEEDED")]
    assert {entry["destination"]["Name"] for entry in logs} == {"Redox EMR"}
    failed = authed.get("/__emulator/logs", params={"dataModel": "FHIR.Patient", "status": "FAILED"}).json()
    entry = failed["payload"]["logs"][0]
    assert entry["eventType"] == "search" and "nope" in entry["errors"][0]["Text"]
    detail = authed.get(f"/__emulator/logs/{entry['id']}").json()["payload"]["log"]
    assert detail["attempts"][0]["httpStatus"] == 400
    assert detail["attempts"][0]["request"] == "nope=1"


def test_a_get_search_keeps_its_parameters_in_the_journal(authed: httpx.Client) -> None:
    r = authed.get(f"{BASE}/Condition", params={"patient.identifier": BIXBY_ID, "_count": "2"})
    assert r.status_code == 200, r.text
    r = authed.post(f"{BASE}/Patient/_search?_count=1", data={"identifier": BIXBY_ID})
    assert r.status_code == 200, r.text
    query = "patient.identifier=urn%3Aredox%3Ahealth-one%3AMR%7C0000000001&_count=2"
    exchanges = authed.get("/__emulator/exchanges").json()["payload"]["exchanges"]
    paths = [e["path"] for e in exchanges if e["path"].startswith(BASE)]
    assert paths[-2:] == [f"{BASE}/Condition?{query}", f"{BASE}/Patient/_search?_count=1"]
    logs = authed.get("/__emulator/logs", params={"dataModel": "FHIR.Condition"}).json()["payload"]["logs"]
    detail = authed.get(f"/__emulator/logs/{logs[0]['id']}").json()["payload"]["log"]
    assert detail["attempts"][0]["url"] == f"{BASE}/Condition?{query}"
    assert detail["attempts"][0]["method"] == "GET"
    har = entry(detail, detail["attempts"][0], "http://emulator")["request"]
    assert har["url"] == f"http://emulator{BASE}/Condition?{query}"
    assert har["queryString"] == [{"name": "patient.identifier", "value": BIXBY_ID}, {"name": "_count", "value": "2"}]


def test_ids_are_the_same_in_another_process() -> None:
    code = ("import json; from emulator.ehr import SyntheticEHR; from emulator.fhir import FhirService; "
            "f = FhirService(SyntheticEHR()); "
            "print(json.dumps({k: [e['resource']['id'] for e in f.search(k, [('_count', '3')], 'b').body['entry']] "
            "for k in ('Patient', 'Observation', 'Appointment', 'Practitioner', 'Immunization', 'Procedure', "
            "'Coverage')}))")

    def ids() -> dict[str, list[str]]:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
        found: dict[str, list[str]] = json.loads(out.stdout)
        return found

    first = ids()
    assert first == ids()
    assert all(len(v) == 3 for v in first.values())


def test_a_repeated_search_shows_each_data_model_change_at_once(authed: httpx.Client) -> None:
    """A searchset is kept encoded while the EHR stays the same: a NewPatient, a PatientUpdate and a
    PatientMerge each change what the very same search answers next, and every answer has its own token."""
    wanted = "urn:redox:redox-fhir-sandbox:MR|5150"

    def ids() -> tuple[list[str], dict[str, Any]]:
        bundle = fhir_search(authed, "Patient", identifier=wanted)
        return [p["id"] for p in resources(bundle)], bundle

    first, before = ids()
    again, repeated = ids()
    assert first == again == [] and before["total"] == repeated["total"] == 0
    assert before["id"] != repeated["id"]
    assert before["link"][0]["url"].endswith(f"/page/Patient/search/{before['id']}.search")
    assert repeated["link"][-1]["url"].endswith(f"/page/Patient/search/{repeated['id']}.self")

    grace = {"Identifiers": [{"ID": "5150", "IDType": "MR"}],
             "Demographics": {"FirstName": "Grace", "LastName": "Hopper", "DOB": "1906-12-09", "Sex": "Female"}}
    assert authed.post("/endpoint", json=event("PatientAdmin", "NewPatient", Patient=grace)).status_code == 200
    found, bundle = ids()
    assert len(found) == 1 and bundle["total"] == 1
    assert resources(bundle)[0]["name"][0]["family"] == "Hopper"

    update = {**grace, "Demographics": {"LastName": "Murray"}}
    assert authed.post("/endpoint", json=event("PatientAdmin", "PatientUpdate", Patient=update)).status_code == 200
    assert [p["name"][0]["family"] for p in resources(ids()[1])] == ["Murray"]

    merge = event("PatientAdmin", "PatientMerge", Patient={
        "Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}], "PreviousIdentifiers": [{"ID": "5150", "IDType": "MR"}]})
    assert authed.post("/endpoint", json=merge).status_code == 200
    assert ids()[0] == [BIXBY_EHRID]
    # The paging link of an earlier answer runs the search on today's state too.
    page = authed.get("/fhir/" + before["link"][0]["url"].split("/fhir/", 1)[1])
    assert page.status_code == 200 and [r["resource"]["id"] for r in page.json()["entry"]] == [BIXBY_EHRID]
