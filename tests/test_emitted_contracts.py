"""Everything the emulator emits keeps its own contract in contracts/schemas/, in `strict` mode.

The EHR's answer to every query type (held to the response's contract: catalog.RESPONSES), the
pushed event of every event type (as the webhook receives it), and the payloads the scenario
library answers or pushes; for seeded patients and for patients created through /endpoint.

`strict`, through the server's own ContractValidator: `redox` mode lets unknown fields and numbers
for strings pass (what Redox tolerates from clients), so it would miss an answer carrying a section
its data model lacks. What real Redox adds to every Meta (relax.REDOX_META_EXTRAS) is allowed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from emulator import catalog
from emulator.clock import iso
from emulator.contracts import payloads
from emulator.ehr import BIXBY_MRN, DUPLICATE_GROUPS, SyntheticEHR
from emulator.scenarios import checker
from emulator.settings import Settings
from emulator.web.app import create_app
from tests.conftest import REDOX_EMR
from tests.receiver import Receiver

QUERIES = sorted(catalog.QUERIES)
EVENTS = sorted((model, event) for model, events in catalog.DATA_MODELS.items() for event in events)


def _with_labs() -> str:
    """A seeded adult with problems and lab results: answers with content, not only empty lists."""
    patients = SyntheticEHR(seed=1, population=200).state.patients.active()
    found = next(p for p in patients if p.chart["Results"] and p.chart["Problems"] and p.chart["Allergies"])
    return str(next(i["ID"] for i in found.identifiers if i["IDType"] == "MR"))


SEEDED = (BIXBY_MRN, DUPLICATE_GROUPS[0].members[0].mrn, _with_labs())
CREATED = ("EMIT-0001", "EMIT-0002")  # NewPatient through /endpoint, then a Results.New and a Scheduling.New
PATIENTS = (*SEEDED, *CREATED)
LIBRARY = sorted([*(Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"),
                  *(Path(__file__).resolve().parents[1] / "contracts" / "scenarios").glob("*.yaml")])
# Queries whose answer is about the patient asked for; Results and Booked only where /endpoint filed some.
ABOUT_THE_PATIENT = {("PatientSearch", "Query"), ("Clinical Summary", "PatientQuery"),
                     ("Clinical Summary", "VisitQuery"), ("Clinical Summary", "DocumentGet"),
                     ("Vaccination", "PatientQuery")}
FILED = {("Results", "Query"), ("Scheduling", "Booked")}


class Emulator:
    def __init__(self, client: TestClient, hook: Receiver) -> None:
        self.client, self.hook = client, hook
        self.sandbox = client.app.state.sandbox  # type: ignore[attr-defined]

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        payload["Meta"]["Destinations"] = [{"ID": REDOX_EMR}]
        r = self.client.post("/endpoint", json=payload)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def problems(self, body: dict[str, Any], model: str, event: str) -> list[str]:
        return [f"{p.path}: {p.text}" for p in self.sandbox.contracts.problems(body, model, event, mode="strict")]

    def patient(self, mrn: str) -> Any:
        [found] = self.sandbox.ehr.state.patients.find([(mrn, "MR")])
        return found


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Receiver() as hook:
        app = create_app(Settings(db=":memory:", webhook_url=hook.url))
        with TestClient(app) as client:
            r = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                    "client_secret": "sandbox-client-secret"})
            client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            emulator = Emulator(client, hook)
            now = datetime.now(UTC)
            for n, mrn in enumerate(CREATED, start=1):
                ids = [{"ID": mrn, "IDType": "MR"}]
                new = payloads.build("PatientAdmin", "NewPatient", seed=n, now=now)
                new["Patient"]["Identifiers"] = ids
                emulator.send(new)
                for model, event in (("Results", "New"), ("Scheduling", "New")):
                    filed = payloads.build(model, event, seed=n, now=now)
                    filed["Patient"] = {**filed["Patient"], "Identifiers": ids}
                    if model == "Scheduling":
                        filed["Visit"]["VisitDateTime"] = iso((now + timedelta(days=2)).timestamp())
                    emulator.send(filed)
            yield emulator


def _query(emulator: Emulator, model: str, event: str, mrn: str) -> dict[str, Any]:
    """The query a client would send about `mrn`: generated for the event type, then aimed at the patient."""
    patient = emulator.patient(mrn)
    now = datetime.now(UTC)
    query = payloads.build(model, event, patient=patient, seed=7, now=now)
    ids = [{"ID": mrn, "IDType": "MR"}]
    if isinstance(query.get("Patient"), dict):
        query["Patient"]["Identifiers"] = ids
    if (model, event) == ("Results", "Query"):
        query["Patients"] = [{"Identifiers": ids}]
    if model == "Scheduling":
        query["StartDateTime"] = iso((now - timedelta(days=1)).timestamp())
        query["EndDateTime"] = iso((now + timedelta(days=3)).timestamp())
        query["Patient"] = {"Identifiers": ids}
    if (model, event) == ("Provider", "ProviderQuery"):
        query["Provider"] = {"Identifiers": [{"ID": patient.extra.get("PCP", {}).get("ID", "4356789876"),
                                              "IDType": "NPI"}]}
    if (model, event) == ("Clinical Summary", "DocumentGet"):
        listed = emulator.send(_query(emulator, "Clinical Summary", "DocumentQuery", mrn))
        query["Document"] = {"ID": listed["Documents"][0]["ID"]}
    return query


def test_the_catalog_is_all_here() -> None:
    assert (len(QUERIES), len(EVENTS)) == (21, 111)
    assert set(catalog.RESPONSES) == set(QUERIES)


@pytest.mark.parametrize("mrn", PATIENTS)
@pytest.mark.parametrize(("model", "event"), QUERIES, ids=[f"{m}.{e}" for m, e in QUERIES])
def test_every_query_answer_keeps_its_response_contract(emulator: Emulator, model: str, event: str,
                                                        mrn: str) -> None:
    answer = emulator.send(_query(emulator, model, event, mrn))
    response = catalog.RESPONSES[model, event]
    assert emulator.problems(answer, *response) == []
    body = orjson.dumps({k: v for k, v in answer.items() if k != "Meta"}).decode()
    if (model, event) in ABOUT_THE_PATIENT or ((model, event) in FILED and mrn in CREATED):
        assert mrn in body, f"{model}.{event} answered nothing about {mrn}: {body[:300]}"


@pytest.mark.parametrize("mrn", PATIENTS)
@pytest.mark.parametrize(("model", "event"), EVENTS, ids=[f"{m}.{e}" for m, e in EVENTS])
def test_every_pushed_event_keeps_its_contract(emulator: Emulator, model: str, event: str, mrn: str) -> None:
    r = emulator.client.post("/__emulator/push", json={"DataModel": model, "EventType": event, "patient": mrn})
    assert r.status_code == 200, r.text
    [log] = r.json()["payload"]["logs"]
    delivered = _delivered(emulator.hook, log["ID"])
    assert (delivered["Meta"]["DataModel"], delivered["Meta"]["EventType"]) == (model, event)
    assert emulator.problems(delivered, model, event) == []


def _delivered(hook: Receiver, log_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for received in hook.deliveries():
            if received.log_id == log_id:
                body: dict[str, Any] = received.json()
                return body
        time.sleep(0.005)
    raise AssertionError(f"log {log_id} was not delivered within {timeout} s")


def _scenario_payloads() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(file, what, contract event type, payload) for every payload the library answers or pushes."""
    found = []
    for path in LIBRARY:
        scenario = checker.load_file(path)
        for push in scenario.pushes:
            body = orjson.loads(orjson.dumps(dict(push.body)))
            body["Meta"] = {"EventDateTime": "2024-03-04T14:30:00.000Z", "Test": True, **body["Meta"]}
            found.append((path.name, f"push {push.name}", body["Meta"]["EventType"], body))
        for rule in scenario.rules:
            if rule.actions.patient_matches:
                answer = {"Meta": {"DataModel": "PatientSearch", "EventType": "Query"}, "Patient": {},
                          "PotentialMatches": [dict(p) for p in rule.actions.patient_matches]}
                found.append((path.name, f"rule {rule.name}", "Response", answer))
            respond = rule.actions.respond
            if respond is not None and respond.status < 400 and isinstance(respond.body, dict):
                found.append((path.name, f"rule {rule.name}", str(respond.body["Meta"]["EventType"]), respond.body))
        for n, patient in enumerate(scenario.setup.patients):
            answer = {"Meta": {"DataModel": "PatientSearch", "EventType": "Query"}, "Patient": dict(patient)}
            found.append((path.name, f"setup patient {n}", "Response", answer))
    return found


SCENARIO_PAYLOADS = _scenario_payloads()


def test_the_library_answers_and_pushes_something() -> None:
    assert {what.split()[0] for _, what, _, _ in SCENARIO_PAYLOADS} >= {"push", "rule", "setup"}


@pytest.mark.parametrize(("name", "what", "response", "payload"), SCENARIO_PAYLOADS,
                         ids=[f"{n}:{w}" for n, w, _, _ in SCENARIO_PAYLOADS])
def test_every_scenario_payload_keeps_its_contract(emulator: Emulator, name: str, what: str, response: str,
                                                   payload: dict[str, Any]) -> None:
    assert emulator.problems(payload, payload["Meta"]["DataModel"], response) == []
