"""The EHR's diary (`ehr.scheduling.Schedule`) as FHIR R4 Appointments.

The id is hashed from the VisitNumber, so the seeded diary keeps its ids across restarts and a
Scheduling.New sent through /endpoint is an Appointment at once. An appointment for a patient the index
does not know (a Scheduling event that named someone new) names the patient by display only.
"""

from __future__ import annotations

import re
from typing import Any

from emulator.clock import iso
from emulator.ehr.scheduling import Appointment
from emulator.ehr.state import State
from emulator.fhir import common, directory
from emulator.fhir.clinical import VISIT_SYSTEM
from emulator.fhir.common import drop_empty, obj, text
from emulator.fhir.patient import practitioner_reference, subject

_STATUS = {"scheduled": "booked", "booked": "booked", "confirmed": "booked", "canceled": "cancelled",
           "cancelled": "cancelled", "no show": "noshow", "noshow": "noshow", "arrived": "arrived",
           "checked in": "checked-in", "completed": "fulfilled", "pending": "pending"}


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def appointment_id(visit_number: str) -> str:
    """Hashed from the VisitNumber; a VisitNumber that is a UUID is the id itself (an Appointment
    writeback keeps the id it gave, as the live sandbox did)."""
    return visit_number if _UUID.match(visit_number) else common.rid("Appointment", visit_number)


def patient_key(state: State, appointment: Appointment) -> str | None:
    """The key of the patient the appointment is for now (merges resolved), if the index knows them."""
    if appointment.patient_key is not None and state.patients.get(appointment.patient_key) is not None:
        return state.patients.resolve(appointment.patient_key).key
    return None


def resource(state: State, appointment: Appointment) -> dict[str, Any]:
    key = patient_key(state, appointment)
    participants: list[dict[str, Any]] = []
    if key is not None:
        participants.append({"actor": subject(state.patients.resolve(key)), "required": "required",
                             "status": "accepted"})
    elif appointment.patient is not None:
        d = obj(appointment.patient.get("Demographics"))
        name = " ".join(p for p in (text(d.get("FirstName")), text(d.get("LastName"))) if p)
        if name:
            participants.append({"actor": {"display": name}, "required": "required", "status": "accepted"})
    provider = practitioner_reference(appointment.provider)
    if provider is not None:
        participants.append({"type": [common.fixed_concept(
            "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "ATND", "attender")],
            "actor": provider, "required": "required", "status": "accepted"})
    location = directory.location_for(obj(appointment.location).get("Facility"))
    if location is not None:
        participants.append({"actor": location, "required": "required", "status": "accepted"})
    if not participants:  # FHIR requires one: the EHR knows at least that someone booked it
        participants.append({"actor": {"display": "Unknown participant"}, "status": "needs-action"})
    reason = text(appointment.reason)
    status = _STATUS.get((text(appointment.status) or "").casefold(), "booked")
    return drop_empty({
        "resourceType": "Appointment",
        "id": appointment_id(appointment.visit_number),
        "identifier": [{"system": VISIT_SYSTEM, "value": appointment.visit_number}],
        "status": status,
        "cancelationReason": {"text": "Canceled"} if status == "cancelled" else None,
        "serviceType": [{"text": text(obj(appointment.location).get("Department"))}]
        if text(obj(appointment.location).get("Department")) else None,
        "reasonCode": [{"text": reason}] if reason else None,
        "description": reason,
        "start": iso(appointment.start),
        "end": iso(appointment.end),
        "minutesDuration": appointment.duration,
        "participant": participants,
    })
