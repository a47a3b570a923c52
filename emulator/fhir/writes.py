"""One written resource: the data-model event that files it, and where the FHIR API then finds it.

`plan(state, message, index, resource, now)` (under the EHR's lock) -> a `Write`: the event
(`payload`, `kind`) for `SyntheticEHR.apply`, whether the resource existed (200 OK) or is new
(201 Created), and `locate(state)`, the id it is read by afterwards. Ids follow part 1's mappings: a
patient's is its EHR key, a chart resource's `{patient id}.{digest}` of its order or note, an
appointment's its VisitNumber's (a UUID VisitNumber is the id itself). A client's own id is kept for
an Appointment (as the live sandbox did) and names what an update changes; an Observation gets an id
of the emulator's (the sandbox ignored the one it was given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.ehr.patients import Patient
from emulator.ehr.payload import clone
from emulator.ehr.state import State
from emulator.fhir import clinical, inbound, scheduling
from emulator.fhir.common import obj, text
from emulator.fhir.inbound import Unresolvable
from emulator.fhir.resources import Resources
from emulator.fhir.writeback import Message
from emulator.ids import new_id  # new order, document, visit IDs: UUIDs with no system call


@dataclass(slots=True)
class Write:
    kind: tuple[str, str]  # the data-model event
    payload: dict[str, Any]
    existed: bool
    locate: Callable[[State], str | None]
    patient: Patient | None = None


def _event(model: str, event: str, **body: Any) -> dict[str, Any]:
    return {"Meta": {"DataModel": model, "EventType": event}, **body}


def plan(state: State, message: Message, index: int, resource: dict[str, Any], now: str) -> Write:
    where = f"Bundle.entry[{index}].resource"
    if message.kind == "Patient":
        return _patient(state, resource, where)
    if message.kind == "Appointment":
        return _appointment(state, message, resource, where)
    owner = inbound.owner(state, resource.get("subject"), f"{where}.subject", message.by_reference)
    if message.kind == "Observation":
        return _observation(state, message, owner, resource, now)
    if message.kind == "DiagnosticReport":
        return _report(state, message, owner, resource, where, now)
    if message.kind == "ServiceRequest":
        order_id = inbound.identifier_value(resource) or new_id()
        existed = any(obj(o).get("ID") == order_id for o in owner.chart.get("Results", []))
        return Write(("Order", "New"), _event("Order", "New", Patient=inbound.patient_ref(owner),
                                              Order=inbound.order_from_request(resource, order_id, now)),
                     existed, lambda s: clinical.item_id(owner, "ServiceRequest", f"order:{order_id}"), owner)
    document_id = text(obj(resource.get("masterIdentifier")).get("value")) or inbound.identifier_value(resource) \
        or new_id()
    existed = any(obj(n).get("DocumentID") == document_id for n in owner.chart.get("Notes", []))
    return Write(("Notes", "New"), _event("Notes", "New", Patient=inbound.patient_ref(owner),
                                          Note=inbound.note(resource, document_id)),
                 existed, lambda s: clinical.item_id(owner, "DocumentReference", clinical.note_key(document_id)),
                 owner)


def _patient(state: State, resource: dict[str, Any], where: str) -> Write:
    section = inbound.patient_section(resource)
    ids = [(i["ID"], i["IDType"]) for i in section["Identifiers"]]
    given_id = text(resource.get("id"))
    known = state.patients.get(given_id) if given_id else None
    known = state.patients.resolve(known.key) if known is not None else None
    if known is None and ids:
        hits = state.patients.find(ids)
        known = hits[0] if hits else None
    if known is None and not ids and not section["Demographics"]:
        raise Unresolvable("A Patient needs an identifier or a name to be found again", f"{where}.identifier")
    if known is not None:
        # The known patient's own identifier first: the event updates whom it names first.
        section["Identifiers"] = [dict(known.identifiers[0]), *section["Identifiers"]]
        key = known.key
        return Write(("PatientAdmin", "PatientUpdate"), _event("PatientAdmin", "PatientUpdate", Patient=section),
                     True, lambda s: key, known)
    count = len(state.patients)

    def locate(s: State) -> str | None:
        if ids:
            hits = s.patients.find(ids)
            return hits[0].key if hits else None
        if len(s.patients) > count:
            return list(s.patients.everyone())[-1].key
        return None

    return Write(("PatientAdmin", "NewPatient"), _event("PatientAdmin", "NewPatient", Patient=section), False, locate)


def _order(owner: Patient, order_id: str) -> dict[str, Any] | None:
    # From the newest: the order a write just filed is the chart's last (Results.New replaces by ID in place).
    return next((obj(o) for o in reversed(owner.chart.get("Results", [])) if text(obj(o).get("ID")) == order_id),
                None)


def _order_id_of(owner: Patient, observation: dict[str, Any]) -> str | None:
    """The ID of the chart order an Observation of `owner` was rendered from."""
    based_on = observation.get("basedOn") or [{}]
    request = text(obj(based_on[0]).get("reference"))
    for order in (obj(o) for o in owner.chart.get("Results", [])):
        order_id = text(order.get("ID"))
        if order_id and request == f"ServiceRequest/{clinical.item_id(owner, 'ServiceRequest', f'order:{order_id}')}":
            return order_id
    return None


def _results_of(owner: Patient, order_id: str) -> list[str]:
    """The ids of the Observations the FHIR API renders from the order `order_id` of `owner`'s chart, in order.

    Only that order is looked at (a patient with it alone gives the same ids: they hash the patient's key
    and the order's ID): rendering the whole chart made every write cost as much as all earlier ones."""
    order = _order(owner, order_id)
    if order is None:
        return []
    return clinical.observation_ids(Patient(owner.key, owner.identifiers, owner.demographics, owner.extra,
                                            {"Results": [order]}))


def _observation(state: State, message: Message, owner: Patient, resource: dict[str, Any], now: str) -> Write:
    given_id = text(resource.get("id"))
    if message.verb == "update" and given_id:
        current = Resources(state).read("Observation", given_id)
        if current is not None and clinical.patient_key(given_id) == owner.key:
            order_id = _order_id_of(owner, current)
            order = _order(owner, order_id) if order_id else None
            positions = _results_of(owner, order_id) if order_id else []
            if order is not None and order_id is not None and given_id in positions:
                position = positions.index(given_id)
                updated = clone(order)
                updated["Results"][position] = inbound.result(resource)
                found_id = order_id

                def relocate(s: State) -> str | None:
                    results = _results_of(owner, found_id)
                    return results[position] if position < len(results) else None

                return Write(("Results", "New"), _event("Results", "New", Patient=inbound.patient_ref(owner),
                                                        Orders=[updated]), True, relocate, owner)
    order_id = new_id()
    order = inbound.order_from_observation(resource, order_id, now)

    def locate(s: State) -> str | None:
        results = _results_of(owner, order_id)
        return results[0] if results else None

    return Write(("Results", "New"), _event("Results", "New", Patient=inbound.patient_ref(owner), Orders=[order]),
                 False, locate, owner)


def _report(state: State, message: Message, owner: Patient, resource: dict[str, Any], where: str, now: str
            ) -> Write:
    observations = []
    contained = {f"#{c.get('id')}": c for c in (obj(x) for x in resource.get("contained") or [])}
    for j, ref in enumerate(resource.get("result") or []):
        target = text(obj(ref).get("reference"))
        found = (contained.get(target) or message.by_reference.get(target)) if target else None
        if found is None or found.get("resourceType") != "Observation":
            raise Unresolvable(f"result {target!r} names no Observation of the Bundle (by fullUrl, Type/id or "
                               "#contained)", f"{where}.result[{j}]")
        observations.append(found)
    order_id = inbound.identifier_value(resource)
    given_id = text(resource.get("id"))
    if order_id is None and given_id and message.verb == "update":
        current = Resources(state).read("DiagnosticReport", given_id)
        if current is not None:
            order_id = inbound.identifier_value(current)
    order_id = order_id or new_id()
    existed = _order(owner, order_id) is not None
    order = inbound.order_from_report(resource, order_id, observations, now)
    return Write(("Results", "New"), _event("Results", "New", Patient=inbound.patient_ref(owner), Orders=[order]),
                 existed, lambda s: clinical.item_id(owner, "DiagnosticReport", f"order:{order_id}"), owner)


def _appointment(state: State, message: Message, resource: dict[str, Any], where: str) -> Write:
    given_id = text(resource.get("id"))
    visit_number = None
    for appointment in state.schedule:
        if given_id is not None and scheduling.appointment_id(appointment.visit_number) == given_id:
            visit_number = appointment.visit_number
            break
    identifier = inbound.identifier_value(resource)
    if visit_number is None and identifier is not None and state.schedule.get(identifier) is not None:
        visit_number = identifier
    existed = visit_number is not None
    if visit_number is None:
        if message.verb == "cancel":
            raise Unresolvable(f"No appointment {given_id or identifier!r} to cancel (name it by id or by its "
                               "VisitNumber identifier)", f"{where}.id", status=404)
        visit_number = identifier or (given_id if given_id and scheduling.appointment_id(given_id) == given_id
                                      else new_id())
        if not text(resource.get("start")):
            raise Unresolvable("A new appointment needs a start", f"{where}.start")
    actor = inbound.patient_actor(resource)
    body: dict[str, Any] = {"Visit": inbound.visit(resource, visit_number)}
    owner = None
    if actor is not None:
        owner = inbound.owner(state, actor, f"{where}.participant", message.by_reference)
        body["Patient"] = inbound.patient_ref(owner)
    event = {"cancel": "Cancel", "update": "Modification"}.get(message.verb, "New")
    if event == "New" and existed:
        event = "Modification"
    number = visit_number
    return Write(("Scheduling", event), _event("Scheduling", event, **body), existed,
                 lambda s: scheduling.appointment_id(number) if s.schedule.get(number) is not None else None, owner)
