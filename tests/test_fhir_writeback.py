"""FHIR writebacks (`POST {Resource}/$<resource>-<verb>`): message Bundles shaped as Redox documents them
(FHIR.md 4), the live sandbox's transaction-response, versions that move, and the one EHR state they
change: read and searched by FHIR at once, and found by the data-model queries through /endpoint."""

from __future__ import annotations

import base64
import copy
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.ehr import BIXBY_MRN
from emulator.ehr.population import BIXBY_EHRID
from tests.conftest import event

BASE = "/fhir/R4/redox-fhir-sandbox/Development"
SOURCE = "05107c08-fe2f-4740-8c1d-c7107d18ebe5"


def message(name: str, *resources: dict[str, Any], focus: int = 0) -> dict[str, Any]:
    """A message Bundle as Redox's writeback pages show it: MessageHeader first, focus, then the resources."""
    entries = [{"fullUrl": f"https://api.redoxengine.com{BASE}/{r['resourceType']}/{r.get('id', i)}", "resource": r}
               for i, r in enumerate(resources)]
    first = resources[focus]
    header = {"resourceType": "MessageHeader", "id": f"Redox{name}MessageHeaderExample",
              "source": {"name": "Good Health Clinics", "endpoint": SOURCE},
              "eventUri": f"https://fhir.redoxengine.com/EventDefinition/{name}",
              "focus": [{"reference": f"{first['resourceType']}/{first.get('id', focus)}"}]}
    return {"resourceType": "Bundle", "id": f"Redox{name}BundleExample", "type": "message",
            "timestamp": "2021-06-17T20:33:22.422Z", "entry": [{"resource": header}, *entries]}


def timothy(**changes: Any) -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": "RedoxPatientExampleTimothyWrite",
               "identifier": [{"use": "usual", "system": "urn:redox:redox-fhir-sandbox:MR", "value": "0000000099"},
                              {"use": "official", "system": "http://hl7.org/fhir/sid/us-ssn", "value": "101-01-0099"}],
               "name": [{"use": "official", "family": "Bixbee", "given": ["Timmy", "Paul"]}],
               "gender": "male", "birthDate": "2008-01-07",
               "telecom": [{"system": "phone", "value": "+1 (808) 867-5301", "use": "home"}],
               "address": [{"use": "home", "line": ["4762 Hickory Street"], "city": "Monroe", "state": "WI",
                            "postalCode": "53566"}]}
    patient.update(changes)
    return patient


def observation(subject: str, **changes: Any) -> dict[str, Any]:
    found = {"resourceType": "Observation", "id": "RedoxObservationCreateObservationExample", "status": "final",
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                       "code": "vital-signs"}]}],
             "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
                      "text": "Heart rate"},
             "subject": {"reference": subject}, "effectiveDateTime": "2024-09-20T17:00:00Z",
             "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org",
                               "code": "/min"}}
    found.update(changes)
    return found


def write(client: httpx.Client, kind: str, operation: str, body: Any, expect: int = 200) -> dict[str, Any]:
    r = client.post(f"{BASE}/{kind}/{operation}", json=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == expect, r.text
    found: dict[str, Any] = r.json()
    return found


def written(response: dict[str, Any], status: str = "201 Created") -> tuple[str, str]:
    """(id, versionId) from a transaction-response, its shape checked against the live sandbox's."""
    assert set(response) == {"entry", "resourceType", "type"} and response["type"] == "transaction-response"
    [entry] = response["entry"]
    answer = entry["response"]
    assert set(answer) == {"etag", "lastModified", "location", "status"} and answer["status"] == status
    *_, id_, history, version = answer["location"].split("/")
    assert history == "_history" and answer["etag"] == f'W/"{version}"'
    assert base64.b64decode(version + "=" * (-len(version) % 4)).decode().isdigit()  # epoch-nanoseconds
    assert answer["lastModified"].endswith("+00:00") and "." in answer["lastModified"]
    return id_, version


def matches(client: httpx.Client, kind: str, **params: str) -> list[dict[str, Any]]:
    r = client.post(f"{BASE}/{kind}/_search", data=params)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


def test_patient_create_is_read_searched_and_found_by_patientsearch(authed: httpx.Client) -> None:
    id_, version = written(write(authed, "Patient", "$patient-create", message("PatientCreate", timothy())))
    read = authed.get(f"{BASE}/Patient/{id_}").json()
    assert (read["name"][0]["family"], read["birthDate"], read["gender"]) == ("Bixbee", "2008-01-07", "male")
    assert read["meta"]["versionId"] == version
    mrn = read["identifier"][0]
    assert (mrn["system"], mrn["value"]) == ("urn:redox:redox-fhir-sandbox:MR", "0000000099")
    by_mrn = matches(authed, "Patient", identifier="urn:redox:redox-fhir-sandbox:MR|0000000099")
    assert [p["id"] for p in by_mrn] == [id_]
    query = event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": "0000000099", "IDType": "MR"}]})
    found = authed.post("/endpoint", json=query).json()["Patient"]
    assert found["Demographics"]["LastName"] == "Bixbee" and found["Demographics"]["SSN"] == "101-01-0099"
    demographic = event("PatientSearch", "Query", Patient={"Demographics": {
        "FirstName": "Timmy", "LastName": "Bixbee", "DOB": "2008-01-07"}})
    assert authed.post("/endpoint", json=demographic).json()["Patient"]["Identifiers"][0]["ID"] == "0000000099"


def test_patient_update_moves_the_version_and_answers_200_for_an_existing_id(authed: httpx.Client) -> None:
    id_, first = written(write(authed, "Patient", "$patient-create", message("PatientCreate", timothy())))
    created_at = authed.get(f"{BASE}/Patient/{id_}").json()["meta"]["lastUpdated"]
    updated = timothy(id=id_, name=[{"use": "official", "family": "Bixby", "given": ["Timothy"]}])
    again, second = written(write(authed, "Patient", "$patient-update", message("PatientUpdate", updated)), "200 OK")
    assert again == id_ and second != first
    read = authed.get(f"{BASE}/Patient/{id_}").json()
    assert read["name"][0]["family"] == "Bixby" and read["meta"]["versionId"] == second
    assert read["meta"]["lastUpdated"] > created_at
    # A data-model PatientUpdate and a FHIR one change the same record.
    query = event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": "0000000099", "IDType": "MR"}]})
    assert authed.post("/endpoint", json=query).json()["Patient"]["Demographics"]["LastName"] == "Bixby"
    # A seeded patient updated by its FHIR id.
    bixby = {"resourceType": "Patient", "id": BIXBY_EHRID, "telecom": [{"system": "email",
                                                                      "value": "tim@example.org"}]}
    answer = write(authed, "Patient", "$patient-update", message("PatientUpdate", bixby))
    assert written(answer, "200 OK")[0] == BIXBY_EHRID
    telecom = authed.get(f"{BASE}/Patient/{BIXBY_EHRID}").json()["telecom"]
    emails = [t["value"] for t in telecom if t["system"] == "email"]
    assert emails == ["tim@example.org"]


def test_observation_create_and_update_reach_the_chart_and_the_results_query(authed: httpx.Client) -> None:
    body = message("ObservationCreate", observation(f"Patient/{BIXBY_EHRID}"))
    id_, first = written(write(authed, "Observation", "$observation-create", body))
    assert id_ != "RedoxObservationCreateObservationExample"  # the sandbox assigns its own id
    read = authed.get(f"{BASE}/Observation/{id_}").json()
    assert read["valueQuantity"]["value"] == 72 and read["code"]["coding"][0]["code"] == "8867-4"
    assert read["meta"]["versionId"] == first and read["subject"]["reference"] == f"Patient/{BIXBY_EHRID}"
    assert id_ in [o["id"] for o in matches(authed, "Observation", patient=BIXBY_EHRID, code="http://loinc.org|8867-4")]
    results = authed.post("/endpoint", json=event("Results", "Query", Patients=[{
        "Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]}])).json()
    codes = [r.get("Code") for o in results.get("Orders", []) for r in o.get("Results", [])]
    assert "8867-4" in codes, results
    update = message("ObservationUpdate", observation(f"Patient/{BIXBY_EHRID}", id=id_, status="amended",
                                                      valueQuantity={"value": 75, "unit": "beats/minute"}))
    again, second = written(write(authed, "Observation", "$observation-update", update), "200 OK")
    assert again == id_ and second != first
    read = authed.get(f"{BASE}/Observation/{id_}").json()
    assert read["valueQuantity"]["value"] == 75 and read["meta"]["versionId"] == second


def test_an_observation_for_a_patient_the_bundle_carries_older_style(authed: httpx.Client) -> None:
    """The real minimal requests: the Observation and its Patient entry, no MessageHeader (redox mode)."""
    write(authed, "Patient", "$patient-create", message("PatientCreate", timothy()))
    bundle = {"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:uuid:obs", "resource": observation("urn:uuid:tim")},
        {"fullUrl": "urn:uuid:tim", "resource": timothy()}]}
    id_, _ = written(write(authed, "Observation", "$observation-create", bundle))
    assert authed.get(f"{BASE}/Observation/{id_}").json()["subject"]["display"] == "Timmy Bixbee"


def test_diagnostic_report_create_and_amend(authed: httpx.Client) -> None:
    result = observation(f"Patient/{BIXBY_EHRID}", id="hgb", code={"coding": [
        {"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}], "text": "Hemoglobin"},
        valueQuantity={"value": 13.2, "unit": "g/dL"})
    report = {"resourceType": "DiagnosticReport", "id": "RedoxDiagnosticReportExample", "status": "final",
              "identifier": [{"system": "urn:redox:redox-fhir-sandbox:OrderID", "value": "ORD-778"}],
              "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2", "display": "CBC panel"}]},
              "subject": {"reference": f"Patient/{BIXBY_EHRID}"}, "effectiveDateTime": "2024-09-20T08:00:00Z",
              "issued": "2024-09-20T10:00:00Z", "result": [{"reference": "Observation/hgb"}]}
    id_, first = written(write(authed, "DiagnosticReport", "$diagnosticreport-create",
                               message("DiagnosticReportCreate", report, result)))
    read = authed.get(f"{BASE}/DiagnosticReport/{id_}").json()
    assert read["status"] == "final" and [r["display"] for r in read["result"]] == ["Hemoglobin"]
    assert matches(authed, "DiagnosticReport", identifier="ORD-778")[0]["id"] == id_
    amended = {**report, "id": id_, "status": "amended"}
    amended_result = {**result, "valueQuantity": {"value": 12.9, "unit": "g/dL"}}
    again, second = written(write(authed, "DiagnosticReport", "$diagnosticreport-amend",
                                  message("DiagnosticReportAmend", amended, amended_result)), "200 OK")
    assert again == id_ and second != first
    read = authed.get(f"{BASE}/DiagnosticReport/{id_}").json()
    assert read["status"] == "corrected" and read["meta"]["versionId"] == second
    value = authed.get(f"{BASE}/{read['result'][0]['reference']}").json()["valueQuantity"]["value"]
    assert value == 12.9


def test_appointment_create_update_cancel_keep_the_given_id_and_reach_scheduling(authed: httpx.Client) -> None:
    appointment = {"resourceType": "Appointment", "id": "ca4006b5-67e7-43c8-ba4e-b5891b6245c4", "status": "booked",
                   "description": "Annual physical", "start": "2031-03-03T15:00:00Z", "end": "2031-03-03T15:30:00Z",
                   "participant": [{"actor": {"reference": f"Patient/{BIXBY_EHRID}"}, "status": "accepted"}]}
    id_, first = written(write(authed, "Appointment", "$appointment-create", message("AppointmentCreate", appointment)))
    assert id_ == appointment["id"]  # the live sandbox kept a supplied Appointment id
    read = authed.get(f"{BASE}/Appointment/{id_}").json()
    assert (read["status"], read["start"], read["minutesDuration"]) == ("booked", "2031-03-03T15:00:00.000Z", 30)
    assert id_ in [a["id"] for a in matches(authed, "Appointment", patient=BIXBY_EHRID)]
    assert written(write(authed, "Appointment", "$appointment-create", message("AppointmentCreate", appointment)),
                   "200 OK")[0] == id_  # the same id again: an update
    moved = {**appointment, "start": "2031-03-04T16:00:00Z", "end": "2031-03-04T16:30:00Z"}
    _, second = written(write(authed, "Appointment", "$appointment-update", message("AppointmentUpdate", moved)),
                        "200 OK")
    assert authed.get(f"{BASE}/Appointment/{id_}").json()["start"] == "2031-03-04T16:00:00.000Z" and second != first
    cancelled = {**moved, "status": "cancelled"}
    written(write(authed, "Appointment", "$appointment-cancel", message("AppointmentCancel", cancelled)), "200 OK")
    assert authed.get(f"{BASE}/Appointment/{id_}").json()["status"] == "cancelled"


def test_service_request_and_document_reference_create(authed: httpx.Client) -> None:
    request = {"resourceType": "ServiceRequest", "id": "RedoxServiceRequestExample", "status": "active",
               "intent": "order",
               "identifier": [{"system": "urn:redox:redox-fhir-sandbox:OrderID", "value": "SR-1"}],
               "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8", "display": "Metabolic panel"}]},
               "subject": {"reference": f"Patient/{BIXBY_EHRID}"}, "authoredOn": "2024-09-20T09:00:00Z"}
    id_, _ = written(write(authed, "ServiceRequest", "$servicerequest-create",
                           message("ServiceRequestCreate", request)))
    read = authed.get(f"{BASE}/ServiceRequest/{id_}").json()
    assert read["code"]["coding"][0]["code"] == "24323-8" and read["identifier"][0]["value"] == "SR-1"
    text = base64.b64encode(b"Patient seen for follow-up.").decode()
    document = {"resourceType": "DocumentReference", "status": "current",
                "type": {"text": "Progress note"}, "subject": {"reference": f"Patient/{BIXBY_EHRID}"},
                "date": "2024-09-20T11:00:00Z",
                "content": [{"attachment": {"contentType": "text/plain", "data": text, "title": "Follow-up"}}]}
    doc_id, _ = written(write(authed, "DocumentReference", "$documentreference-create",
                              message("DocumentReferenceCreate", document)))
    read = authed.get(f"{BASE}/DocumentReference/{doc_id}").json()
    assert read["content"][0]["attachment"]["data"] == text and read["type"]["text"] == "Progress note"
    assert doc_id in [d["id"] for d in matches(authed, "DocumentReference", patient=BIXBY_EHRID)]


def test_each_writeback_is_a_redox_log_keyed_by_the_patients_identifiers(authed: httpx.Client) -> None:
    write(authed, "Patient", "$patient-create", message("PatientCreate", timothy()))
    write(authed, "Observation", "$observation-create", message("ObservationCreate", observation(
        f"Patient/{BIXBY_EHRID}", status="bogus")), expect=400)  # refused: a failed log
    logs = authed.get("/__emulator/logs", params={"mrn": "0000000099"}).json()["payload"]["logs"]
    assert [(e["dataModel"], e["eventType"], e["status"]) for e in logs] == [
        ("FHIR.Patient", "$patient-create", "SUCCEEDED")]
    failed = authed.get("/__emulator/logs", params={"dataModel": "FHIR.Observation"}).json()["payload"]["logs"]
    assert [(e["eventType"], e["status"]) for e in failed] == [("$observation-create", "FAILED")]


BAD: list[tuple[str, str, Any, str]] = [
    ("Patient", "$patient-create", [], "Bundle"),
    ("Patient", "$patient-create", {"resourceType": "Patient"}, "Bundle"),
    ("Patient", "$patient-create", {"resourceType": "Bundle", "entry": []}, "Bundle.entry"),
    ("Patient", "$patient-create", {"resourceType": "Bundle", "entry": [{"resource": 5}]},
     "Bundle.entry[0].resource"),
    ("Observation", "$observation-create", message("ObservationCreate", timothy()),
     "Bundle.entry[0].resource.focus[0]"),
    ("Observation", "$observation-create", {"resourceType": "Bundle", "entry": [{"resource": timothy()}]},
     "Bundle.entry"),
    ("Patient", "$patient-create", message("PatientCreate", timothy(birthDate="06-01-2008", gender="boy")),
     "Bundle.entry[1].resource.birthDate"),
    ("Observation", "$observation-create", message("ObservationCreate", observation("Patient/nobody")),
     "Bundle.entry[1].resource.subject"),
    ("Observation", "$observation-create", message("ObservationCreate", {
        k: v for k, v in observation(f"Patient/{BIXBY_EHRID}").items() if k != "status"}),
     "Bundle.entry[1].resource.status"),
    ("Appointment", "$appointment-cancel", message("AppointmentCancel", {
        "resourceType": "Appointment", "id": "no-such", "status": "cancelled", "participant": [
            {"actor": {"display": "x"}, "status": "accepted"}]}), "Bundle.entry[1].resource.id"),
    ("Appointment", "$appointment-create", message("AppointmentCreate", {
        "resourceType": "Appointment", "status": "booked", "participant": [
            {"actor": {"reference": f"Patient/{BIXBY_EHRID}"}, "status": "accepted"}]}),
     "Bundle.entry[1].resource.start"),
    ("DiagnosticReport", "$diagnosticreport-create", message("DiagnosticReportCreate", {
        "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CBC"},
        "subject": {"reference": f"Patient/{BIXBY_EHRID}"}, "result": [{"reference": "Observation/missing"}]}),
     "Bundle.entry[1].resource.result[0]"),
]


@pytest.mark.parametrize(("kind", "operation", "body", "expression"), BAD)
def test_bad_writebacks_get_an_operation_outcome_naming_the_element(authed: httpx.Client, kind: str, operation: str,
                                                                    body: Any, expression: str) -> None:
    outcome = write(authed, kind, operation, body, expect=404 if operation == "$appointment-cancel" else 400)
    assert outcome["resourceType"] == "OperationOutcome"
    assert expression in [e for i in outcome["issue"] for e in i["expression"]], outcome


def test_every_bad_element_is_named_and_nothing_is_written(authed: httpx.Client) -> None:
    before = len(matches(authed, "Patient", family="Bixbee"))
    bad = timothy(birthDate="2008-13-45", gender="boy", name=[{"given": "Timmy"}])
    outcome = write(authed, "Patient", "$patient-create", message("PatientCreate", bad), expect=400)
    named = {e for i in outcome["issue"] for e in i["expression"]}
    assert {"Bundle.entry[1].resource.birthDate", "Bundle.entry[1].resource.gender",
            "Bundle.entry[1].resource.name[0].given"} <= named
    assert len(matches(authed, "Patient", family="Bixbee")) == before


def test_not_json_and_unknown_operations(authed: httpx.Client) -> None:
    r = authed.post(f"{BASE}/Patient/$patient-create", content=b"{not json",
                    headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    # The wrong operation for a resource: the live sandbox's Meta.Errors body.
    r = authed.post(f"{BASE}/Observation/$appointment-create", json=message("AppointmentCreate", timothy()))
    assert r.status_code == 400 and r.json()["Meta"]["Errors"][0]["Text"] == "Invalid data model and/or event type."


def test_modes(authed: httpx.Client) -> None:
    from emulator.fhir import writeback
    from emulator.fhir.writeback import Invalid

    loose = {"resourceType": "Bundle", "entry": [{"resource": {**timothy(), "favouriteColour": "blue"}}]}
    assert writeback.parse("Patient", "$patient-create", loose, "redox").focus  # the sandbox took such bundles
    with pytest.raises(Invalid) as refused:
        writeback.parse("Patient", "$patient-create", loose, "strict")
    named = {e for _, _, e in refused.value.issues}
    assert {"Bundle.type", "Bundle.entry[0]", "Bundle.entry[0].resource.favouriteColour"} <= named
    wrong_event = copy.deepcopy(message("PatientUpdate", timothy()))
    with pytest.raises(Invalid) as refused:
        writeback.parse("Patient", "$patient-create", wrong_event, "strict")
    assert [e for _, _, e in refused.value.issues] == ["Bundle.entry[0].resource.eventUri"]
    assert writeback.parse("Patient", "$patient-create", message("PatientCreate", timothy(gender="boy")), "off").focus


def test_a_data_model_patient_is_updated_by_fhir_and_both_apis_agree(authed: httpx.Client) -> None:
    ada = {"Identifiers": [{"ID": "4243", "IDType": "MR"}],
           "Demographics": {"FirstName": "Ada", "LastName": "Lovelace", "DOB": "1815-12-10", "Sex": "Female"}}
    assert authed.post("/endpoint", json=event("PatientAdmin", "NewPatient", Patient=ada)).status_code == 200
    [found] = matches(authed, "Patient", identifier="urn:redox:redox-fhir-sandbox:MR|4243")
    update = {"resourceType": "Patient", "id": found["id"], "name": [{"family": "King", "given": ["Ada"]}]}
    written(write(authed, "Patient", "$patient-update", message("PatientUpdate", update)), "200 OK")
    query = event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": "4243", "IDType": "MR"}]})
    assert authed.post("/endpoint", json=query).json()["Patient"]["Demographics"]["LastName"] == "King"


def test_an_11_mb_bundle_is_413_and_nothing_is_written(authed: httpx.Client) -> None:
    huge = timothy(text={"status": "generated", "div": "<div>" + "x" * (11 * 1024 * 1024) + "</div>"})
    outcome = write(authed, "Patient", "$patient-create", message("PatientCreate", huge), expect=413)
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "too-costly"
    assert matches(authed, "Patient", family="Bixbee") == []


def test_strict_mode_over_http() -> None:
    from starlette.testclient import TestClient

    from emulator.settings import Settings
    from emulator.web.app import create_app

    with TestClient(create_app(Settings(db=":memory:", contract_mode="strict", scenarios=()))) as client:
        token = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                    "client_secret": "sandbox-client-secret"}).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        bare = {"resourceType": "Bundle", "type": "message", "entry": [{"resource": timothy()}]}
        r = client.post(f"{BASE}/Patient/$patient-create", json=bare)
        assert r.status_code == 400
        assert [i["expression"] for i in r.json()["issue"]] == [["Bundle.entry[0]"]]
        r = client.post(f"{BASE}/Patient/$patient-create", json=message("PatientCreate", timothy()))
        assert r.status_code == 200 and r.json()["entry"][0]["response"]["status"] == "201 Created"


def test_a_result_sent_by_the_data_model_api_is_updated_in_place_by_fhir(authed: httpx.Client) -> None:
    order = {"ID": "DM-1", "Status": "Resulted", "ResultsStatus": "Final",
             "TransactionDateTime": "2024-09-20T08:00:00Z",
             "CompletionDateTime": "2024-09-20T10:00:00Z", "Procedure": {"Code": "58410-2", "Codeset": "LOINC",
                                                                        "Description": "CBC panel"},
             "Results": [{"Code": "718-7", "Codeset": "LOINC", "Description": "Hemoglobin", "Value": "13.1",
                          "ValueType": "Numeric", "Units": "g/dL", "Status": "Final"},
                         {"Code": "4544-3", "Codeset": "LOINC", "Description": "Hematocrit", "Value": "40",
                          "ValueType": "Numeric", "Units": "%", "Status": "Final"}]}
    patient = {"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]}
    sent = authed.post("/endpoint", json=event("Results", "New", Patient=patient, Orders=[order]))
    assert sent.status_code == 200, sent.text
    before = {o["id"]: o for o in matches(authed, "Observation", patient=BIXBY_EHRID, code="718-7,4544-3")}
    [hgb] = [o for o in before.values() if o["code"]["coding"][0]["code"] == "718-7"]
    changed = {k: v for k, v in hgb.items() if k not in ("valueQuantity", "meta")}
    changed.update(status="corrected", valueString="see note")
    id_, version = written(write(authed, "Observation", "$observation-update", message("ObservationUpdate", changed)),
                           "200 OK")
    assert id_ == hgb["id"]
    read = authed.get(f"{BASE}/Observation/{id_}").json()
    assert (read["status"], read["valueString"], read["meta"]["versionId"]) == ("corrected", "see note", version)
    after = {o["id"] for o in matches(authed, "Observation", patient=BIXBY_EHRID, code="718-7,4544-3")}
    assert after == set(before)  # replaced, not added; the hematocrit kept
    results = authed.post("/endpoint", json=event("Results", "Query", Patients=[patient], OrderIDs=["DM-1"])).json()
    assert [r["Value"] for r in results["Orders"][0]["Results"]] == ["see note", "40"]


def test_version_stamps_kept_by_the_store_are_read_back_and_move_forward() -> None:
    from emulator.fhir.versions import STAMP, Versions

    first = Versions()
    version, updated = first.stamp("Patient", "p1", 1_000.0)
    saved = [(STAMP, "Patient/p1", 5, Versions.record_data(version, updated)),
             (STAMP, "Patient/p2", 6, b"not json"),  # unreadable: that resource shows no version
             ("patient", "k", 7, b"{}")]  # the EHR's own record: not a stamp
    again = Versions(saved)
    assert again.overlay({"resourceType": "Patient", "id": "p1"})["meta"] == {"versionId": version,
                                                                              "lastUpdated": updated}
    assert "meta" not in again.overlay({"resourceType": "Patient", "id": "p2"})
    later, _ = again.stamp("Patient", "p1", 1_000.0)  # the same clock reading (a restart on a manual clock)
    nanos = [int(base64.b64decode(v + "=" * (-len(v) % 4))) for v in (version, later)]
    assert nanos[1] > nanos[0]


def test_a_full_stamp_table_forgets_the_longest_unwritten_resource_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.fhir import versions

    monkeypatch.setattr(versions, "MAX_STAMPS", 3)
    table = versions.Versions()
    for i, id_ in enumerate(("a", "b", "c", "a", "d")):  # "a" written again: "b" is then the oldest write
        table.stamp("Observation", id_, 1_000.0 + i)
    kept = {id_ for id_ in "abcd" if "meta" in table.overlay({"resourceType": "Observation", "id": id_})}
    assert kept == {"a", "c", "d"}


@given(micros=st.integers(min_value=0, max_value=4_102_444_800 * 10**6))  # to 2100
def test_last_updated_is_the_stamps_instant_to_the_microsecond(micros: int) -> None:
    from datetime import UTC, datetime, timedelta

    from emulator.fhir.versions import Versions

    expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)).isoformat(timespec="microseconds")
    assert Versions()._instant(micros * 1_000) == expected
