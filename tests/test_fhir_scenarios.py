"""Scenario rules on the FHIR API: matching by resource, interaction, search parameters and JSON paths,
answers as OperationOutcomes, delays past the sync timeout (504), token actions between pages, and the
harness's judging of FHIR exchanges; on a real emulator on a socket, with httpx and fhirclient."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from click.testing import CliRunner
from fhirclient import client as fhir_client
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient

from emulator.cli import main
from emulator.ehr.population import BIXBY_EHRID
from emulator.harness.expectations import Evidence, evaluate_all
from emulator.scenarios.checker import ScenarioError, load_text
from emulator.scenarios.matching import RuleIndex, Seen, explain, matches_statically
from emulator.server import Server
from tests.test_fhir_writeback import SOURCE, message, observation

BASE = "/fhir/R4/redox-fhir-sandbox/Development"


def activate(client: httpx.Client, text: str) -> None:
    r = client.post("/__emulator/scenarios", content=text, headers={"content-type": "application/yaml"})
    assert r.status_code == 200, r.text


def issue(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    found: dict[str, Any] = body["issue"][0]
    return found


def last_exchange(client: httpx.Client) -> dict[str, Any]:
    found: dict[str, Any] = client.get("/__emulator/exchanges").json()["payload"]["exchanges"][-1]
    return found


# ---- the checker: file:line:column -------------------------------------------------------------------
RULE = "description: x\nrules:\n  - name: r\n    when: {when}\n    then: {then}\n"
BROKEN = {  # kind: (when, then, the line, words the message holds)
    "unknown-resource": ("{resource: Patinet}", "{delay: 1}", 4, 'unknown FHIR resource \'Patinet\'. Did you mean '
                                                                 '"Patient"?'),
    "unknown-interaction": ("{resource: Patient, interaction: serch}", "{delay: 1}", 4,
                            'unknown FHIR interaction \'serch\'. Did you mean "search"?'),
    "unknown-operation": ("{interaction: $observation-creat}", "{delay: 1}", 4,
                          'Did you mean "$observation-create"?'),
    "operation-of-another-resource": ("{resource: Patient, interaction: $observation-create}", "{delay: 1}", 4,
                                      "$observation-create is an operation of Observation, not of Patient"),
    "params-on-a-read": ("{resource: Patient, interaction: read, params: {family: Bixby}}", "{delay: 1}", 4,
                         "search parameters belong to interaction search, not read"),
    "data-model-with-resource": ("{resource: Patient, data_model: PatientAdmin}", "{delay: 1}", 4,
                                 "data_model matches the Data Model API"),
    "patient-matches-on-fhir": ("{resource: Patient, interaction: $match}",
                                "{patient_matches: [{Identifiers: [{ID: '1', IDType: MR}]}, "
                                "{Identifiers: [{ID: '2', IDType: MR}]}]}", 5,
                                "patient_matches answers the Data Model API"),
    "error-on-fhir": ("{resource: Observation}", "{respond: {status: 422, error: {text: refused}}}", 5,
                      "a FHIR rule answers with outcome"),
    "outcome-on-endpoint": ("{path: /endpoint}", "{respond: {status: 422, outcome: {text: refused}}}", 5,
                            "outcome (an OperationOutcome) answers FHIR requests"),
    "outcome-and-body": ("{resource: Observation}", "{respond: {status: 422, body: {}, outcome: {text: refused}}}", 5,
                         "respond takes one of body, error and outcome"),
    "bad-issue-code": ("{resource: Observation}", "{respond: {status: 422, outcome: {text: refused, code: Bad Code}}}",
                       5, "an HL7 issue-type code"),
    "bad-severity": ("{resource: Observation}", "{respond: {status: 422, outcome: {text: refused, severity: eror}}}", 5,
                     'Did you mean "error"?'),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_bad_fhir_rule_gives_file_line_and_column(kind: str, tmp_path: Path) -> None:
    when, then, line, words = BROKEN[kind]
    file = tmp_path / f"{kind}.yaml"
    file.write_text(RULE.replace("{when}", when).replace("{then}", then))
    result = CliRunner().invoke(main, ["check", str(file)])
    assert result.exit_code == 1, result.output
    lines = [x for x in result.stdout.splitlines() if x.startswith(str(file))]
    first = re.match(rf"^{re.escape(str(file))}:(\d+):(\d+): (.*)$", lines[0]) if lines else None
    assert first is not None, result.output
    assert int(first.group(1)) == line and int(first.group(2)) > 1, lines
    assert words in lines[0], lines


def test_the_column_points_at_the_bad_value() -> None:
    text = "description: x\nrules:\n  - name: r\n    when:\n      resource: Patient\n      interaction: serch\n" \
           "    then: {delay: 1}\n"
    with pytest.raises(ScenarioError) as raised:
        load_text(text, "x.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.column) == (6, 20), problem


def test_client_api_and_paging_are_checked() -> None:
    with pytest.raises(ScenarioError, match=r"x.yaml:1:\d+: .*expected one of data-model, fhir"):
        load_text("client: {api: hl7}\ndescription: x\n", "x.yaml")
    with pytest.raises(ScenarioError, match=r"x.yaml:3:\d+: .*unknown key 'page'"):
        load_text("description: x\nexpectations:\n  - {name: e, paging: {match: {resource: Patient}, page: 2}}\n",
                  "x.yaml")
    with pytest.raises(ScenarioError, match=r"x.yaml:3:\d+: .*paging follows FHIR searches"):
        load_text("description: x\nexpectations:\n  - {name: e, paging: {match: {interaction: read}}}\n", "x.yaml")
    with pytest.raises(ScenarioError, match=r"x.yaml:3:\d+: .*valid checks Data Model payloads"):
        load_text("description: x\nexpectations:\n  - {name: e, requests: {match: {resource: Patient}, valid: true}}\n",
                  "x.yaml")
    scenario = load_text("description: x\nclient: {api: fhir}\nexpectations:\n"
                         "  - {name: e, paging: {match: {resource: Patient, interaction: search}, pages: {min: 2}}}\n")
    assert scenario.client_api == "fhir" and scenario.expectations[0].kind == "paging"


# ---- matching, no HTTP -------------------------------------------------------------------------------
def rules(text: str) -> RuleIndex:
    return RuleIndex(load_text("description: x\nrules:\n" + text).rules)


def fhir_seen(resource: str, interaction: str, params: dict[str, list[str]] | None = None,
              payload: Any = None, method: str = "GET") -> Seen:
    return Seen.fhir(method, f"{BASE}/{resource}", {}, payload, resource, interaction, params or {})


def test_rules_match_resource_interaction_parameters_and_body() -> None:
    index = rules("""
  - name: bixby-search
    when: {resource: Patient, interaction: search, params: {family: Bixby, _count: {exists: true}}}
    then: {delay: 1}
  - name: heart-rates
    when: {interaction: $observation-create, json: {"$.entry[*].resource.code.coding[*].code": "8867-4"}}
    then: {delay: 1}
  - name: any-read
    when: {interaction: read}
    then: {delay: 1}
""")

    def first(seen: Seen) -> str | None:
        found = [r for r in index.candidates(seen) if matches_statically(r.match, seen)]
        return found[0].name if found else None

    assert first(fhir_seen("Patient", "search", {"family": ["Bixby"], "_count": ["50"]})) == "bixby-search"
    assert first(fhir_seen("Patient", "search", {"family": ["Bixby"]})) is None  # _count must be there
    assert first(fhir_seen("Patient", "search", {"family": ["Rivera"], "_count": ["5"]})) is None
    assert first(fhir_seen("Observation", "search", {"family": ["Bixby"], "_count": ["5"]})) is None
    bundle = message("ObservationCreate", observation(f"Patient/{BIXBY_EHRID}"))
    assert first(fhir_seen("Observation", "$observation-create", payload=bundle, method="POST")) == "heart-rates"
    other = message("ObservationCreate", observation(f"Patient/{BIXBY_EHRID}", code={"coding": [{"code": "1-1"}]}))
    assert first(fhir_seen("Observation", "$observation-create", payload=other, method="POST")) is None
    assert first(fhir_seen("Appointment", "read")) == "any-read"
    # a data-model request is never a FHIR one, whatever its Meta says
    endpoint = Seen.of("POST", "/endpoint", {}, {"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"}},
                       False)
    assert first(endpoint) is None


def test_near_misses_name_the_fhir_matcher_that_failed() -> None:
    [rule] = rules("  - name: bixby\n    when: {resource: Patient, interaction: search, params: {family: Bixby}}\n"
                   "    then: {delay: 1}\n").rules
    miss = explain(rule, fhir_seen("Patient", "search", {"family": ["Rivera"]}), "start", 1)
    assert miss.failed == ("search parameter family: found 'Rivera', expected 'Bixby'",)
    miss = explain(rule, fhir_seen("Observation", "read"), "start", 1)
    assert miss.failed[:2] == ("resource: expected Patient, found Observation",
                               "interaction: expected search, found read")
    endpoint = explain(rule, Seen.of("POST", "/endpoint", {}, None, False), "start", 1)
    assert "resource: expected Patient, found no FHIR request" in endpoint.failed


# ---- end to end: a real emulator on a socket ------------------------------------------------------------
def test_a_writeback_refused_with_an_operation_outcome(authed: httpx.Client) -> None:
    activate(authed, """description: x
rules:
  - name: refuse
    when: {resource: Observation, interaction: $observation-create}
    then:
      respond:
        status: 422
        outcome: {text: "Observation rejected by the EHR", code: business-rule, expression: [Observation.code],
                  diagnostics: no vitals from this source}
""")
    before = authed.get(f"{BASE}/Observation", params={"patient": BIXBY_EHRID, "_count": "1000"}).json()
    body = message("ObservationCreate", observation(f"Patient/{BIXBY_EHRID}"))
    r = authed.post(f"{BASE}/Observation/$observation-create", json=body,
                    headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/fhir+json")
    assert issue(r) == {"severity": "error", "code": "business-rule", "details": {"text": "Observation rejected by "
                        "the EHR"}, "diagnostics": "no vitals from this source", "expression": ["Observation.code"]}
    after = authed.get(f"{BASE}/Observation", params={"patient": BIXBY_EHRID, "_count": "1000"}).json()
    assert after.get("total") == before.get("total")  # nothing was written
    exchanges = authed.get("/__emulator/exchanges").json()["payload"]["exchanges"]
    refused = next(e for e in exchanges if e["path"].endswith("$observation-create"))
    assert refused["scenario"]["rule"] == "refuse"
    assert refused["scenario"]["fhir"] == {"resource": "Observation", "interaction": "$observation-create",
                                           "params": {}}
    logs = authed.get("/__emulator/logs", params={"dataModel": "FHIR.Observation"}).json()["payload"]["logs"]
    assert [e["status"] for e in logs if e["eventType"] == "$observation-create"] == ["FAILED"]


def test_search_parameters_from_the_query_and_the_form_body(authed: httpx.Client) -> None:
    activate(authed, """description: x
rules:
  - name: busy-for-bixby
    when: {resource: Patient, interaction: search, params: {family: Bixby}}
    then: {respond: {status: 503, outcome: {text: The EHR is busy, code: transient}, headers: {Retry-After: "3"}}}
""")
    for r in (authed.get(f"{BASE}/Patient", params={"family": "Bixby"}),
              authed.post(f"{BASE}/Patient/_search", data={"family": "Bixby"})):
        assert r.status_code == 503 and r.headers["retry-after"] == "3"
        assert issue(r)["code"] == "transient" and issue(r)["details"]["text"] == "The EHR is busy"
    r = authed.get(f"{BASE}/Patient", params={"family": "Rivera"})
    assert r.status_code == 200 and r.json()["resourceType"] == "Bundle"
    note = last_exchange(authed)["scenario"]
    assert note["rule"] is None
    assert note["nearMisses"][0]["failed"] == ["search parameter family: found 'Rivera', expected 'Bixby'"]


def test_match_answered_from_a_json_path_into_the_body(authed: httpx.Client) -> None:
    candidates = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Patient", "id": f"twin-{n}"},
         "search": {"mode": "match", "score": 0.7, "extension": [
             {"url": "http://hl7.org/fhir/StructureDefinition/match-grade", "valueCode": "probable"}]}}
        for n in (1, 2)]}
    activate(authed, "description: x\nrules:\n  - name: twins\n    when: {resource: Patient, interaction: $match, "
                     "json: {\"$.resource.birthDate\": \"2008-01-06\"}}\n"
                     f"    then: {{respond: {{status: 200, body: {json.dumps(candidates)}}}}}\n")
    patient = {"resourceType": "Patient", "name": [{"family": "Bixby", "given": ["Timothy"]}], "gender": "male"}
    r = authed.post(f"{BASE}/Patient/$match", json={"resource": {**patient, "birthDate": "2008-01-06"}})
    assert r.status_code == 200 and [e["resource"]["id"] for e in r.json()["entry"]] == ["twin-1", "twin-2"]
    r = authed.post(f"{BASE}/Patient/$match", json={"resource": {**patient, "birthDate": "2008-01-07"}})
    assert r.status_code == 200 and "twin-1" not in r.text  # the EHR's own $match


def test_a_slow_ehr_gets_a_504_operation_outcome(authed: httpx.Client) -> None:
    activate(authed, """description: x
setup: {clock: {mode: accelerated, factor: 600}, sync_timeout: 120, token_lifetimes: {oauth: 86400}}
rules:
  - name: slow
    when: {resource: Patient, interaction: search}
    then: {delay: 150}
  - name: slow-but-in-time
    when: {resource: Patient, interaction: read}
    then: {delay: 30}
""")
    r = authed.get(f"{BASE}/Patient", params={"family": "Bixby"})
    assert r.status_code == 504 and issue(r)["code"] == "timeout"
    assert "120 seconds" in issue(r)["details"]["text"]
    r = authed.get(f"{BASE}/Patient/{BIXBY_EHRID}")
    assert r.status_code == 200 and r.json()["id"] == BIXBY_EHRID


def test_a_token_expired_between_pages_and_the_same_page_again(authed: httpx.Client, client: httpx.Client) -> None:
    activate(authed, """description: x
setup: {clock: {mode: manual}}
rules:
  - name: expire
    when: {resource: Patient, interaction: search, nth: 2}
    then: {expire_token: true}
""")
    first = authed.get(f"{BASE}/Patient", params={"_count": "80"}).json()
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    r = authed.get(following)
    assert r.status_code == 401 and issue(r)["code"] == "login"
    token = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                "client_secret": "sandbox-client-secret"}).json()["access_token"]
    authed.headers["Authorization"] = f"Bearer {token}"
    r = authed.get(following)
    assert r.status_code == 200 and len(r.json()["entry"]) == 80  # the second page, not the first again
    assert {e["resource"]["id"] for e in r.json()["entry"]}.isdisjoint(e["resource"]["id"] for e in first["entry"])


def test_a_dropped_connection_on_a_read(authed: httpx.Client) -> None:
    activate(authed, "description: x\nrules:\n  - name: drop\n    when: {resource: Patient, interaction: read}\n"
                     "    then: {drop_connection: true}\n")
    with pytest.raises(httpx.RemoteProtocolError):
        authed.get(f"{BASE}/Patient/{BIXBY_EHRID}")
    assert authed.get(f"{BASE}/metadata").status_code == 200


def test_a_2xx_rule_without_a_body_keeps_the_fhir_apis_answer(authed: httpx.Client) -> None:
    activate(authed, "description: x\nrules:\n  - name: accepted\n    when: {resource: Patient, interaction: read}\n"
                     "    then: {respond: {status: 203}}\n")
    r = authed.get(f"{BASE}/Patient/{BIXBY_EHRID}")
    assert r.status_code == 203 and r.json()["id"] == BIXBY_EHRID


@pytest.fixture
def smart(emulator: Server) -> Iterator[fhir_client.FHIRClient]:
    settings = {"app_id": "sandbox-client", "app_secret": "sandbox-client-secret",
                "api_base": f"{emulator.url}{BASE}"}
    fhir = fhir_client.FHIRClient(settings=settings)
    fhir.prepare()
    fhir.authorize()
    yield fhir
    fhir.server.session.close()


def test_fhirclient_meets_a_scripted_answer(smart: fhir_client.FHIRClient, client: httpx.Client) -> None:
    activate(client, """description: x
rules:
  - name: no-bixbys-today
    when: {resource: Patient, interaction: search, params: {family: {matches: "^Bix"}}}
    then: {respond: {status: 422, outcome: {text: "Searches by family name are disabled", code: not-supported}}}
""")
    with pytest.raises(requests.HTTPError) as raised:
        next(Patient.where(struct={"family": "Bixby"}).perform_iter(smart.server))
    assert raised.value.response.status_code == 422
    outcome = OperationOutcome(raised.value.response.json())  # strict R4 parsing
    assert outcome.issue[0].code == "not-supported"
    assert outcome.issue[0].details.text == "Searches by family name are disabled"
    found = list(Patient.where(struct={"family": "Rivera"}).perform_resources_iter(smart.server))
    assert all(p.name[0].family == "Rivera" for p in found)


# ---- the harness's judging of FHIR exchanges ----------------------------------------------------------
PAGING = """description: x
client: {api: fhir}
expectations:
  - name: to-the-end
    paging: {match: {resource: Patient, interaction: search}, pages: {min: 2}}
  - name: no-writeback
    requests: {match: {interaction: $observation-create}, count: 0}
"""


def verdicts(emulator: Server) -> dict[str, tuple[bool, str]]:
    scenario = load_text(PAGING)
    evidence = Evidence(scenario, emulator.sandbox.store.exchanges(), emulator.sandbox.contracts)
    return {v.expectation: (v.ok, v.message) for v in evaluate_all(evidence)}


def test_paging_expectations_judge_the_journal(authed: httpx.Client, emulator: Server) -> None:
    activate(authed, PAGING)
    page = authed.get(f"{BASE}/Patient", params={"_count": "90"}).json()
    found = verdicts(emulator)
    assert found["to-the-end"][0] is False and "never fetched" in found["to-the-end"][1]
    assert found["no-writeback"] == (True, "0 matching request(s)")
    while True:
        following = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        if following is None:
            break
        page = authed.get(following).json()
    ok, said = verdicts(emulator)["to-the-end"]
    assert ok, said
    assert said.startswith("3 page(s) fetched")  # 200 patients, 90 a page
    authed.post(f"{BASE}/Observation/$observation-create", json=message(
        "ObservationCreate", observation(f"Patient/{BIXBY_EHRID}")), headers={"Redox-Source-Id": SOURCE})
    assert verdicts(emulator)["no-writeback"] == (False, "expected exactly 0 matching request(s), found 1")


def test_a_search_with_other_parameters_is_not_a_resend(authed: httpx.Client, emulator: Server) -> None:
    activate(authed, "description: x\nrules:\n  - name: busy\n    when: {resource: Patient, interaction: search}\n"
                     "    then: {respond: {status: 503}}\n")
    for family in ("Bixby", "Rivera", "Rivera"):
        assert authed.get(f"{BASE}/Patient", params={"family": family}).status_code == 503
    scenario = load_text("description: x\nexpectations:\n  - name: once\n    after: {match: {resource: Patient, "
                         "interaction: search, params: {family: Bixby}}, status: 503, resent: 0}\n"
                         "  - name: twice\n    after: {match: {resource: Patient, interaction: search, "
                         "params: {family: Rivera}}, status: 503, resent: 0}\n")
    found = {v.expectation: v.ok for v in evaluate_all(Evidence(scenario, emulator.sandbox.store.exchanges(),
                                                                emulator.sandbox.contracts))}
    assert found == {"once": True, "twice": False}


def test_a_rule_by_method_and_path_answers_a_fhir_request_as_a_recording_replays(authed: httpx.Client) -> None:
    recorded = {"resourceType": "Patient", "id": "recorded-1", "name": [{"family": "Recorded"}]}
    activate(authed, f"description: x\nrules:\n  - name: recorded\n    when: {{method: GET, path: "
                     f"{BASE}/Patient/recorded-1}}\n"
                     f"    then: {{respond: {{status: 200, body: {json.dumps(recorded)}}}}}\n")
    r = authed.get(f"{BASE}/Patient/recorded-1")
    assert r.status_code == 200 and r.json() == recorded
    assert authed.get(f"{BASE}/Patient/recorded-2").status_code == 404  # the EHR's own answer
