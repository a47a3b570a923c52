"""Searchsets kept encoded per EHR generation (`FhirService._page`, `paging.template`): each answer has its
own token, and what changes the EHR or a resource's version changes the next answer; the birth-date index
answers as the scan does (model layer)."""

from __future__ import annotations

import uuid

import orjson

from emulator.ehr import SyntheticEHR
from emulator.ehr.population import BIXBY_EHRID
from emulator.fhir import paging
from emulator.fhir.service import FhirService
from tests.conftest import event

BASE = "http://127.0.0.1/fhir/R4/redox-fhir-sandbox/Development"
BY_MRN = [("identifier", "urn:redox:health-one:MR|0000000001")]


def _service() -> FhirService:
    return FhirService(SyntheticEHR(seed=1, population=20))


def test_tokens_are_version_4_uuids() -> None:
    tokens = {paging.new_token() for _ in range(2_000)}
    assert len(tokens) == 2_000
    for token in list(tokens)[:200]:
        parsed = uuid.UUID(token)
        assert str(parsed) == token and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_each_answer_of_a_kept_search_has_its_own_token_and_the_same_matches() -> None:
    fhir = _service()
    first, second = (fhir.search("Patient", BY_MRN, BASE) for _ in range(2))
    assert first.body["id"] != second.body["id"]
    for answer in (first, second):
        body = orjson.loads(answer.json())
        assert body == answer.body
        assert [e["resource"]["id"] for e in body["entry"]] == [BIXBY_EHRID]
        assert {link["url"].rsplit("/", 1)[1].split(".")[0] for link in body["link"]} == {body["id"]}
        assert fhir.pages.get(body["id"]) is not None
    assert {k: v for k, v in first.body.items() if k not in ("id", "link")} == \
           {k: v for k, v in second.body.items() if k not in ("id", "link")}


def test_a_version_stamp_shows_in_the_next_answer_of_the_same_search() -> None:
    fhir = _service()
    assert "versionId" not in (fhir.search("Patient", BY_MRN, BASE).body["entry"][0]["resource"].get("meta") or {})
    with fhir.ehr.lock:
        version, _ = fhir.versions.stamp("Patient", BIXBY_EHRID, fhir.ehr.clock.now())
    assert fhir.search("Patient", BY_MRN, BASE).body["entry"][0]["resource"]["meta"]["versionId"] == version
    fhir.reset()
    assert "versionId" not in (fhir.search("Patient", BY_MRN, BASE).body["entry"][0]["resource"].get("meta") or {})


def test_a_resource_that_carries_the_placeholder_is_answered_with_the_real_token() -> None:
    fhir = _service()
    odd = {"Identifiers": [{"ID": paging.PLACEHOLDER, "IDType": "MR"}],
           "Demographics": {"FirstName": "Place", "LastName": paging.PLACEHOLDER, "DOB": "1990-01-01"}}
    fhir.ehr.consume(event("PatientAdmin", "NewPatient", Patient=odd))
    pairs = [("identifier", f"urn:redox:redox-fhir-sandbox:MR|{paging.PLACEHOLDER}")]
    for _ in range(2):
        answer = fhir.search("Patient", pairs, BASE)
        body = orjson.loads(answer.json())
        assert body["id"] != paging.PLACEHOLDER and fhir.pages.get(body["id"]) is not None
        assert body["entry"][0]["resource"]["name"][0]["family"] == paging.PLACEHOLDER
        assert all(link["url"].endswith(f"/{body['id']}.{link['relation']}") for link in body["link"])
    assert paging.template(paging.Page("Patient", tuple(pairs), 0, 31, BASE), 1,
                           [body["entry"][0]["resource"]], []) is None


def test_the_birth_date_index_finds_what_a_scan_finds_and_a_new_patient_at_once() -> None:
    fhir = _service()
    with fhir.ehr.lock:
        days = sorted({str(p.demographics["DOB"])[:10] for p in fhir.ehr.state.patients.active()})[:6]

    def ids(*pairs: tuple[str, str]) -> list[str]:
        return [e["resource"]["id"] for e in fhir.search("Patient", [*pairs, ("_count", "1000")], BASE).body.get(
            "entry", [])]

    for day in days:  # one day: the index; the same day twice in one parameter (a scan) must agree
        assert ids(("birthdate", day)) == ids(("birthdate", f"{day},{day}")) != []
        assert ids(("birthdate", day), ("birthdate", f"eq{day}")) == ids(("birthdate", day))
    assert ids(("birthdate", days[0]), ("birthdate", days[1])) == []  # two days ANDed: nobody
    ada = {"Identifiers": [{"ID": "IDX-1", "IDType": "MR"}],
           "Demographics": {"FirstName": "Ada", "LastName": "Index", "DOB": days[0], "Sex": "Female"}}
    fhir.ehr.consume(event("PatientAdmin", "NewPatient", Patient=ada))
    found = ids(("birthdate", days[0]))
    assert found == ids(("birthdate", f"{days[0]},{days[0]}")) and len(found) >= 2
    assert ids(("birthdate", days[0]), ("family", "index")) == [found[-1]]
