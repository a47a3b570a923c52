"""`r4.fits`, the fast yes/no in front of fhirclient's models, never passes what the models refuse.

Resources are the FHIR API's own renders (every type it serves), the writeback examples, and
Hypothesis's mutations of them (an element replaced by any JSON, removed, added, a list unwrapped,
a date made unreadable): whenever `fits` says yes, fhirclient's models must find no problem in that
mode. And the valid resources must be answered by `fits` (else the fast path would buy nothing).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.ehr import SyntheticEHR
from emulator.ehr.population import BIXBY_EHRID
from emulator.fhir import r4
from emulator.fhir.resources import TYPES, Resources


def _models_problems(resource: dict[str, Any], strict: bool) -> list[tuple[str, str, str]]:
    """What fhirclient's models alone report (the path `problems` takes when `fits` says no)."""
    from fhirclient.models.fhirabstractbase import FHIRValidationError

    model = r4._model(resource["resourceType"])
    found: list[tuple[str, str, str]] = []
    try:
        model(resource, strict=True)
    except FHIRValidationError as error:
        r4._walk(error, "", found, strict)
    except Exception as error:
        found.append(("structure", str(error), ""))
    return found


def _rendered() -> list[dict[str, Any]]:
    ehr = SyntheticEHR(seed=1, population=30)
    found: list[dict[str, Any]] = []
    resources = Resources(ehr.state)
    for kind in TYPES:
        found.extend(list(resources.every(kind))[:3])
    return found


WRITEBACKS: list[dict[str, Any]] = [
    {"resourceType": "MessageHeader", "id": "h", "eventUri": "https://fhir.redoxengine.com/EventDefinition/X",
     "source": {"name": "Good Health Clinics", "endpoint": "urn:uuid:05107c08-fe2f-4740-8c1d-c7107d18ebe5"},
     "focus": [{"reference": "Observation/o"}]},
    {"resourceType": "Observation", "id": "o", "status": "final",
     "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                               "code": "vital-signs"}]}],
     "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
     "subject": {"reference": f"Patient/{BIXBY_EHRID}"}, "effectiveDateTime": "2031-06-02T15:00:00Z",
     "valueQuantity": {"value": 72.5, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
     "referenceRange": [{"low": {"value": 60}, "high": {"value": 100}}]},
    {"resourceType": "Patient", "id": "p", "identifier": [{"use": "usual", "system": "urn:x", "value": "1"}],
     "name": [{"use": "official", "family": "Bixbee", "given": ["Timmy", "Paul"]}], "gender": "male",
     "birthDate": "2008-01-07", "deceasedBoolean": False, "_birthDate": {"extension": []},
     "telecom": [{"system": "phone", "value": "+1 (808) 867-5301", "use": "home"}],
     "address": [{"use": "home", "line": ["4762 Hickory Street"], "city": "Monroe", "postalCode": "53566"}]},
    {"resourceType": "Appointment", "id": "a", "status": "booked", "start": "2031-03-03T15:00:00Z",
     "end": "2031-03-03T15:30:00Z", "minutesDuration": 30,
     "participant": [{"actor": {"reference": f"Patient/{BIXBY_EHRID}"}, "status": "accepted"}]},
    {"resourceType": "DiagnosticReport", "id": "d", "status": "final", "code": {"text": "CBC"},
     "subject": {"reference": f"Patient/{BIXBY_EHRID}"}, "issued": "2031-03-03T15:00:00.123+01:00",
     "result": [{"reference": "#c"}]},
    {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "code": {"text": "CBC"},
     "subject": {"reference": f"Patient/{BIXBY_EHRID}"}, "authoredOn": "2031-03"},
    {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": f"Patient/{BIXBY_EHRID}"},
     "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}], "date": "2031-03-03T15:00:00Z"},
]
SEEDS = WRITEBACKS + _rendered()


@pytest.mark.parametrize("strict", [False, True])
def test_the_valid_resources_take_the_fast_path(strict: bool) -> None:
    for resource in SEEDS:
        assert _models_problems(resource, strict) == [], resource
        assert r4.fits(r4._model(resource["resourceType"]), resource, strict=strict), resource


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6),
              st.sampled_from(["2031-02-30", "2031-06-02T15:00:00Z", "2031-06-02T25:00:00Z", "2008", "2008-13",
                               "2031-06-02T15:00:60Z", "15:00:00", "final", "Patient/x"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)


def _places(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `data` (dict keys and list indexes)."""
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _places(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _places(value, (*path, i))
    return found


@st.composite
def mutated(draw: Any) -> dict[str, Any]:
    resource = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    kind = resource["resourceType"]
    for _ in range(draw(st.integers(1, 3))):
        places = [p for p in _places(resource) if p and p[0] != "resourceType"]
        if not places:
            break
        path = draw(st.sampled_from(places))
        parent = resource
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "remove", "add", "unwrap", "wrap"]))
        if action == "replace":
            parent[last] = draw(_JSON)
        elif action == "remove":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["favouriteColour", "_status", "_value", "valueString", "text", "id",
                                         "extension", "resourceType"]))] = draw(_JSON)
        elif action == "unwrap" and isinstance(parent[last], list) and parent[last]:
            parent[last] = parent[last][0]
        elif action == "wrap":
            parent[last] = [parent[last]]
    resource["resourceType"] = kind  # `problems` checks the type before either step
    return resource


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(resource=mutated(), strict=st.booleans())
def test_fits_never_passes_what_fhirclient_refuses(resource: dict[str, Any], strict: bool) -> None:
    model = r4._model(resource["resourceType"])
    if r4.fits(model, resource, strict=strict):
        assert _models_problems(resource, strict) == [], resource


@pytest.mark.parametrize(("resource", "strict"), [
    ({**WRITEBACKS[1], "status": None}, False),  # fhirclient: null is absent, status is required
    ({**WRITEBACKS[1], "effectiveDateTime": "2031-02-30T15:00:00Z"}, False),
    ({**WRITEBACKS[1], "valueQuantity": {"value": "72"}}, False),
    ({**WRITEBACKS[1], "code": [WRITEBACKS[1]["code"]]}, False),
    ({**WRITEBACKS[2], "birthDate": "06-01-2008"}, False),
    ({**WRITEBACKS[2], "name": [{"given": "Timmy"}]}, False),
    ({**WRITEBACKS[2], "favouriteColour": "blue"}, True),
    ({**WRITEBACKS[3], "minutesDuration": "30"}, False),
    ({**WRITEBACKS[0], "source": {"name": "x"}}, False),  # source.endpoint is required in R4
])
def test_the_known_bad_cases_go_to_the_models(resource: dict[str, Any], strict: bool) -> None:
    assert not r4.fits(r4._model(resource["resourceType"]), resource, strict=strict)
    assert r4.problems(resource, strict=strict)


def test_observation_ids_are_those_of_the_rendered_observations() -> None:
    """A writeback finds what it wrote by `clinical.observation_ids`, which must name what reads render."""
    from emulator.fhir import clinical

    ehr = SyntheticEHR(seed=1, population=40)
    patients = [p for p in ehr.state.patients if p.chart.get("Results")]
    assert patients
    for patient in patients:
        assert clinical.observation_ids(patient) == [o["id"] for o in clinical.observations(patient)]
