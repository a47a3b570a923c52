"""Everything the synthetic EHR knows at one moment, loaded from the pristine population and the store.

Records the store keeps are (kind, key, version, JSON or None): kind "patient" keyed by the EHR's
patient key, "chart-item" keyed `{patient key}/{number}` (one item of a patient's chart, which the
patient's record lists by number, runs of consecutive ones as [first, last]; None: gone),
"appointment" keyed by VisitNumber (None: renumbered away).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from emulator.ehr.patients import Patient, PatientIndex
from emulator.ehr.payload import Identifier, array, identifiers, obj
from emulator.ehr.scheduling import Schedule

PATIENT, CHART_ITEM, APPOINTMENT = "patient", "chart-item", "appointment"
Record = tuple[str, str, int, bytes | None]


@dataclass(slots=True)
class State:
    patients: PatientIndex
    schedule: Schedule

    @classmethod
    def load(cls, pristine: bytes, anchor: float, saved: Sequence[Record] = ()) -> State:
        """A fresh, independent state: orjson parses the pristine JSON faster than deepcopy copies it.

        `saved`: the records the store kept, laid over the seeded ones (the newest version of each)."""
        data = orjson.loads(pristine)
        patients: dict[str, dict[str, Any]] = {}
        items: dict[str, dict[int, Any]] = {}
        appointments: dict[str, dict[str, Any] | None] = {}
        for kind, key, _, raw in sorted(saved, key=lambda r: r[2]):
            if kind == PATIENT and raw is not None:
                patients[key] = orjson.loads(raw)
            elif kind == CHART_ITEM:
                owner, _, number = key.rpartition("/")
                if number.isdigit():
                    items.setdefault(owner, {})[int(number)] = None if raw is None else orjson.loads(raw)
            elif kind == APPOINTMENT:
                appointments[key] = None if raw is None else orjson.loads(raw)
        return cls(PatientIndex(data["patients"], patients, items),
                   Schedule(data["appointments"], anchor, appointments))

    def changes(self) -> list[tuple[str, str, bytes | None]]:
        """(kind, key, JSON or None) of every record changed since the last call: what the store keeps."""
        patients, schedule = self.patients, self.schedule
        if not patients.changed and not schedule.changed and not schedule.removed:
            return []
        found: list[tuple[str, str, bytes | None]] = []
        for p in patients.drain():
            record, items = p.stored()
            found += [(CHART_ITEM, f"{p.key}/{number}", data) for number, data in items]
            found.append((PATIENT, p.key, orjson.dumps(record)))
        changed, removed = schedule.drain()
        found += [(APPOINTMENT, a.visit_number, orjson.dumps(a.record())) for a in changed]
        found += [(APPOINTMENT, number, None) for number in removed]
        return found


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
