"""Async events that change what the EHR knows, so later queries see their effect (SPEC 5.3).

Each handler reads the payload with the checked readers and may raise QueryRejected on a field it
cannot read; `SyntheticEHR.consume` then drops the event (Redox had already accepted the send).
A handler that changes a patient's chart says so (`PatientIndex.touch`), and changes a section only by
appending items to its list or by putting a new list in its place, a changed item a new one (the store
keeps what was appended, and matches a new list to the stored one by item identity: `Patient.stored`);
the index and the schedule mark what their own methods change, and `consume` hands those records to
the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from emulator.ehr.patients import Patient
from emulator.ehr.payload import array, clone, identifiers, obj
from emulator.ehr.state import State, first_match, patient_parts

log = logging.getLogger(__name__)

Handler = Callable[[State, dict[str, Any]], None]


def new_patient(state: State, payload: dict[str, Any]) -> None:
    """NewPatient adds the patient, or updates it when its identifiers are already known."""
    section = payload.get("Patient")
    if state.patients.settled(section):
        return  # the same as an update that changed nothing, with nothing changed since
    ids, demographics, extra = patient_parts(payload)
    if not ids and not demographics:
        return
    known = first_match(state, ids)
    if known is None:
        state.patients.add(ids, demographics, extra)
    else:
        state.patients.update(known, ids, demographics, extra, section)


def visit_event(state: State, payload: dict[str, Any]) -> None:
    """Registration, PreAdmit, Arrival: the EHR learns a patient it did not know, else leaves it be."""
    ids, demographics, extra = patient_parts(payload)
    if (ids or demographics) and first_match(state, ids) is None:
        state.patients.add(ids, demographics, extra)


def patient_update(state: State, payload: dict[str, Any]) -> None:
    """PatientUpdate changes the demographics of the patient its identifiers name (created if unknown)."""
    new_patient(state, payload)


def patient_merge(state: State, payload: dict[str, Any]) -> None:
    """Patient.Identifiers survives; the patients holding Patient.PreviousIdentifiers are merged into it."""
    ids, demographics, extra = patient_parts(payload)
    patient = obj(payload.get("Patient"), "Patient")
    previous = identifiers(patient.get("PreviousIdentifiers"), "Patient.PreviousIdentifiers")
    if not ids or not previous:
        return
    survivor = first_match(state, ids)
    if survivor is None:
        victims = state.patients.find(previous)
        # A survivor known only by its new identifiers takes over the old record's details.
        seed_demographics = demographics or (clone(victims[0].demographics) if victims else {})
        seed_extra = extra or (clone(victims[0].extra) if victims else {})
        survivor = state.patients.add(ids, seed_demographics, seed_extra)
    else:
        state.patients.update(survivor, ids, demographics, extra)
    for victim in state.patients.merge(survivor, previous):
        state.schedule.reassign(victim.key, survivor.key)


def scheduling(state: State, payload: dict[str, Any]) -> None:
    """New / Reschedule / Modification / Cancel / NoShow, keyed by Visit.VisitNumber."""
    meta = obj(payload.get("Meta"), "Meta")
    event = meta.get("EventType")
    visit = obj(payload.get("Visit"), "Visit")
    ids, demographics, _ = patient_parts(payload)
    known = first_match(state, ids)
    snapshot = None
    if known is None and (ids or demographics):
        snapshot = {"Identifiers": [{"ID": i, "IDType": t} for i, t in ids], "Demographics": clone(demographics)}
    state.schedule.apply(str(event), visit, known.key if known else None, snapshot)


def results(state: State, payload: dict[str, Any]) -> None:
    """Results.New / NewUnsolicited file the orders in the patient's chart (replacing same-ID orders)."""
    ids, _, _ = patient_parts(payload)
    patient = first_match(state, ids)
    if patient is None:
        return
    orders = [clone(obj(order, f"Orders[{i}]")) for i, order in enumerate(array(payload.get("Orders"), "Orders"))]
    filed = patient.chart.setdefault("Results", [])
    state.patients.touch(patient)
    for order in orders:
        order_id = order.get("ID")
        held = _result_ids(patient, filed)
        if order_id is not None and order_id in held:
            filed = patient.chart["Results"] = [o for o in filed if o.get("ID") != order_id]
            held = _result_ids(patient, filed)
        filed.append(order)
        held.add(order_id)
        patient.result_ids = (filed, len(filed), held)


def _result_ids(patient: Patient, filed: list[Any]) -> set[Any]:
    """The IDs of the orders in `filed` (the patient's Results), kept between events: a chart grows by every
    result filed, and looking for a new order's ID among all of them was most of filing it. Kept for
    that list at that length: whatever else changes the list (an Order.New appending, a merge) changes
    its length or keeps its IDs (an Order.New replacing an order by one of the same ID)."""
    kept = patient.result_ids
    if kept is not None and kept[0] is filed and kept[1] == len(filed):
        return kept[2]
    held = {o.get("ID") for o in filed if isinstance(o, dict)}
    patient.result_ids = (filed, len(filed), held)
    return held


def order(state: State, payload: dict[str, Any]) -> None:
    """Order.New / Update files the order in the chart beside the resulted ones (an order of the same ID
    keeps the results it has)."""
    ids, _, _ = patient_parts(payload)
    patient = first_match(state, ids)
    if patient is None:
        return
    placed = clone(obj(payload.get("Order"), "Order"))
    order_id = placed.get("ID")
    if order_id is None:
        return
    filed = patient.chart.setdefault("Results", [])
    state.patients.touch(patient)
    for i, held in enumerate(filed):
        if isinstance(held, dict) and held.get("ID") == order_id:
            # A new list with a new item in its place: see the module's docstring.
            patient.chart["Results"] = [*filed[:i], {**held, **{k: v for k, v in placed.items() if k != "Results"}},
                                        *filed[i + 1:]]
            return
    filed.append(placed)


def note(state: State, payload: dict[str, Any]) -> None:
    """Notes.New files the note (a document) in the chart, replacing one of the same DocumentID."""
    ids, _, _ = patient_parts(payload)
    patient = first_match(state, ids)
    if patient is None:
        return
    filed_note = clone(obj(payload.get("Note"), "Note"))
    document_id = filed_note.get("DocumentID")
    filed = patient.chart.setdefault("Notes", [])
    state.patients.touch(patient)
    if document_id is not None:
        filed = patient.chart["Notes"] = [n for n in filed
                                          if not (isinstance(n, dict) and n.get("DocumentID") == document_id)]
    filed.append(filed_note)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("PatientAdmin", "NewPatient"): new_patient,
    ("PatientAdmin", "PatientUpdate"): patient_update,
    ("PatientAdmin", "PatientMerge"): patient_merge,
    ("PatientAdmin", "Registration"): visit_event,
    ("PatientAdmin", "PreAdmit"): visit_event,
    ("PatientAdmin", "Arrival"): visit_event,
    ("Results", "New"): results,
    ("Results", "NewUnsolicited"): results,
    ("Order", "New"): order,
    ("Order", "Update"): order,
    ("Notes", "New"): note,
    **{("Scheduling", e): scheduling for e in ("New", "Reschedule", "Modification", "Cancel", "NoShow")},
}
