"""A data-model event as the FHIR notification Redox sends a destination with `format: fhir` (FHIR.md 5).

A notification is a message Bundle: a MessageHeader (`eventUri` the EventDefinition, `definition` the
MessageDefinition, `...Full` for detailed, `...Lightweight` for lightweight, `source`, `focus`), then,
when detailed, the resources it is about. As Redox's newer examples have it, every entry's fullUrl is a
`urn:uuid:` and the focus references name those; the resources keep the ids the FHIR API reads them by
(the EHR's patient key, the chart's hashed ids, the Appointment's), so a client can read one back.
A lightweight notification is the MessageHeader alone, its focus references `{Type}/{id}` with the
identifier (MRN, VisitNumber, order ID) and the Bundle's timestamp, as Redox describes it.

The resources come from the mapping modules the FHIR API renders with (`patient`, `clinical`,
`scheduling`), applied to a patient made of the event's own sections: what the event says, the way the
FHIR API would show it once filed. Where Redox is silent (the Encounter's status per event, the
status a cancel or a decline sets, ChargeItem, DeviceRequest) this follows HL7 FHIR R4; docs/fhir.md
lists the mapping. Like every mapping module: any JSON in, a valid R4 Bundle out, never an exception.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from emulator import catalog
from emulator.clock import iso
from emulator.ehr import SyntheticEHR
from emulator.ehr.patients import Patient
from emulator.ehr.scheduling import Appointment
from emulator.ehr.state import State
from emulator.fhir import clinical, common, directory, scheduling
from emulator.fhir import patient as patient_map
from emulator.fhir.common import drop_empty, obj, text

EVENT_DEFINITION = "https://fhir.redoxengine.com/EventDefinition/"
MESSAGE_DEFINITION = "https://fhir.redoxengine.com/MessageDefinition/"
DETAILED, LIGHTWEIGHT = "detailed", "lightweight"
_NAMESPACE = uuid.UUID("8d3f6a2e-1c5b-4e7a-9f0d-2b6c8e4a1d37")  # entries' urn:uuid fullUrls
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
# HL7 Encounter.status for each movement (Redox does not say)
_ENCOUNTER_STATUS = {"patient-arrived": "in-progress", "patient-registered": "arrived",
                     "patient-pre-admitted": "planned", "patient-transferred": "in-progress",
                     "patient-discharged": "finished"}
_ENCOUNTER_CLASS = {"inpatient": ("IMP", "inpatient encounter"), "emergency": ("EMER", "emergency"),
                    "observation": ("OBSENC", "observation encounter")}
# ServiceRequest.status a referral notification reports (HL7 request-status)
_REFERRAL_STATUS = {"referral-request-cancelled": "revoked", "referral-declined": "revoked",
                    "referral-confirm-cancelled": "revoked", "referral-completed": "completed"}
KeyFor = Callable[[list[dict[str, Any]]], str | None]  # the EHR's key of the patient these identifiers name


def definition(notification: tuple[str, str], detail: str) -> str:
    uri = catalog.FHIR_NOTIFICATIONS[notification][0]
    return f"{MESSAGE_DEFINITION}{uri}{'Full' if detail == DETAILED else 'Lightweight'}"


def build(event: dict[str, Any], notification: tuple[str, str], detail: str, source: tuple[str, str],
          now: float, key_for: KeyFor | None = None) -> dict[str, Any]:
    """The Bundle for `event` as `notification` ((FHIR DataModel, EventType)), `detail`ed, sent by `source`."""
    person = _patient(event, key_for)
    resources, focus = _resources(event, notification[1], person)
    entries = [(resource, f"urn:uuid:{uuid.uuid5(_NAMESPACE, resource['resourceType'] + '/' + resource['id'])}")
               for resource in resources]
    url = {id(resource): full for resource, full in entries}
    source_id, source_name = source
    header_id = str(uuid.uuid4())
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventUri": EVENT_DEFINITION + catalog.FHIR_NOTIFICATIONS[notification][0],
        "source": {"name": source_name, "endpoint": f"urn:uuid:{source_id}" if _UUID.match(source_id) else source_id},
        "focus": ([{"reference": url[id(r)]} for r in focus] if detail == DETAILED else
                  [_light_reference(r) for r in focus]),
        "definition": definition(notification, detail),
    }
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "message",
                              "timestamp": iso(now),
                              "entry": [{"fullUrl": f"urn:uuid:{header_id}", "resource": header}]}
    if detail == DETAILED:
        bundle["entry"].extend({"fullUrl": full, "resource": resource} for resource, full in entries)
    return bundle


def _light_reference(resource: dict[str, Any]) -> dict[str, Any]:
    """A lightweight focus: where to read it, and the identifier the EHR knows it by."""
    kind = resource["resourceType"]
    found: dict[str, Any] = {"reference": f"{kind}/{resource['id']}", "type": kind}
    identifiers = resource.get("identifier")
    if isinstance(identifiers, list) and identifiers:
        found["identifier"] = {k: v for k, v in identifiers[0].items() if k in ("system", "value", "type")}
    return found


def _patient(event: dict[str, Any], key_for: KeyFor | None) -> Patient:
    """The event's Patient section as the EHR's Patient (the EHR's key when it knows them)."""
    section = obj(event.get("Patient"))
    ids = [i for i in common.items(section.get("Identifiers")) if isinstance(i, dict)]
    key = key_for(ids) if key_for is not None and ids else None
    if key is None:
        first = next((text(i.get("ID")) for i in ids if text(i.get("ID"))), None)
        key = common.rid("Patient", first or "unknown")
    extra = {k: v for k, v in section.items() if k not in ("Identifiers", "Demographics", "PreviousIdentifiers")}
    return Patient(key, ids, obj(section.get("Demographics")), extra, {})


def _resources(event: dict[str, Any], kind: str, person: Patient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every resource of the Bundle, the focus ones), the Patient first."""
    patient = patient_map.resource(person, [], None)
    found: list[dict[str, Any]]
    if kind.startswith("patient-"):
        if kind == "patient-merged":
            previous = [i for i in common.items(obj(event.get("Patient")).get("PreviousIdentifiers"))
                        if isinstance(i, dict)]
            olds = [{"other": {"identifier": ident}, "type": "replaces"}
                    for ident in patient_map.identifiers(Patient("", previous, {}, {}, {}), use="old")]
            if olds:
                patient["link"] = olds
        encounter = _encounter(event, kind, person) if kind in _ENCOUNTER_STATUS else None
        focus = [patient] + ([encounter] if encounter else [])
        return focus, focus
    if kind.startswith("appointment-"):
        found = [_appointment(event, kind, person)]
    elif kind == "result-created":
        chart = Patient(person.key, person.identifiers, person.demographics, person.extra,
                        {"Results": [o for o in common.items(event.get("Orders")) if isinstance(o, dict)]})
        reports = clinical.diagnostic_reports(chart)
        return [patient, *reports, *clinical.observations(chart)], reports or [patient]
    elif kind.startswith("document-"):
        found = [_document(event, kind, person)]
    elif kind == "financial-new":
        found = _charges(event, person)
    elif kind.startswith("service-request-"):
        found = _service_requests(event, kind, person)
    elif kind.startswith("medication-request-"):
        found = _medication_requests(event, kind, person)
    elif kind.startswith("device-request-"):
        found = [_device_request(event, kind, person)]
    else:  # referral-*
        found = [_referral(event, kind, person)]
    found = found or [patient]
    return ([patient, *found] if found[0] is not patient else found), found


def _encounter(event: dict[str, Any], kind: str, person: Patient) -> dict[str, Any] | None:
    visit = obj(event.get("Visit"))
    number = text(visit.get("VisitNumber"))
    if number is None:
        return None
    patient_class = _ENCOUNTER_CLASS.get((text(visit.get("PatientClass")) or "").casefold(), ("AMB", "ambulatory"))
    start = common.fhir_datetime(visit.get("VisitDateTime"))
    end = common.fhir_datetime(visit.get("DischargeDateTime")) if kind == "patient-discharged" else None
    provider = patient_map.practitioner_reference(visit.get("AttendingProvider"))
    location = directory.location_for(obj(visit.get("Location")).get("Facility"))
    return drop_empty({
        "resourceType": "Encounter",
        "id": clinical.item_id(person, "Encounter", f"visit:{number}"),
        "identifier": [{"system": clinical.VISIT_SYSTEM, "value": number}],
        "status": _ENCOUNTER_STATUS[kind],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": patient_class[0],
                  "display": patient_class[1]},
        "subject": patient_map.subject(person),
        "participant": [{"individual": provider}] if provider else None,
        "period": drop_empty({"start": start, "end": end if end and start and end >= start else None}) or None,
        "location": [{"location": location}] if location else None,
    })


class _OnePatient:
    """The one patient an Appointment names, where `scheduling.resource` looks patients up."""

    def __init__(self, person: Patient) -> None:
        self.patients = self
        self._person = person

    def get(self, key: str) -> Patient | None:
        return self._person if key == self._person.key else None

    def resolve(self, key: str) -> Patient:
        return self._person


def _appointment(event: dict[str, Any], kind: str, person: Patient) -> dict[str, Any]:
    visit = obj(event.get("Visit"))
    number = text(visit.get("VisitNumber")) or common.rid("Appointment", person.key, "visit")
    stamp = common.fhir_datetime(visit.get("VisitDateTime"))
    start = _epoch(stamp) if stamp is not None and "T" in stamp else None
    duration = visit.get("Duration")
    minutes = round(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else 15
    status = {"appointment-cancelled": "Canceled"}.get(kind, text(visit.get("Status")) or "Scheduled")
    provider = visit.get("AttendingProvider")
    appointment = Appointment(number, start if start is not None else 0.0, max(1, min(24 * 60, minutes)), status,
                              text(visit.get("Reason")), provider if isinstance(provider, dict) else None,
                              obj(visit.get("Location")) or None, person.key)
    resource = scheduling.resource(_OnePatient(person), appointment)  # type: ignore[arg-type]
    if start is None:  # the event gave no time: an Appointment without start/end is valid R4 (proposed)
        resource.pop("start", None)
        resource.pop("end", None)
        resource.pop("minutesDuration", None)
        if resource["status"] == "booked":
            resource["status"] = "proposed"
    return resource


def _epoch(stamp: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _document(event: dict[str, Any], kind: str, person: Patient) -> dict[str, Any]:
    note = obj(event.get("Note"))
    document = clinical._filed_document(person, note)  # the id the FHIR API files it under
    if kind == "document-deleted":
        document["status"] = "entered-in-error"
    if "content" in document and not document["content"][0]["attachment"]:
        document["content"][0]["attachment"] = {"title": "Document"}
    return document


def _service_requests(event: dict[str, Any], kind: str, person: Patient) -> list[dict[str, Any]]:
    orders = [o for o in [event.get("Order")] if isinstance(o, dict)]
    found = clinical.service_requests(Patient(person.key, person.identifiers, person.demographics, {},
                                              {"Results": orders}))
    for request in found:
        request.pop("encounter", None)  # a lab visit the EHR makes only once results are filed
        if kind == "service-request-cancelled":
            request["status"] = "revoked"
    return found


def _medication_requests(event: dict[str, Any], kind: str, person: Patient) -> list[dict[str, Any]]:
    order = obj(event.get("Order"))
    medication = {**obj(order.get("Medication")), "Prescription": True, "StartDate": order.get("StartDate")}
    found = clinical.medication_requests(Patient(person.key, person.identifiers, person.demographics, {},
                                                 {"Medications": [medication]}))
    order_id = text(order.get("ID"))
    for request in found:
        if order_id is not None:
            request["identifier"] = [{"system": clinical.ORDER_SYSTEM, "value": order_id}]
        request["status"] = "cancelled" if kind == "medication-request-cancelled" else "active"
        requester = patient_map.practitioner_reference(order.get("Provider"))
        if requester is not None:
            request["requester"] = requester
    return found


def _device_request(event: dict[str, Any], kind: str, person: Patient) -> dict[str, Any]:
    device = obj(event.get("Device"))
    device_id = text(device.get("ID"))
    return drop_empty({
        "resourceType": "DeviceRequest",
        "id": clinical.item_id(person, "DeviceRequest", f"device:{device_id}"),
        "identifier": [{"system": f"{common.SANDBOX_SYSTEM}:DeviceID", "value": device_id}] if device_id else None,
        "status": "revoked" if kind == "device-request-cancelled" else "active",
        "intent": "order",
        "codeCodeableConcept": {"text": f"Device {device_id}" if device_id else "Device"},
        "subject": patient_map.subject(person),
    })


def _referral(event: dict[str, Any], kind: str, person: Patient) -> dict[str, Any]:
    referral = obj(event.get("Referral"))
    visit = obj(event.get("Visit"))
    referral_id = text(referral.get("ID")) or text(visit.get("VisitNumber"))
    provider = patient_map.practitioner_reference(referral.get("ReferringProvider") or referral.get("Provider"))
    return drop_empty({
        "resourceType": "ServiceRequest",
        "id": clinical.item_id(person, "ServiceRequest", f"referral:{referral_id}"),
        "identifier": ([{"system": f"{common.SANDBOX_SYSTEM}:ReferralID", "value": referral_id}]
                       if referral_id else None),
        "status": _REFERRAL_STATUS.get(kind, "active"),
        "intent": "order",
        "category": [common.fixed_concept(common.SNOMED, "3457005", "Patient referral")],
        "code": {"text": text(referral.get("Type")) or "Referral"},
        "subject": patient_map.subject(person),
        "requester": provider,
        "authoredOn": common.fhir_datetime(referral.get("DateTime")),
    })


def _charges(event: dict[str, Any], person: Patient) -> list[dict[str, Any]]:
    found = []
    for i, raw in enumerate(common.items(event.get("Transactions"))):
        tx = obj(raw)
        tx_id = text(tx.get("ID"))
        code = common.concept(tx.get("Procedure"), name_key="Description") or common.concept(
            tx.get("Chargeable"), name_key="Description")
        quantity = obj(tx.get("Chargeable")).get("Quantity")
        found.append(drop_empty({
            "resourceType": "ChargeItem",
            "id": clinical.item_id(person, "ChargeItem", f"transaction:{tx_id if tx_id is not None else i}"),
            "identifier": [{"system": f"{common.SANDBOX_SYSTEM}:TransactionID", "value": tx_id}] if tx_id else None,
            "status": "billable",
            "code": code or {"text": "Charge"},
            "subject": patient_map.subject(person),
            "occurrenceDateTime": common.fhir_datetime(tx.get("DateTimeOfService")),
            "quantity": ({"value": quantity} if isinstance(quantity, int | float) and not isinstance(quantity, bool)
                         else None),
        }))
    return found


def key_finder(ehr: SyntheticEHR) -> KeyFor:
    """Look-ups of the EHR's patient key by the event's identifiers, so a Bundle's Patient id is the one
    the FHIR API reads (None: the EHR does not know them; the Bundle's id is then derived from the MRN)."""

    def key_for(identifiers: list[dict[str, Any]]) -> str | None:
        wanted = [(value, text(i.get("IDType"))) for i in identifiers if (value := text(i.get("ID"))) is not None]
        if not wanted:
            return None

        def read(state: State, _generation: int) -> str | None:
            found = state.patients.find(wanted)
            return state.patients.resolve(found[0].key).key if found else None

        return ehr.view(read)

    return key_for


def for_destination(event: dict[str, Any], data_model: str, event_type: str, detail: str, source: tuple[str, str],
                    now: float, key_for: KeyFor | None,
                    notification: tuple[str, str] | None = None) -> tuple[tuple[str, str], dict[str, Any]] | None:
    """(the notification, its Bundle) for a data-model event bound for a FHIR destination; None when the
    event has no FHIR notification. `notification` names one (a push by FHIR name) instead of the event's own."""
    chosen = notification or catalog.FHIR_FOR.get(catalog.canonical(data_model, event_type))
    if chosen is None:
        return None
    return chosen, build(event, chosen, detail, source, now, key_for)
