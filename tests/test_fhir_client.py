"""A real, generic FHIR client runs unchanged against the emulator on a real socket: fhirclient (PyPI,
the SMART on FHIR client) reads metadata, takes the token URL from it, authorizes with client
credentials, searches, reads, follows `next` links and parses an OperationOutcome."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from fhirclient import client
from fhirclient.models.bundle import Bundle
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient

from emulator.server import Server

BIXBY_MRN = "urn:redox:health-one:MR|0000000001"


@pytest.fixture
def smart(emulator: Server) -> Iterator[client.FHIRClient]:
    settings = {"app_id": "sandbox-client", "app_secret": "sandbox-client-secret",
                "api_base": f"{emulator.url}/fhir/R4/redox-fhir-sandbox/Development"}
    fhir = client.FHIRClient(settings=settings)
    fhir.prepare()  # reads metadata: the SMART oauth-uris extension names the token URL
    fhir.authorize()  # client credentials, HTTP Basic, against /v2/auth/token
    yield fhir
    fhir.server.session.close()


def test_metadata_names_the_token_url_and_what_is_served(smart: client.FHIRClient, emulator: Server) -> None:
    statement = smart.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    assert smart.server.auth._token_uri == f"{emulator.url}/v2/auth/token"
    assert smart.ready
    patient = next(r for r in statement.rest[0].resource if r.type == "Patient")
    assert {p.name for p in patient.searchParam} >= {"identifier", "family", "given", "birthdate"}
    assert [o.name for o in patient.operation] == ["match", "patient-create", "patient-update"]


def test_search_by_identifier_then_read(smart: client.FHIRClient) -> None:
    found = list(Patient.where(struct={"identifier": BIXBY_MRN}).perform_resources_iter(smart.server))
    assert [(p.name[0].family, p.birthDate.isostring) for p in found] == [("Bixby", "2008-01-06")]
    again = Patient.read(found[0].id, smart.server)
    assert again.name[0].given == ["Timothy", "Paul"]
    assert any(i.system == "urn:redox:health-one:MR" and i.value == "0000000001" for i in again.identifier)


def test_search_by_name_and_birthdate(smart: client.FHIRClient) -> None:
    found = list(Patient.where(struct={"family": "Garcia", "given": "Maria", "birthdate": "1985-03-14"})
                 .perform_resources_iter(smart.server))
    assert len(found) == 3  # the look-alikes of population.DUPLICATE_GROUPS
    assert {p.gender for p in found} == {"female"}


def test_follows_next_links_through_every_page(smart: client.FHIRClient) -> None:
    pages: list[Bundle] = list(Patient.where(struct={"_count": "60"}).perform_iter(smart.server))
    assert len(pages) >= 3
    ids = [e.resource.id for page in pages for e in page.entry]
    assert len(ids) == len(set(ids)) == pages[0].total == 200
    assert all(len(page.entry) == 60 for page in pages[:-1])


def test_a_bad_parameter_is_an_operation_outcome_it_can_parse(smart: client.FHIRClient) -> None:
    with pytest.raises(requests.HTTPError) as raised:
        next(Patient.where(struct={"favourite-colour": "blue"}).perform_iter(smart.server))
    assert raised.value.response.status_code == 400
    outcome = OperationOutcome(raised.value.response.json())
    assert "favourite-colour" in outcome.issue[0].details.text
    assert outcome.issue[0].code == "invalid"


def test_writes_a_patient_through_a_writeback_and_reads_it_back_unchanged(smart: client.FHIRClient) -> None:
    from fhirclient.models.bundle import BundleEntry
    from fhirclient.models.fhirreference import FHIRReference
    from fhirclient.models.messageheader import MessageHeader

    patient = Patient({"resourceType": "Patient", "id": "new",
                       "identifier": [{"system": "urn:redox:redox-fhir-sandbox:MR", "value": "FC-77"}],
                       "name": [{"use": "official", "family": "Hopper", "given": ["Grace", "Brewster"]}],
                       "gender": "female", "birthDate": "1906-12-09",
                       "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
                       "address": [{"use": "home", "line": ["1 Navy Way"], "city": "Arlington", "state": "VA",
                                    "postalCode": "22202"}]})
    header = MessageHeader({"eventUri": "https://fhir.redoxengine.com/EventDefinition/PatientCreate",
                            "source": {"endpoint": "05107c08-fe2f-4740-8c1d-c7107d18ebe5"}})
    header.focus = [FHIRReference({"reference": "Patient/new"})]
    bundle = Bundle({"type": "message"})
    bundle.entry = [BundleEntry({"resource": header.as_json()}), BundleEntry({"resource": patient.as_json()})]
    answer = smart.server.post_json("Patient/$patient-create", bundle.as_json()).json()
    response = Bundle(answer).entry[0].response
    assert response.status == "201 Created"
    id_ = response.location.split("/")[-3]
    back = Patient.read(id_, smart.server)
    assert back.meta.versionId == response.location.split("/")[-1]
    sent, read = patient.as_json(), back.as_json()
    for element in ("name", "gender", "birthDate", "telecom", "address"):
        assert read[element] == sent[element], element
    assert [(i["system"], i["value"]) for i in read["identifier"]] == [("urn:redox:redox-fhir-sandbox:MR", "FC-77")]
