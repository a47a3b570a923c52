"""The payload generator: every event type, any seed, a payload that keeps its contract."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from redox.factory import redox_object_factory

from emulator import catalog
from emulator.contracts import payloads
from emulator.contracts.validator import ContractValidator
from emulator.ehr import BIXBY_MRN

EVENTS = [(m, e) for m, events in catalog.DATA_MODELS.items() for e in events]
VALIDATOR = ContractValidator(payloads.bundled())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EVENTS), st.integers(min_value=0, max_value=2**32))
def test_every_generated_payload_keeps_its_contract_and_the_redox_models(event: tuple[str, str], seed: int) -> None:
    model, event_type = event
    payload = payloads.build(model, event_type, seed=seed)
    assert VALIDATOR.problems(payload, model, event_type, "redox") == []
    assert VALIDATOR.problems(payload, model, event_type, "strict") == []
    if not payloads.bundled()[event].permissive:  # those the `redox` package has no model for
        redox_object_factory(json.loads(json.dumps(payload)), lenient=True)


def test_same_seed_same_payload_and_a_full_meta() -> None:
    first = payloads.build("PatientAdmin", "NewPatient", seed=7)
    assert first == payloads.build("PatientAdmin", "NewPatient", seed=7)
    assert first != payloads.build("PatientAdmin", "NewPatient", seed=8)
    assert set(first["Meta"]) == {"DataModel", "EventType", "EventDateTime", "Test", "Source", "Destinations",
                                  "Message", "Transmission", "FacilityCode"}
    assert first["Meta"]["Test"] is True


def test_a_named_patient_is_the_ehr_s_record() -> None:
    payload = payloads.build("Results", "New", patient=BIXBY_MRN, seed=1)
    assert {"ID": BIXBY_MRN, "IDType": "MR"} in payload["Patient"]["Identifiers"]
    assert payload["Patient"]["Demographics"]["LastName"] == "Bixby"
