"""Every FHIR resource the EHR's state stands for, by type: read by id, listed for a search.

A `Resources` wraps one `State` for one request, under the EHR's lock (`SyntheticEHR.view`); nothing
is copied or cached across requests, so what the data-model API changed shows in the next FHIR answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from emulator.ehr.patients import Patient
from emulator.ehr.state import State
from emulator.fhir import clinical, directory, patient, scheduling

PATIENT_KINDS = tuple(clinical.RENDERERS)  # a patient's chart: each resource names its patient
TYPES: tuple[str, ...] = ("Patient", *PATIENT_KINDS, "Appointment", *directory.KINDS)


class Resources:
    def __init__(self, state: State) -> None:
        self.state = state
        self._replaced: dict[str, list[Patient]] | None = None

    # -- patients --------------------------------------------------------------------------
    def patient(self, p: Patient) -> dict[str, Any]:
        if self._replaced is None:
            self._replaced = {}
            for other in self.state.patients.everyone():
                if other.merged_into is not None:
                    self._replaced.setdefault(other.merged_into, []).append(other)
        return patient.resource(p, self._replaced.get(p.key, []), p.merged_into)

    def active_patients(self) -> Iterator[Patient]:
        return self.state.patients.active()

    def patient_record(self, key: str) -> Patient | None:
        return self.state.patients.get(key)

    # -- read ------------------------------------------------------------------------------
    def read(self, kind: str, id_: str) -> dict[str, Any] | None:
        if kind == "Patient":
            found = self.state.patients.get(id_)
            return self.patient(found) if found is not None else None
        if kind in clinical.RENDERERS:
            key = clinical.patient_key(id_)
            owner = self.state.patients.get(key) if key is not None else None
            if owner is None or owner.merged_into is not None:
                return None
            return next((r for r in clinical.RENDERERS[kind](owner) if r["id"] == id_), None)
        if kind == "Appointment":
            for appointment in self.state.schedule:
                if scheduling.appointment_id(appointment.visit_number) == id_:
                    return scheduling.resource(self.state, appointment)
            return None
        return next((dict(r) for r in directory.resources(kind) if r["id"] == id_), None)

    # -- lists for a search ----------------------------------------------------------------
    def every(self, kind: str, patients: Iterable[Patient] | None = None) -> Iterator[dict[str, Any]]:
        """Every resource of `kind`; with `patients`, only theirs (types that name a patient)."""
        if kind == "Patient":
            for p in patients if patients is not None else self.active_patients():
                yield self.patient(p)
        elif kind in clinical.RENDERERS:
            render = clinical.RENDERERS[kind]
            for p in patients if patients is not None else self.active_patients():
                if p.merged_into is None:
                    yield from render(p)
        elif kind == "Appointment":
            keys = {p.key for p in patients} if patients is not None else None
            for appointment in self.state.schedule:
                if keys is None or scheduling.patient_key(self.state, appointment) in keys:
                    yield scheduling.resource(self.state, appointment)
        else:
            for r in directory.resources(kind):
                yield dict(r)

    def names_patient(self, kind: str) -> bool:
        return kind == "Appointment" or kind in clinical.RENDERERS
