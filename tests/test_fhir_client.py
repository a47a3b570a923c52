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
    assert [o.name for o in patient.operation] == ["match"]


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
