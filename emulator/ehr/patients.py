"""The master patient index: who the EHR knows, found by identifier or by demographics.

A PatientMerge never deletes: the merged-away patient stays, marked `merged_into`, so a search by
any of its old identifiers resolves to the survivor while demographic searches no longer see it.
Not thread-safe on its own: SyntheticEHR holds the lock.

Every change marks the patient in `changed`, for the store to keep (`record()`); a restart rebuilds
the index from the seeded records and the kept ones. Each index entry carries a stamp (the order
identifiers were learnt in), so that a rebuilt index resolves a shared identifier as the live one did.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import orjson

from emulator.ehr.payload import Identifier, clone

_NAMESPACE = uuid.UUID("6f1d4a52-2b7e-4c39-8d0a-5e9b1c7f3a24")
MAX_SETTLED = 256  # `Patient` sections remembered as changing nothing (see PatientIndex.settled)


@dataclass(slots=True)
class Patient:
    key: str
    identifiers: list[dict[str, Any]]  # [{ID, IDType}], as the EHR lists them
    demographics: dict[str, Any]
    extra: dict[str, Any]  # Notes, Contacts, PCP, Insurances...: whatever else the record carries
    chart: dict[str, list[Any]]  # Allergies, Problems, Medications, Results
    merged_into: str | None = None
    order: int = 0  # position in the index: seeded patients first, then in the order events created them
    # (stamp, ID, IDType) of every index entry naming this patient: its identifiers, and a merge's
    # previous identifiers that no other patient held
    entries: list[tuple[int, str, str | None]] = field(default_factory=list)
    # What the store holds of each chart section: (the section's list when it was stored, the numbers of
    # its first items, those numbers as `runs`); see `stored`
    listed: dict[str, tuple[list[Any], list[int], list[Any]]] = field(default_factory=dict)
    next_item: int = 0  # the number the next item stored gets
    result_ids: tuple[list[Any], int, set[Any]] | None = None  # see events.results

    def record(self) -> dict[str, Any]:
        """Everything the index knows of this patient, as JSON data, the chart's items in it."""
        return {"Key": self.key, "Order": self.order, "Identifiers": self.identifiers,
                "Demographics": self.demographics, "Extra": self.extra, "Chart": self.chart,
                "MergedInto": self.merged_into, "Entries": self.entries}

    def stored(self) -> tuple[dict[str, Any], list[tuple[int, bytes | None]]]:
        """What the store keeps of this patient: the record, its chart listing items by number
        (`ChartItems`, runs of consecutive numbers as [first, last]), and (number, JSON or None: gone) of
        every item not stored yet or no longer in the chart.

        A chart grows by every result a client files, so this costs what changed, not the chart: a
        section changes by items appended to its list, or by a new list in its place (the event handlers
        keep to that). Appended items are the ones past those stored; a new list is matched to the one
        stored by item identity (the stored list is kept, and with it its items). Comparing the whole
        list on every write cost as much as all earlier writes (each item touched, out of the cache)."""
        items: list[tuple[int, bytes | None]] = []
        listing: dict[str, Any] = {}
        for section, values in self.chart.items():
            if not isinstance(values, list):
                listing[section] = {"Value": values}
                continue
            known = self.listed.get(section)
            if known is not None and known[0] is values and len(values) >= len(known[1]):
                numbers, runs = known[1], known[2]
                if len(values) > len(numbers):
                    fresh = self._new(values[len(numbers):], items)
                    numbers.extend(fresh)
                    _extend_runs(runs, fresh)
                listing[section] = runs
                continue
            before, old = (known[0], known[1]) if known is not None else ([], [])
            if before is values:  # shrunk in place: what was stored cannot be matched, so all of it goes
                items.extend((number, None) for number in old)
                before, old = [], []
            # `before` may have grown past `old` since it was stored: those items have no number yet
            by_id = {id(item): number for item, number in zip(before, old, strict=False)}
            numbers = []
            for item in values:
                number = by_id.pop(id(item), None)
                numbers.append(self._new([item], items)[0] if number is None else number)
            items.extend((number, None) for number in by_id.values())
            runs = _runs(numbers)
            self.listed[section] = (values, numbers, runs)
            listing[section] = runs
        for section in [s for s in self.listed if s not in self.chart]:
            items.extend((number, None) for number in self.listed.pop(section)[1])
        return {"Key": self.key, "Order": self.order, "Identifiers": self.identifiers,
                "Demographics": self.demographics, "Extra": self.extra, "ChartItems": listing,
                "MergedInto": self.merged_into, "Entries": self.entries}, items

    def _new(self, fresh: list[Any], items: list[tuple[int, bytes | None]]) -> list[int]:
        """Numbers for items not stored yet; their records go into `items`."""
        numbers = list(range(self.next_item, self.next_item + len(fresh)))
        self.next_item += len(fresh)
        items.extend((number, orjson.dumps(item)) for number, item in zip(numbers, fresh, strict=True))
        return numbers

    @classmethod
    def restore(cls, record: dict[str, Any], items: Mapping[int, Any] | None = None, last: int = -1) -> Patient:
        """A patient from `record()` or `stored()`'s record; `items`: its stored chart items by number,
        `last` the highest number ever given (an item gone since included)."""
        patient = cls(record["Key"], record["Identifiers"], record["Demographics"], record["Extra"],
                      record.get("Chart") or {}, record["MergedInto"], record["Order"],
                      [(e[0], e[1], e[2]) for e in record["Entries"]])
        listed = record.get("ChartItems")
        if listed is not None:
            found = items or {}
            for section, numbers in listed.items():
                if isinstance(numbers, dict):  # a section that is not a list (none the EHR makes), as it was
                    patient.chart[section] = cast(list[Any], numbers.get("Value"))
                    continue
                values, present = [], []
                for number in _expand(numbers):
                    item = found.get(number)
                    if item is not None:
                        values.append(item)
                        present.append(number)
                patient.chart[section] = values
                patient.listed[section] = (values, present, _runs(present))
            patient.next_item = max(last, *numbers_of(listed)) + 1
        return patient

    def render(self) -> dict[str, Any]:
        """The patient as PatientSearch returns it (a fresh copy: callers may keep or change it)."""
        return {"Identifiers": clone(self.identifiers), "Demographics": clone(self.demographics),
                "Notes": [], **clone(self.extra)}

    def brief(self) -> dict[str, Any]:
        """Identifiers and Demographics only, as Scheduling and Clinical Summary embed a patient."""
        return {"Identifiers": clone(self.identifiers), "Demographics": clone(self.demographics)}


def numbers_of(listed: dict[str, Any]) -> list[int]:
    """Every item number a stored chart listing names (-1 when none)."""
    return [-1, *(n for numbers in listed.values() if isinstance(numbers, list) for n in _expand(numbers))]


def _runs(numbers: list[int]) -> list[Any]:
    runs: list[Any] = []
    _extend_runs(runs, numbers)
    return runs


def _extend_runs(runs: list[Any], numbers: list[int]) -> None:
    """Add `numbers` to a listing kept as runs: a number alone, or [first, last] for consecutive ones
    (a section grown by appends is one run, so the record stays the same size as its chart grows)."""
    for n in numbers:
        last = runs[-1] if runs else None
        if type(last) is list and last[1] == n - 1:
            last[1] = n
        elif type(last) is int and last == n - 1:
            runs[-1] = [last, n]
        else:
            runs.append(n)


def _expand(runs: list[Any]) -> Iterator[int]:
    """The numbers of a listing `_extend_runs` made (a layout-7 store lists each number alone)."""
    for run in runs:
        if type(run) is list:
            yield from range(run[0], run[1] + 1)
        else:
            yield run


@dataclass(frozen=True, slots=True)
class DemographicQuery:
    first_name: str
    last_name: str
    dob: str  # YYYY-MM-DD
    sex: str | None = None
    zip5: str | None = None


def _fold(value: object) -> str | None:
    return value.strip().casefold() if isinstance(value, str) else None


def normalize_dob(raw: str) -> str | None:
    """YYYY-MM-DD from a date or a date-time, else None.

    Real Redox answers a search with an unreadable DOB ("01-01-01") with 200 and no match, not 400.
    """
    try:
        return date.fromisoformat(raw[:10]).isoformat()
    except ValueError:
        return None


def _matches(p: Patient, q: DemographicQuery) -> bool:
    d = p.demographics
    if _fold(d.get("FirstName")) != q.first_name.casefold() or _fold(d.get("LastName")) != q.last_name.casefold():
        return False
    dob = d.get("DOB")
    if not isinstance(dob, str) or dob[:10] != q.dob:
        return False
    if q.sex is not None and _fold(d.get("Sex")) != q.sex.casefold():
        return False
    if q.zip5 is not None:
        address = d.get("Address")
        zip_ = address.get("ZIP") if isinstance(address, dict) else None
        if not isinstance(zip_, str | int) or str(zip_).strip()[:5] != q.zip5:
            return False
    return True


def _merge_fields(target: dict[str, Any], update: dict[str, Any]) -> None:
    """Apply an (already copied) update: null means "no change"; nested objects merge one level."""
    for key, value in update.items():
        if value is None:
            continue
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            current.update({k: v for k, v in value.items() if v is not None})
        else:
            target[key] = value


def _changes(target: dict[str, Any], update: dict[str, Any]) -> bool:
    """Whether `_merge_fields(target, update)` would change anything (feeds resend the same data often)."""
    for key, value in update.items():
        if value is None:
            continue
        current = target.get(key)
        if current == value:  # the usual case, compared in C however deep the value
            continue
        if isinstance(value, dict) and isinstance(current, dict):
            if any(v is not None and current.get(k) != v for k, v in value.items()):
                return True
        elif current != value:
            return True
    return False


class PatientIndex:
    def __init__(self, records: list[dict[str, Any]], saved: Mapping[str, dict[str, Any]] | None = None,
                 items: Mapping[str, dict[int, Any]] | None = None) -> None:
        """The seeded `records` (population.build), with `saved` (Patient.stored() records by key) laid over
        them; `items`: the stored chart items, by patient key and number (None: gone)."""
        self._patients: dict[str, Patient] = {}
        self._exact: dict[tuple[str, str], str] = {}  # (IDType casefolded, ID) -> key
        self._by_id: dict[str, list[str]] = {}  # ID -> keys, for searches that give no IDType
        # Feeds resend the same patients over and over. `Patient` sections (as JSON bytes: 1 and 1.0 are
        # equal in Python but not as identifiers) that an update found nothing to change for; every
        # change to who holds what empties it, so a section found here would change nothing again.
        # Kept by length, one per length: a look-up compares bytes once and never hashes a kilobyte of them.
        self._settled: dict[int, bytes] = {}
        self.changed: set[str] = set()  # keys of the patients changed since `drain()`
        later = dict(saved or {})
        items = items or {}

        def restore(kept: dict[str, Any]) -> Patient:
            mine = items.get(kept["Key"], {})
            return Patient.restore(kept, mine, max(mine, default=-1))

        stamp = 0  # a seeded identifier's stamp is its place among the seeded ones, kept or not
        for r in records:
            ids = r["Identifiers"]
            kept = later.pop(r["Key"], None)
            if kept is not None:
                patient = restore(kept)
            else:
                patient = Patient(r["Key"], ids, r["Demographics"], r["Extra"], r["Chart"], order=len(self._patients),
                                  entries=[(stamp + i, e["ID"], e.get("IDType")) for i, e in enumerate(ids)])
            stamp += len(ids)
            self._patients[patient.key] = patient
        for kept in sorted(later.values(), key=lambda k: int(k["Order"])):  # those events created
            patient = restore(kept)
            self._patients[patient.key] = patient
        entries = sorted((e[0], p.key, e[1], e[2]) for p in self._patients.values() for e in p.entries)
        for _, key, id_, id_type in entries:
            self._link(key, id_, id_type)
        self._stamp = max(stamp, entries[-1][0] + 1 if entries else 0)

    def __len__(self) -> int:
        return len(self._patients)

    def __iter__(self) -> Iterator[Patient]:
        """Every patient, merged-away ones too, in index order."""
        return iter(self._patients.values())

    def active(self) -> Iterator[Patient]:
        return (p for p in self._patients.values() if p.merged_into is None)

    def everyone(self) -> Iterator[Patient]:
        """Every patient, merged-away ones too (read-only: the FHIR API reads them)."""
        return iter(self._patients.values())

    def get(self, key: str) -> Patient | None:
        return self._patients.get(key)

    def resolve(self, key: str) -> Patient:
        """The patient a key stands for now: the survivor, if it was merged away."""
        patient = self._patients[key]
        for _ in range(len(self._patients)):
            if patient.merged_into is None:
                break
            patient = self._patients[patient.merged_into]
        return patient

    def settled(self, section: object) -> bool:
        """Whether an update with this `Patient` section is known to change nothing (see `update`)."""
        if not self._settled:
            return False
        try:
            dumped = orjson.dumps(section)
        except orjson.JSONEncodeError:
            return False
        return self._settled.get(len(dumped)) == dumped

    def touch(self, patient: Patient) -> None:
        """`patient` was changed in place (its chart): keep it."""
        self.changed.add(patient.key)

    def drain(self) -> list[Patient]:
        """The patients changed since the last call."""
        changed = [self._patients[key] for key in self.changed]
        self.changed.clear()
        return changed

    def _index(self, key: str, id_: str, id_type: str | None) -> None:
        self._settled.clear()
        self._patients[key].entries.append((self._stamp, id_, id_type))
        self._stamp += 1
        self.changed.add(key)
        self._link(key, id_, id_type)

    def _link(self, key: str, id_: str, id_type: str | None) -> None:
        if id_type is not None:
            self._exact.setdefault((id_type.casefold(), id_), key)
        keys = self._by_id.setdefault(id_, [])
        if key not in keys:
            keys.append(key)

    def _insert(self, patient: Patient) -> None:
        self._patients[patient.key] = patient
        for entry in patient.identifiers:
            self._index(patient.key, entry["ID"], entry.get("IDType"))

    def _lookup(self, id_: str, id_type: str | None) -> list[str]:
        if id_type is None:
            return list(self._by_id.get(id_, ()))
        key = self._exact.get((id_type.casefold(), id_))
        return [key] if key is not None else []

    def find(self, ids: list[Identifier]) -> list[Patient]:
        """Patients holding any of `ids` (IDType case-insensitive, or ID alone), merges resolved."""
        found: dict[str, Patient] = {}
        for id_, id_type in ids:
            for key in self._lookup(id_, id_type):
                patient = self.resolve(key)
                found.setdefault(patient.key, patient)
        return list(found.values())

    def search(self, query: DemographicQuery) -> list[Patient]:
        return [p for p in self.active() if _matches(p, query)]

    def add(self, ids: list[Identifier], demographics: dict[str, Any], extra: dict[str, Any],
            chart: dict[str, list[Any]] | None = None) -> Patient:
        """A new patient from an event; one with no identifiers gets an EHRID so it can be named."""
        demographics, extra = clone(demographics), clone(extra)  # may refuse: before any change
        self._settled.clear()
        key = str(uuid.uuid5(_NAMESPACE, f"{len(self._patients)}:{ids}"))
        identifiers = [{"ID": id_, "IDType": id_type} for id_, id_type in ids] or [{"ID": key, "IDType": "EHRID"}]
        patient = Patient(key, identifiers, {}, {}, chart or {"Allergies": [], "Problems": [], "Medications": [],
                                                             "Results": []}, order=len(self._patients))
        _merge_fields(patient.demographics, demographics)
        _merge_fields(patient.extra, extra)
        self._insert(patient)
        return patient

    def update(self, patient: Patient, ids: list[Identifier], demographics: dict[str, Any],
               extra: dict[str, Any], section: object = None) -> None:
        """PatientUpdate: new identifiers are added, given fields replace old ones, nulls change nothing.

        `section`: the event's whole `Patient` object, which these parts were read from; remembered
        for `settled` when it changes nothing.
        """
        held = {(e["ID"], _fold(e.get("IDType"))) for e in patient.identifiers}
        if (all((i, _fold(t)) in held for i, t in ids) and not _changes(patient.demographics, demographics)
                and not _changes(patient.extra, extra)):
            if section is not None:
                if len(self._settled) >= MAX_SETTLED:
                    self._settled.clear()
                with contextlib.suppress(orjson.JSONEncodeError):
                    dumped = orjson.dumps(section)
                    self._settled[len(dumped)] = dumped
            return  # the EHR already holds exactly this: no copy, no change
        demographics, extra = clone(demographics), clone(extra)  # may refuse: before any change
        self._settled.clear()
        self.changed.add(patient.key)
        for id_, id_type in ids:
            if (id_, _fold(id_type)) not in held and not (id_type is None and any(i == id_ for i, _ in held)):
                patient.identifiers.append({"ID": id_, "IDType": id_type})
                held.add((id_, _fold(id_type)))
                self._index(patient.key, id_, id_type)
        _merge_fields(patient.demographics, demographics)
        _merge_fields(patient.extra, extra)

    def merge(self, survivor: Patient, previous: list[Identifier]) -> list[Patient]:
        """Fold the patients holding `previous` into `survivor`; returns the merged-away patients.

        Every previous identifier resolves to the survivor afterwards, even one this EHR never knew.
        The survivor's chart gains the merged-away charts.
        """
        merged: list[Patient] = []
        self._settled.clear()
        self.changed.add(survivor.key)
        for id_, id_type in previous:
            for key in self._lookup(id_, id_type):
                victim = self.resolve(key)
                if victim.key == survivor.key or victim.merged_into is not None:
                    continue
                victim.merged_into = survivor.key
                self.changed.add(victim.key)
                for section, items in victim.chart.items():
                    survivor.chart.setdefault(section, []).extend(clone(items))
                merged.append(victim)
            if not self._lookup(id_, id_type):
                self._index(survivor.key, id_, id_type)
        return merged
