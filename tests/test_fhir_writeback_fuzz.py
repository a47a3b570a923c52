"""Whatever JSON a writeback carries, the answer is a transaction-response or a FhirError (a 4xx
OperationOutcome), never an exception: in `off` mode no R4 check stands between the body and the
mappings, so they are fuzzed there (and in `redox` and `strict`, where fhirclient's models are)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.ehr import SyntheticEHR
from emulator.ehr.population import BIXBY_EHRID
from emulator.errors import FhirError
from emulator.fhir import FhirService
from emulator.fhir.writeback import OPERATIONS

BASE = "http://testserver/fhir/R4/redox-fhir-sandbox/Development"
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
                     st.sampled_from([f"Patient/{BIXBY_EHRID}", "2031-03-03T15:00:00Z", "2008-01-06", "final",
                                      "booked", "urn:redox:redox-fhir-sandbox:MR", "#c", "Observation/o"]))
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                     max_leaves=12)
_ELEMENTS = ["id", "identifier", "name", "gender", "birthDate", "telecom", "address", "extension", "status",
             "code", "subject", "effectiveDateTime", "valueQuantity", "interpretation", "referenceRange", "result",
             "contained", "participant", "start", "end", "minutesDuration", "content", "masterIdentifier",
             "intent", "requester", "performer", "generalPractitioner", "communication", "reasonCode"]


@st.composite
def bundles(draw: Any, kind: str) -> Any:
    resource = {"resourceType": kind, **draw(st.dictionaries(st.sampled_from(_ELEMENTS), _JSON, max_size=6))}
    if draw(st.booleans()):  # anchored to a known patient, so the fuzz reaches the mappings, not only the checks
        resource["subject"] = {"reference": f"Patient/{BIXBY_EHRID}"}
        resource["participant"] = [{"actor": {"reference": f"Patient/{BIXBY_EHRID}"}, "status": "accepted"}]
        resource.setdefault("start", "2031-03-03T15:00:00Z")
        resource.setdefault("name", [{"family": "Fuzz"}])
    header = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["focus", "source", "eventUri"]), _JSON)))
    entries: list[Any] = [{"fullUrl": draw(st.sampled_from(["urn:uuid:a", f"{BASE}/{kind}/x"])), "resource": resource}]
    if header is not None and draw(st.booleans()):
        header["focus"] = [{"reference": entries[0]["fullUrl"]}]
    if header is not None:
        entries.insert(0, {"resource": {"resourceType": "MessageHeader", **header}})
    extra = draw(st.one_of(st.none(), _JSON))
    if extra is not None:
        entries.append({"resource": extra} if draw(st.booleans()) else extra)
    return draw(st.sampled_from([{"resourceType": "Bundle", "type": "message", "entry": entries}] * 4 + [
        {"resourceType": "Bundle", "entry": draw(_JSON)}, draw(_JSON)]))


@pytest.fixture(scope="module")
def fhir() -> FhirService:
    return FhirService(SyntheticEHR(seed=1, population=20))


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("mode", ["off", "redox", "strict"])
def test_any_body_is_answered_or_refused_with_an_operation_outcome(fhir: FhirService, operation: str,
                                                                   mode: str) -> None:
    kind = OPERATIONS[operation][0]

    @given(body=bundles(kind))
    @settings(max_examples=60 if mode == "off" else 20, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(body: Any) -> None:
        try:
            answer = fhir.write(kind, operation, body, BASE, mode, [])
        except FhirError as refused:
            assert 400 <= refused.status < 500
            assert refused.outcome()["resourceType"] == "OperationOutcome"
        else:
            assert answer.body["type"] == "transaction-response"
            outcomes.append(answer.body["entry"][0]["response"]["status"])

    outcomes: list[str] = []
    run()
    if mode == "off" and operation != "$appointment-cancel":
        assert outcomes, "the fuzz never wrote anything: it tests the checks only"
