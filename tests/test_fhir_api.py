"""The FHIR routes one by one: every search parameter type, result parameters, paging, errors, auth and
Redox-Source-Id; every resource the EHR serves checked against fhirclient's strict R4 models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhirclient.models import fhirelementfactory
from fhirclient.models.bundle import Bundle
from starlette.testclient import TestClient

from emulator.ehr.population import BIXBY_EHRID
from emulator.errors import ConfigError
from emulator.fhir.resources import TYPES
from emulator.server import Server
from emulator.settings import Destination, Settings, Source, load
from emulator.web.app import create_app

BASE = "/fhir/R4/redox-fhir-sandbox/Development"
BIXBY_MRN = "urn:redox:health-one:MR|0000000001"


def search(client: httpx.Client | TestClient, kind: str, expect: int = 200, **params: str) -> dict[str, Any]:
    r = client.post(f"{BASE}/{kind}/_search", data=params)
    assert r.status_code == expect, r.text
    body: dict[str, Any] = r.json()
    return body


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def issue(r: httpx.Response) -> str:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    text: str = body["issue"][0]["details"]["text"]
    return text


# -- every type: search, read, strict R4 ------------------------------------------------------
@pytest.mark.parametrize("kind", TYPES)
def test_every_type_searches_reads_and_is_valid_r4(authed: httpx.Client, kind: str) -> None:
    bundle = search(authed, kind, _count="1000")
    Bundle(bundle)  # strict: an unknown element or a wrong type raises
    for entry in bundle.get("entry", []):
        fhirelementfactory.FHIRElementFactory.instantiate(kind, entry["resource"])
        assert entry["fullUrl"].endswith(f"{BASE}/{kind}/{entry['resource']['id']}")
    assert bundle["total"] == len(bundle["entry"]) > 0
    first = bundle["entry"][0]["resource"]
    r = authed.get(f"{BASE}/{kind}/{first['id']}")
    assert r.status_code == 200 and r.json() == first
    assert r.headers["content-type"] == "application/fhir+json; charset=utf-8"
    assert r.headers["x-frame-options"] == "deny"  # Redox's headers


def test_get_search_and_post_search_agree_and_merge_the_query_string(authed: httpx.Client) -> None:
    by_post = search(authed, "Patient", family="Garcia", given="Maria")
    by_get = authed.get(f"{BASE}/Patient", params={"family": "Garcia", "given": "Maria"}).json()
    assert ids(by_post) == ids(by_get) and len(ids(by_get)) == 3
    both = authed.post(f"{BASE}/Patient/_search?family=Garcia&given=Maria", data={"address-postalcode": "53703"}).json()
    assert len(ids(both)) == 2


@pytest.mark.parametrize("body, headers", [
    (b'{"identifier": "urn:redox:health-one:MR|0000000001"}', {"Content-Type": "application/json"}),
    (b'{"identifier": ["urn:redox:health-one:MR|0000000001"]}', {"Content-Type": "application/fhir+json"}),
    (b'{"identifier": "urn:redox:health-one:MR|0000000001"}', {}),  # no Content-Type at all
    (b"identifier=urn%3Aredox%3Ahealth-one%3AMR%7C0000000001", {}),
    (b"identifier=urn%3Aredox%3Ahealth-one%3AMR%7C0000000001", {"Content-Type": "application/x-www-form-urlencoded"}),
], ids=["json", "fhir+json list", "json no type", "form no type", "form"])
def test_search_bodies_redox_clients_send(authed: httpx.Client, body: bytes, headers: dict[str, str]) -> None:
    r = authed.post(f"{BASE}/Patient/_search", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert ids(r.json()) == [BIXBY_EHRID]


# -- parameter types ---------------------------------------------------------------------------
@pytest.mark.parametrize("params, expected", [
    ({"identifier": BIXBY_MRN}, 1),
    ({"identifier": "|0000000001"}, 0),  # "|code": no system, and Bixby's MRN has one
    ({"identifier": "0000000001"}, 1),
    ({"identifier": "900-10-0001"}, 1),  # an SSN, not in the EHR's index
    ({"identifier": "http://hl7.org/fhir/sid/us-ssn|900-10-0001"}, 1),
    ({"identifier": "urn:redox:health-one:MR|"}, 1),  # any code in the system
    ({"identifier": f"{BIXBY_MRN},urn:redox:redox-fhir-sandbox:MR|0000001001"}, 2),  # comma: OR
    ({"family": "bix"}, 1), ({"family": "BIXBY"}, 1), ({"family:exact": "Bixby"}, 1), ({"family:exact": "bixby"}, 0),
    ({"family:contains": "ixb"}, 1), ({"name": "timothy", "family": "bixby"}, 1),
    ({"given": "Paul", "family": "Bixby"}, 1),
    ({"birthdate": "2008-01-06", "family": "Bixby"}, 1), ({"birthdate": "2008", "family": "Bixby"}, 1),
    ({"birthdate": "ge2008-01-06", "family": "Bixby"}, 1), ({"birthdate": "gt2008-01-06", "family": "Bixby"}, 0),
    ({"birthdate": "le2008-01-06", "family": "Bixby"}, 1), ({"birthdate": "lt2008-01-06", "family": "Bixby"}, 0),
    ({"birthdate": "ne2008-01-06", "family": "Bixby"}, 0), ({"birthdate": "eq2008-01", "family": "Bixby"}, 1),
    ({"gender": "male", "family": "Bixby"}, 1), ({"gender:not": "male", "family": "Bixby"}, 0),
    ({"phone": "608-555-0101"}, 1), ({"email": "timothy.bixby@example.com"}, 1),
    ({"address-city": "monroe", "family": "Bixby"}, 1), ({"address-postalcode": "53566", "family": "Bixby"}, 1),
    ({"address-state": "WI", "family": "Bixby"}, 1), ({"address-line": "218 cedar", "family": "Bixby"}, 1),
    ({"active": "true", "family": "Bixby"}, 1), ({"_id": BIXBY_EHRID}, 1),
    ({"general-practitioner.identifier": "http://hl7.org/fhir/sid/us-npi|1811456302", "family": "Bixby"}, 1),
    ({"family": "Bixby", "telecom:missing": "false"}, 1), ({"family": "Bixby", "telecom:missing": "true"}, 0),
    ({"family": ""}, 200),  # an empty value is ignored (HL7)
])
def test_patient_parameters(authed: httpx.Client, params: dict[str, str], expected: int) -> None:
    assert search(authed, "Patient", _count="1000", **params)["total"] == expected


def test_reference_forms_and_chains(authed: httpx.Client) -> None:
    everything = search(authed, "Condition", patient=BIXBY_EHRID)
    assert everything["total"] == 1  # asthma
    for params in ({"patient": f"Patient/{BIXBY_EHRID}"}, {"subject:Patient": BIXBY_EHRID},
                   {"subject": f"https://elsewhere.example/fhir/Patient/{BIXBY_EHRID}"},
                   {"patient.identifier": BIXBY_MRN}, {"subject:Patient.identifier": BIXBY_MRN},
                   {"patient.family": "Bixby", "patient.given": "Timothy"}):
        assert ids(search(authed, "Condition", **params)) == ids(everything), params
    assert search(authed, "Condition", **{"patient": f"Practitioner/{BIXBY_EHRID}"}, expect=400)
    encounters = search(authed, "Appointment", **{"practitioner.identifier": "1811456302", "patient": BIXBY_EHRID})
    assert encounters["total"] == 2
    located = search(authed, "Appointment", **{"location.name": "Green County", "patient": BIXBY_EHRID})
    assert located["total"] == 2
    assert search(authed, "Location", **{"name-physical-type": "Green County Pediatrics$bu"})["total"] == 1
    assert search(authed, "PractitionerRole", **{"practitioner.name": "whitfield"})["total"] == 1


@pytest.mark.parametrize("kind, params, expected", [
    ("AllergyIntolerance", {"clinical-status": "active"}, 1), ("AllergyIntolerance", {"category": "food"}, 1),
    ("AllergyIntolerance", {"code:text": "peanut"}, 1),
    ("AllergyIntolerance", {"code": "http://snomed.info/sct|256349002"}, 1),
    ("Condition", {"code": "http://hl7.org/fhir/sid/icd-10-cm|J45.909"}, 1),
    ("Condition", {"category": "problem-list-item", "recorded-date": "2014-03-11"}, 1),
    ("Condition", {"clinical-status": "resolved"}, 0),
    ("MedicationStatement", {"effective": "ge2014-01-01", "category": "community"}, 1),
    ("MedicationStatement", {"effective": "lt2014-03-11"}, 0),
    ("MedicationRequest", {"intent": "order", "status": "active", "authoredon": "2014-03-11"}, 1),
    ("Appointment", {"status": "booked", "date": "ge2000-01-01"}, 2),
    ("DocumentReference", {"category": "urn:redox:document_kind|CDA", "type": "http://loinc.org|34133-9"}, 1),
    ("Encounter", {"status": "finished"}, 0),  # Bixby's chart has no lab orders
    ("Coverage", {}, 1), ("Coverage", {"status": "active"}, 1),
    ("Immunization", {}, 2), ("Immunization", {"vaccine-code": "http://hl7.org/fhir/sid/cvx|141"}, 1),
    ("Immunization", {"date": "ge2024-01-01", "status": "completed"}, 1),
    ("Procedure", {"code": "http://www.ama-assn.org/go/cpt|94010", "date": "2014-03-11"}, 1),
    ("Procedure", {"status": "in-progress"}, 0),
])
def test_bixby_chart_parameters(authed: httpx.Client, kind: str, params: dict[str, str], expected: int) -> None:
    key = "beneficiary" if kind == "Coverage" else "patient"
    assert search(authed, kind, **{key: BIXBY_EHRID}, **params)["total"] == expected


def test_unscoped_clinical_searches_and_labs(authed: httpx.Client) -> None:
    reports = search(authed, "DiagnosticReport", code="http://loinc.org|58410-2", _count="5")
    assert reports["total"] > 0 and all(
        e["resource"]["code"]["coding"][0]["code"] == "58410-2" for e in reports["entry"])
    high = search(authed, "Observation", category="laboratory", code="718-7", _count="1000")
    assert high["total"] > 0
    encounter = search(authed, "Encounter", _count="1", _include="Encounter:patient,Encounter:practitioner")
    modes = [e["search"]["mode"] for e in encounter["entry"]]
    assert modes == ["match", "include", "include"]
    assert {e["resource"]["resourceType"] for e in encounter["entry"]} == {"Encounter", "Patient", "Practitioner"}


def test_revinclude_elements_and_count(authed: httpx.Client) -> None:
    bundle = search(authed, "Patient", _id=BIXBY_EHRID, _revinclude="Condition:patient,AllergyIntolerance:patient")
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Condition", "AllergyIntolerance"]
    assert bundle["total"] == 1  # included resources are not counted
    slim = search(authed, "Patient", _id=BIXBY_EHRID, _elements="name,birthDate")["entry"][0]["resource"]
    assert set(slim) == {"resourceType", "id", "meta", "name", "birthDate"}
    assert slim["meta"]["tag"][0]["code"] == "SUBSETTED"
    only_total = search(authed, "Patient", _count="0")
    assert only_total["total"] == 200 and "entry" not in only_total


# -- paging --------------------------------------------------------------------------------------
def test_paging_links_follow_with_get(authed: httpx.Client) -> None:
    first = search(authed, "Patient", _count="80")
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert list(links) == ["search", "next", "first", "self"]
    token = first["id"]
    assert links["next"] == f"{authed.base_url}{BASE}/page/Patient/search/{token}.next".replace("//fhir", "/fhir")
    second = authed.get(links["next"]).json()
    third = authed.get({x["relation"]: x["url"] for x in second["link"]}["next"]).json()
    assert "next" not in {x["relation"] for x in third["link"]}
    seen = ids(first) + ids(second) + ids(third)
    assert len(seen) == len(set(seen)) == 200
    back = authed.get({x["relation"]: x["url"] for x in third["link"]}["previous"]).json()
    assert ids(back) == ids(second)
    assert ids(authed.get(links["self"]).json()) == ids(first) == ids(authed.get(links["first"]).json())


@pytest.mark.parametrize("path, status", [
    ("/page/Patient/search/00000000-0000-0000-0000-000000000000.next", 404),
    ("/page/Patient/search/{token}.sideways", 404),
    ("/page/Observation/search/{token}.next", 404),  # the token is a Patient search's
    ("/page/Nope/search/{token}.next", 404),
])
def test_bad_page_links(authed: httpx.Client, path: str, status: int) -> None:
    token = search(authed, "Patient", _count="5")["id"]
    r = authed.get(BASE + path.format(token=token))
    assert r.status_code == status and issue(r)


# -- bad input: 4xx with a clear OperationOutcome, never a 500 ------------------------------------
@pytest.mark.parametrize("params, words", [
    ({"favourite-colour": "blue"}, "favourite-colour"),
    ({"famly": "Bixby"}, 'Did you mean "family"'),
    ({"family:sounds-like": "Bixby"}, ":sounds-like"),
    ({"birthdate": "2008-13-45"}, "Invalid date"),
    ({"birthdate": "xx2008-01-01"}, "Unknown prefix 'xx'"),
    ({"birthdate": "sa2008-01-01"}, "Unknown prefix 'sa'"),
    ({"_count": "100000"}, "_count"), ({"_count": "-1"}, "_count"), ({"_count": "ten"}, "_count"),
    ({"_sort": "family"}, "_sort"),
    ({"_include": "Patient:nothing"}, "_include"),
    ({"_revinclude": "Observation:performer"}, "_revinclude"),
    ({"_elements": "name;birthDate"}, "_elements"),
    ({"gender.identifier": "x"}, "only reference parameters can be chained"),
    ({"general-practitioner.nothing": "x"}, "nothing"),
    ({"active:missing": "maybe"}, "true or false"),
])
def test_bad_parameters(authed: httpx.Client, params: dict[str, str], words: str) -> None:
    r = authed.post(f"{BASE}/Patient/_search", data=params)
    assert r.status_code == 400 and words in issue(r), r.text


@pytest.mark.parametrize("body, headers, status", [
    (b"{not json", {"Content-Type": "application/json"}, 400),
    (b"[1, 2]", {"Content-Type": "application/json"}, 400),
    (b'{"family": {"nested": 1}}', {"Content-Type": "application/json"}, 400),
    (b"family=%FF%FE", {"Content-Type": "application/x-www-form-urlencoded"}, 400),
    (b"\xff\xfe", {"Content-Type": "application/x-www-form-urlencoded"}, 400),
    (b"<Parameters/>", {"Content-Type": "application/xml"}, 415),
])
def test_bad_search_bodies(authed: httpx.Client, body: bytes, headers: dict[str, str], status: int) -> None:
    r = authed.post(f"{BASE}/Patient/_search", content=body, headers=headers)
    assert r.status_code == status and issue(r), r.text


@pytest.mark.parametrize("body", [b"{bad", b"[]", b'{"resource": {"resourceType": "Observation"}}',
                                  b'{"resource": {"resourceType": "Patient"}, "count": 0}',
                                  b'{"resource": {"resourceType": "Patient"}, "count": "5"}',
                                  b'{"resource": {"resourceType": "Patient"}, "onlyCertainMatches": "yes"}',
                                  b'{"resource": {"resourceType": "Patient"}, "matchScoreThreshold": 2}'])
def test_bad_match_bodies(authed: httpx.Client, body: bytes) -> None:
    r = authed.post(f"{BASE}/Patient/$match", content=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400 and issue(r)


def test_redox_error_shapes(authed: httpx.Client) -> None:
    fake = authed.post(f"{BASE}/Fake/$fake-create", content=b"{}")
    assert fake.status_code == 404
    assert fake.json()["issue"][0]["details"] == {"coding": [{"code": "MSG_NO_MODULE", "system":
                                                              "http://terminology.hl7.org/CodeSystem/operation-outcome"}],
                                                  "text": "Unknown slug redox-fhir-sandbox"}
    wrong = authed.post(f"{BASE}/Observation/$appointment-create", content=b"{}")
    assert wrong.status_code == 400
    meta = wrong.json()["Meta"]
    assert meta["Errors"] == [{"Text": "Invalid data model and/or event type.", "Type": "message", "Module": "Parser"}]
    assert meta["Source"]["Name"] == "Redox Request Ingress (Development)"
    logged = authed.get(f"/__emulator/logs/{meta['Logs'][0]['ID']}").json()["payload"]["log"]
    assert (logged["dataModel"], logged["eventType"], logged["status"]) == ("FHIR.Observation", "$appointment-create",
                                                                            "FAILED")
    for path in ("/Appointment/ca4006b5-67e7-43c8-ba4e-b5891b6245c4", "/Patient"):
        empty = authed.post(BASE + path, content=b"{}")
        assert (empty.status_code, empty.content) == (404, b"")


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/Patient/not-a-patient", 404), ("GET", "/patient/x", 404), ("GET", "/CarePlan", 404),
    ("GET", "/Patient/x/_history", 404), ("GET", "/Patient/_search", 405), ("GET", "/Patient/$match", 405),
    ("DELETE", "/Patient/x", 405), ("PUT", "/Patient", 405),
])
def test_unknown_routes_and_methods(authed: httpx.Client, method: str, path: str, status: int) -> None:
    r = authed.request(method, BASE + path)
    assert r.status_code == status and issue(r)


@pytest.mark.parametrize("prefix", ["/fhir/R4/unknown-slug/Development", "/fhir/R4/Redox-FHIR-Sandbox/Development",
                                    "/fhir/R4/redox-fhir-sandbox/development", "/fhir/R4/redox-fhir-sandbox/Test"])
def test_slug_and_environment_are_case_sensitive(authed: httpx.Client, prefix: str) -> None:
    r = authed.get(prefix + "/metadata")
    assert r.status_code == 404 and issue(r)


@pytest.mark.parametrize("environment", ["Development", "Staging", "Production"])
def test_every_environment(authed: httpx.Client, environment: str) -> None:
    r = authed.get(f"/fhir/R4/redox-fhir-sandbox/{environment}/Patient/{BIXBY_EHRID}")
    assert r.status_code == 200


def test_tokens_of_every_flow_and_their_expiry(client: httpx.Client, emulator: Server) -> None:
    url = f"{BASE}/Patient/{BIXBY_EHRID}"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    legacy = client.post("/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"})
    assert client.get(url, headers={"Authorization": f"Bearer {legacy.json()['accessToken']}"}).status_code == 200
    basic = client.post("/v2/auth/token", data={"grant_type": "client_credentials"},
                        auth=("sandbox-client", "sandbox-client-secret")).json()["access_token"]
    assert client.get(url, headers={"Authorization": f"Bearer {basic}"}).status_code == 200
    emulator.sandbox.clock.advance(301)
    expired = client.get(url, headers={"Authorization": f"Bearer {basic}"})
    assert expired.status_code == 401 and expired.json()["issue"][0]["code"] == "login"
    assert client.get(f"{BASE}/metadata").status_code == 200  # metadata needs no token (HL7, SMART)


def test_a_signed_jwt_token(client: httpx.Client, emulator: Server) -> None:
    import time
    import uuid

    import jwt

    from emulator.keys import new_key_pair

    private, public = new_key_pair("RS384")
    kid = public["kid"]
    assert client.put("/__emulator/clients/sandbox-client/jwks", json={"keys": [public]}).status_code == 200
    now = int(time.time())
    assertion = jwt.encode({"iss": "sandbox-client", "sub": "sandbox-client", "aud": f"{emulator.url}/v2/auth/token",
                            "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}, private, algorithm="RS384",
                           headers={"kid": kid})
    token = client.post("/v2/auth/token", data={
        "grant_type": "client_credentials", "client_assertion_type":
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion}).json()
    r = client.get(f"{BASE}/Patient/{BIXBY_EHRID}", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 200


def test_rate_limit_and_body_limit(authed: httpx.Client, emulator: Server) -> None:
    big = b"family=" + b"x" * (emulator.sandbox.settings.payload_limit + 1)
    too_large = authed.post(f"{BASE}/Patient/_search", content=big)
    assert too_large.status_code == 413 and too_large.json()["issue"][0]["code"] == "too-costly"
    limiter = emulator.sandbox.rate_limiter
    limit, limiter.limit = limiter.limit, 1
    try:
        authed.get(f"{BASE}/Patient/{BIXBY_EHRID}")
        throttled = authed.get(f"{BASE}/Patient/{BIXBY_EHRID}")
    finally:
        limiter.limit = limit
    assert throttled.status_code == 429 and throttled.headers["x-ratelimit-limit"] == "1"
    assert throttled.json()["issue"][0]["code"] == "throttled"


# -- several sources, other slugs: in-process apps of their own --------------------------------
SECOND = Source(id="0b7e1a4c-2f3d-4e5a-9b6c-7d8e9f0a1b2c", name="Second App", api_key="k2", api_secret="s2",
                client_id="second-client", client_secret="second-secret")


@pytest.fixture
def two_sources() -> Iterator[tuple[TestClient, dict[str, str]]]:
    app = create_app(Settings(db=":memory:", sources=(Source(), SECOND),
                              destinations=(Destination(), Destination(id="d2", name="Acme EHR",
                                                                       fhir_slug="acme-ehr"))), freeze_heap=False)
    with TestClient(app) as c:
        token = c.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "second-client",
                                               "client_secret": "second-secret"}).json()["access_token"]
        yield c, {"Authorization": f"Bearer {token}"}


def test_redox_source_id_picks_the_source_when_there_are_several(
        two_sources: tuple[TestClient, dict[str, str]]) -> None:
    c, auth = two_sources
    url = f"{BASE}/Patient/{BIXBY_EHRID}"
    missing = c.get(url, headers=auth)
    assert missing.status_code == 400 and "Redox-Source-Id is required" in issue(missing)
    unknown = c.get(url, headers={**auth, "Redox-Source-Id": "nope"})
    assert unknown.status_code == 400 and "not a source" in issue(unknown)
    assert c.get(url, headers={**auth, "redox-source-id": SECOND.id}).status_code == 200
    assert c.get(url, headers={**auth, "REDOX-SOURCE-ID": Source().id}).status_code == 200
    logs = c.get("/__emulator/logs", params={"dataModel": "FHIR.Patient", "status": "SUCCEEDED"}).json()
    assert [entry["source"]["Name"] for entry in logs["payload"]["logs"]] == ["Redox Dev Tools", "Second App"]


def test_a_destination_fhir_slug(two_sources: tuple[TestClient, dict[str, str]]) -> None:
    c, auth = two_sources
    r = c.get(f"/fhir/R4/acme-ehr/Production/Patient/{BIXBY_EHRID}", headers={**auth, "Redox-Source-Id": SECOND.id})
    assert r.status_code == 200
    logs = c.get("/__emulator/logs", params={"dataModel": "FHIR.Patient"}).json()["payload"]["logs"]
    assert logs[0]["destination"]["Name"] == "Acme EHR"


@pytest.mark.parametrize("destinations, words", [
    ([{"id": "x", "name": "X", "fhir_slug": "has space"}], "fhir_slug must be"),
    ([{"id": "x", "name": "X", "fhir_slug": "ok", "url": "http://127.0.0.1:9/h"}], "no url"),
    ([{"id": "x", "name": "X", "fhir_slug": "same"}, {"id": "y", "name": "Y", "fhir_slug": "same"}], "share"),
])
def test_fhir_slug_config_errors(tmp_path: Any, destinations: list[dict[str, Any]], words: str) -> None:
    import yaml

    path = tmp_path / "emulator.yaml"
    path.write_text(yaml.safe_dump({"destinations": destinations}))
    with pytest.raises(ConfigError, match=words):
        load(path, env={})
