"""Every FHIR resource the EHR's state stands for, by type: read by id, listed for a search.

A `Resources` wraps one `State` for one request, under the EHR's lock (`SyntheticEHR.view`). What it
renders is kept in a `Cache` for as long as the EHR's `generation` stays the same: any event, query or
reset moves it on, so what the data-model API changed shows in the next FHIR answer, while a client
that reads the same patient again and again pays for the rendering once. Cached resources are shared:
callers never change one (`search.subset` and the Bundles build new objects around them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from emulator.ehr.patients import Patient
from emulator.ehr.state import State
from emulator.fhir import clinical, directory, patient, scheduling

PATIENT_KINDS = tuple(clinical.RENDERERS)  # a patient's chart: each resource names its patient
TYPES: tuple[str, ...] = ("Patient", *PATIENT_KINDS, "Appointment", *directory.KINDS)


T = TypeVar("T")
MAX_CACHED = 5_000  # rendered patients and charts kept per generation (a 10,000-patient scan stays bounded)


class Cache:
    """What was rendered from one generation of the EHR's state (used under the EHR's lock)."""

    def __init__(self) -> None:
        self.generation = -1
        self._items: dict[tuple[str, str], Any] = {}

    def at(self, generation: int) -> Cache:
        if generation != self.generation:
            self._items.clear()
            self.generation = generation
        return self

    def get(self, key: tuple[str, str], make: Callable[[], T]) -> T:
        try:
            found: T = self._items[key]
            return found
        except KeyError:
            pass
        if len(self._items) >= MAX_CACHED:
            self._items.clear()
        value = self._items[key] = make()
        return value

    def clear(self) -> None:
        self._items.clear()
        self.generation = -1


class Resources:
    def __init__(self, state: State, cache: Cache | None = None) -> None:
        self.state = state
        self.cache = cache if cache is not None else Cache()

    # -- patients --------------------------------------------------------------------------
    def _replaced(self) -> dict[str, list[Patient]]:
        found: dict[str, list[Patient]] = {}
        for other in self.state.patients.everyone():
            if other.merged_into is not None:
                found.setdefault(other.merged_into, []).append(other)
        return found

    def patient(self, p: Patient) -> dict[str, Any]:
        def render() -> dict[str, Any]:
            replaced = self.cache.get(("replaced", ""), self._replaced)
            return patient.resource(p, replaced.get(p.key, []), p.merged_into)

        return self.cache.get(("Patient", p.key), render)

    def demographics(self) -> list[tuple[Patient, str, str, str, str, str | None]]:
        """(patient, family, given, middle (folded), DOB's date, gender) of every active patient: what a
        Patient search by name, birth date or gender checks before it renders anyone."""
        from emulator.fhir.values import fold

        def table() -> list[tuple[Patient, str, str, str, str, str | None]]:
            rows = []
            for p in self.state.patients.active():
                d = p.demographics
                names = [n.strip() if isinstance(n, str) else "" for n in
                         (d.get("LastName"), d.get("FirstName"), d.get("MiddleName"))]
                dob = d.get("DOB")
                rows.append((p, fold(names[0]), fold(names[1]), fold(names[2]),
                             dob[:10] if isinstance(dob, str) else "", patient.gender(d.get("Sex"))))
            return rows

        return self.cache.get(("demographics", ""), table)

    def born_on(self) -> dict[str, list[tuple[Patient, str, str, str, str, str | None]]]:
        """`demographics` rows by birth date (YYYY-MM-DD), each day's in the table's order: a search for a
        day looks up its patients rather than checking everyone's."""
        def index() -> dict[str, list[tuple[Patient, str, str, str, str, str | None]]]:
            found: dict[str, list[tuple[Patient, str, str, str, str, str | None]]] = {}
            for row in self.demographics():
                found.setdefault(row[4], []).append(row)
            return found

        return self.cache.get(("born on", ""), index)

    def chart(self, kind: str, p: Patient) -> list[dict[str, Any]]:
        return self.cache.get((kind, p.key), lambda: clinical.RENDERERS[kind](p))

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
            return next((r for r in self.chart(kind, owner) if r["id"] == id_), None)
        if kind == "Appointment":
            for appointment in self.state.schedule:
                if scheduling.appointment_id(appointment.visit_number) == id_:
                    return scheduling.resource(self.state, appointment)
            return None
        return next((r for r in directory.resources(kind) if r["id"] == id_), None)

    # -- lists for a search ----------------------------------------------------------------
    def every(self, kind: str, patients: Iterable[Patient] | None = None) -> Iterator[dict[str, Any]]:
        """Every resource of `kind`; with `patients`, only theirs (types that name a patient)."""
        if kind == "Patient":
            for p in patients if patients is not None else self.active_patients():
                yield self.patient(p)
        elif kind in clinical.RENDERERS:
            for p in patients if patients is not None else self.active_patients():
                if p.merged_into is None:
                    yield from self.chart(kind, p)
        elif kind == "Appointment":
            keys = {p.key for p in patients} if patients is not None else None
            for appointment in self.state.schedule:
                if keys is None or scheduling.patient_key(self.state, appointment) in keys:
                    yield scheduling.resource(self.state, appointment)
        else:
            yield from directory.resources(kind)

    def names_patient(self, kind: str) -> bool:
        return kind == "Appointment" or kind in clinical.RENDERERS
