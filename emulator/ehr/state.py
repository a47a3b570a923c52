"""Everything the synthetic EHR knows at one moment, loaded from the pristine population."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from emulator.ehr.patients import Patient, PatientIndex
from emulator.ehr.payload import Identifier, array, identifiers, obj
from emulator.ehr.scheduling import Schedule


@dataclass(slots=True)
class State:
    patients: PatientIndex
    schedule: Schedule

    @classmethod
    def load(cls, pristine: bytes, anchor: float) -> State:
        """A fresh, independent state: orjson parses the pristine JSON faster than deepcopy copies it."""
        data = orjson.loads(pristine)
        return cls(PatientIndex(data["patients"]), Schedule(data["appointments"], anchor))


def patient_parts(payload: dict[str, Any]) -> tuple[list[Identifier], dict[str, Any], dict[str, Any]]:
    """Patient.Identifiers, Patient.Demographics and the rest of Patient, each checked for type."""
    patient = obj(payload.get("Patient"), "Patient")
    ids = identifiers(patient.get("Identifiers"), "Patient.Identifiers")
    demographics = obj(patient.get("Demographics"), "Patient.Demographics")
    extra = {k: v for k, v in patient.items() if k not in ("Identifiers", "Demographics", "PreviousIdentifiers")}
    return ids, demographics, extra


def listed_patients(value: object, field: str) -> list[Identifier]:
    """The identifiers of every entry of a `Patients: [{Identifiers}]` list (queries name patients so)."""
    found: list[Identifier] = []
    for i, entry in enumerate(array(value, field)):
        found.extend(identifiers(obj(entry, f"{field}[{i}]").get("Identifiers"), f"{field}[{i}].Identifiers"))
    return found


def first_match(state: State, ids: list[Identifier]) -> Patient | None:
    found = state.patients.find(ids)
    return found[0] if found else None
