"""Appointments: the seeded diary, Scheduling events that change it, Booked and AvailableSlots answers.

The clinic day is a grid of `SLOTS_PER_DAY` half-hour slots from 09:00 UTC, Monday to Friday. The
seeded appointments are stored as (business day, slot) so the same seed gives the same diary
relative to "today" on the emulator's clock, whatever today is: business day 1 is the first weekday
after the clock's date when the EHR is built or reset.

An appointment blocks its provider's slots while it is neither Canceled nor a No Show; one whose
AttendingProvider has no ID blocks every provider (the EHR cannot tell whose diary it is in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from emulator.clock import iso
from emulator.ehr.payload import clone, number, obj, text, timestamp
from emulator.ehr.providers import BY_NPI, PROVIDERS, Provider

SLOT_MINUTES = 30
DAY_START_HOUR = 9
SLOTS_PER_DAY = 16  # 09:00 to 17:00
HORIZON_DAYS = 22  # business days seeded ahead, about 30 calendar days
DEFAULT_SLOTS_WINDOW = 7 * 86400.0
MAX_SLOTS_WINDOW = 31 * 86400.0
_LAST_DAY = date(9999, 12, 30)
_NOT_BLOCKING = frozenset({"Canceled", "No Show"})
_MANAGED = frozenset({"VisitNumber", "OldVisitNumber", "VisitDateTime", "OldDateTime", "Duration",
                      "Status", "Reason", "AttendingProvider", "Location"})


@dataclass(slots=True)
class Appointment:
    visit_number: str
    start: float
    duration: int  # minutes
    status: str
    reason: str | None
    provider: dict[str, Any] | None
    location: dict[str, Any] | None
    patient_key: str | None = None  # a patient the index knows
    patient: dict[str, Any] | None = None  # else what the scheduling event said about the patient
    extra: dict[str, Any] = field(default_factory=dict)  # the event's other Visit fields

    @property
    def end(self) -> float:
        return self.start + self.duration * 60

    def record(self) -> dict[str, Any]:
        """The appointment as JSON data (see `restore`): the store keeps changed ones."""
        return {"VisitNumber": self.visit_number, "Start": self.start, "Duration": self.duration,
                "Status": self.status, "Reason": self.reason, "Provider": self.provider, "Location": self.location,
                "PatientKey": self.patient_key, "Patient": self.patient, "Extra": self.extra}

    @classmethod
    def restore(cls, record: dict[str, Any]) -> Appointment:
        return cls(record["VisitNumber"], record["Start"], record["Duration"], record["Status"], record["Reason"],
                   record["Provider"], record["Location"], record["PatientKey"], record["Patient"], record["Extra"])

    @property
    def provider_id(self) -> str | None:
        if self.provider is None:
            return None
        id_ = self.provider.get("ID") or self.provider.get("NPI")
        return id_ if isinstance(id_, str) else str(id_) if isinstance(id_, int) else None

    @property
    def blocks(self) -> bool:
        return self.status not in _NOT_BLOCKING


def business_days(anchor: float, count: int) -> list[date]:
    """The first `count` weekdays after the UTC date of `anchor`."""
    day = datetime.fromtimestamp(anchor, UTC).date()
    days: list[date] = []
    while len(days) < count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def slot_start(day: date, slot: int) -> float:
    return datetime(day.year, day.month, day.day, DAY_START_HOUR, tzinfo=UTC).timestamp() + slot * SLOT_MINUTES * 60


def _provider_field(visit: dict[str, Any]) -> dict[str, Any] | None:
    provider = visit.get("AttendingProvider")
    if provider is None:
        providers = visit.get("AttendingProviders")
        if isinstance(providers, list) and providers:
            provider = providers[0]
    return clone(obj(provider, "Visit.AttendingProvider")) if provider is not None else None


class Schedule:
    """Every appointment by VisitNumber. Not thread-safe: SyntheticEHR holds the lock.

    Changes are marked in `changed` (VisitNumbers) and `removed` (numbers renumbered away) for the
    store; a restart lays out the seeded diary again and the kept appointments over it (at their own
    times: an appointment an event touched stays where the event put it).
    """

    def __init__(self, templates: Iterable[dict[str, Any]], anchor: float,
                 saved: Mapping[str, dict[str, Any] | None] | None = None) -> None:
        days = business_days(anchor, HORIZON_DAYS)
        self._by_number: dict[str, Appointment] = {}
        for t in templates:
            provider: Provider = BY_NPI[t["Provider"]]
            self._by_number[t["VisitNumber"]] = Appointment(
                t["VisitNumber"], slot_start(days[t["BusinessDay"] - 1], t["Slot"]), t["Duration"],
                "Scheduled", t["Reason"], provider.reference(), provider.location(), t["PatientKey"])
        for visit_number, kept in (saved or {}).items():
            if kept is None:
                self._by_number.pop(visit_number, None)
            else:
                self._by_number[visit_number] = Appointment.restore(kept)
        self.changed: set[str] = set()
        self.removed: set[str] = set()

    def drain(self) -> tuple[list[Appointment], list[str]]:
        """The appointments changed and the numbers gone since the last call."""
        changed = [self._by_number[n] for n in self.changed if n in self._by_number]
        removed = [n for n in self.removed if n not in self._by_number]
        self.changed.clear()
        self.removed.clear()
        return changed, removed

    def __len__(self) -> int:
        return len(self._by_number)

    def __iter__(self) -> Iterator[Appointment]:
        return iter(self._by_number.values())

    def get(self, visit_number: str) -> Appointment | None:
        return self._by_number.get(visit_number)

    def apply(self, event: str, visit: dict[str, Any], patient_key: str | None,
              patient: dict[str, Any] | None) -> Appointment | None:
        """Scheduling.New / Reschedule / Modification upsert by VisitNumber; Cancel and NoShow mark.

        Raises QueryRejected for a field it cannot read; the caller drops the event.
        """
        visit_number = text(visit.get("VisitNumber"), "Visit.VisitNumber")
        if visit_number is None:
            return None
        old_number = text(visit.get("OldVisitNumber"), "Visit.OldVisitNumber")
        start = timestamp(visit.get("VisitDateTime"), "Visit.VisitDateTime")
        duration = number(visit.get("Duration"), "Visit.Duration")
        reason = text(visit.get("Reason"), "Visit.Reason")
        status = text(visit.get("Status"), "Visit.Status")
        provider = _provider_field(visit)
        location = visit.get("Location")
        location = clone(obj(location, "Visit.Location")) if location is not None else None
        extra = clone({k: v for k, v in visit.items() if k not in _MANAGED})
        # Everything is read (and may have been refused) before anything changes.
        appointment = self._by_number.get(visit_number)
        if appointment is None and old_number is not None and old_number in self._by_number:
            appointment = self._by_number.pop(old_number)
            appointment.visit_number = visit_number
            self._by_number[visit_number] = appointment
            self.removed.add(old_number)
            self.changed.add(visit_number)
        if event in ("Cancel", "NoShow"):
            if appointment is not None:
                appointment.status = "Canceled" if event == "Cancel" else "No Show"
                appointment.extra.update(extra)
                self.changed.add(visit_number)
            return appointment
        if appointment is None:
            if start is None:
                return None
            appointment = Appointment(visit_number, start, 15, "Scheduled", None, None, None)
            self._by_number[visit_number] = appointment
        self.changed.add(visit_number)
        if start is not None:
            appointment.start = start
        if duration is not None:
            appointment.duration = max(1, min(24 * 60, round(duration)))
        appointment.status = status or ("Scheduled" if event in ("New", "Reschedule") else appointment.status)
        appointment.reason = reason or appointment.reason
        appointment.provider = provider or appointment.provider
        appointment.location = location or appointment.location
        if patient_key is not None or patient is not None:
            appointment.patient_key, appointment.patient = patient_key, patient
        appointment.extra.update(extra)
        return appointment

    def reassign(self, old_key: str, new_key: str) -> None:
        """After a PatientMerge, the survivor keeps the merged-away patient's appointments."""
        for appointment in self._by_number.values():
            if appointment.patient_key == old_key:
                appointment.patient_key = new_key
                self.changed.add(appointment.visit_number)

    def booked(self, start: float, end: float | None, wanted: Callable[[Appointment], bool],
               providers: set[str] | None) -> list[Appointment]:
        """Appointments starting in [start, end) that are still on (not Canceled), oldest first."""
        found = [a for a in self._by_number.values()
                 if a.status != "Canceled" and a.start >= start and (end is None or a.start < end)
                 and (providers is None or a.provider_id in providers) and wanted(a)]
        found.sort(key=lambda a: (a.start, a.visit_number))
        return found

    def available(self, start: float, end: float | None, providers: set[str] | None,
                  now: float) -> list[tuple[float, Provider]]:
        """Free (time, provider) slots in [start, end), not in the past; end defaults to a week on."""
        end = min(end if end is not None else start + DEFAULT_SLOTS_WINDOW, start + MAX_SLOTS_WINDOW)
        roster = [p for p in PROVIDERS if providers is None or p.npi in providers]
        busy = [a for a in self._by_number.values() if a.blocks and a.start < end and a.end > start]
        free: list[tuple[float, Provider]] = []
        day = datetime.fromtimestamp(max(start, now), UTC).date()
        while day < _LAST_DAY and slot_start(day, 0) < end:
            if day.weekday() < 5:
                for slot in range(SLOTS_PER_DAY):
                    at = slot_start(day, slot)
                    if at < start or at < now or at >= end:
                        continue
                    until = at + SLOT_MINUTES * 60
                    clashing = [a for a in busy if a.start < until and a.end > at]
                    for provider in roster:
                        if not any(a.provider_id in (None, provider.npi) for a in clashing):
                            free.append((at, provider))
            day += timedelta(days=1)
        return free


def render_visit(appointment: Appointment, patient: dict[str, Any]) -> dict[str, Any]:
    """A Scheduling.Booked Visits entry."""
    visit: dict[str, Any] = {
        "VisitNumber": appointment.visit_number,
        "VisitDateTime": iso(appointment.start),
        "Duration": appointment.duration,
        "Status": appointment.status,
        "Reason": appointment.reason,
        "AttendingProvider": clone(appointment.provider) if appointment.provider is not None else None,
        "Location": clone(appointment.location) if appointment.location is not None else None,
    }
    for key, value in appointment.extra.items():
        visit.setdefault(key, clone(value))
    visit["Patient"] = patient
    return visit


def render_slot(at: float, provider: Provider, reason: str) -> dict[str, Any]:
    """A Scheduling.AvailableSlotsResponse AvailableSlots entry."""
    return {"DateTime": iso(at), "Duration": SLOT_MINUTES, "Reason": reason,
            "Provider": provider.reference(), "Location": provider.location(), "Notes": []}
