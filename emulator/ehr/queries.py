"""Answers to Redox queries, computed from the EHR's current state (SPEC 5.3).

Each handler returns the response body without Meta; `SyntheticEHR.answer` adds Meta with the
response event type. Queries the EHR has no data for get a well-formed empty answer (`EMPTY`).
What clients sent the EHR (a NewPatient's sections, a Results.New's orders, a Scheduling.New's
visit) is echoed through `shape.fit`, cut to what the response's own contract lists, so an answer
keeps its contract whatever the events before it carried (tests/test_emitted_contracts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator import catalog
from emulator.clock import iso
from emulator.contracts.shape import fit
from emulator.ehr import clinical, providers
from emulator.ehr.patients import DemographicQuery, Patient, normalize_dob
from emulator.ehr.payload import (
    Identifier,
    QueryRejected,
    array,
    clone,
    identifiers,
    obj,
    text,
    timestamp,
)
from emulator.ehr.scheduling import Appointment, render_slot, render_visit
from emulator.ehr.state import State, first_match, listed_patients, patient_parts

Answer = Callable[[State, dict[str, Any], float], dict[str, Any]]

_SEARCH = ("PatientSearch", "Response")  # the contract of a PatientSearch.Query's answer
# Where real Redox does not retype the response (recorded traffic), else "<Event>Response".
_SAME_EVENT = frozenset({("PatientSearch", "Query"), ("Scheduling", "Booked"), ("Provider", "ProviderQuery")})


def response_event(model: str, event: str) -> str:
    """The answer's Meta.EventType; its contract is `catalog.RESPONSES`' either way."""
    if (model, event) in _SAME_EVENT:
        return event
    return catalog.RESPONSES[model, event][1]


def patient_search(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
    """By identifiers; else (or when they match nobody) by FirstName + LastName + DOB [+ Sex, ZIP]."""
    ids, demographics, _ = patient_parts(payload)
    field = "Patient.Demographics"
    first = text(demographics.get("FirstName"), f"{field}.FirstName")
    last = text(demographics.get("LastName"), f"{field}.LastName")
    dob = text(demographics.get("DOB"), f"{field}.DOB")
    sex = text(demographics.get("Sex"), f"{field}.Sex")
    zip_ = text(obj(demographics.get("Address"), f"{field}.Address").get("ZIP"), f"{field}.Address.ZIP")
    missing = [f"{field}.{name}" for name, value in (("FirstName", first), ("LastName", last), ("DOB", dob))
               if value is None]
    if not ids and missing:
        raise QueryRejected(
            "PatientSearch.Query needs Patient.Identifiers (at least one ID) or Patient.Demographics "
            f"with FirstName, LastName and DOB; missing {', '.join(missing)}")
    matches = state.patients.find(ids)
    birth_date = normalize_dob(dob) if dob is not None else None
    if not matches and first is not None and last is not None and birth_date is not None:
        query = DemographicQuery(first, last, birth_date, sex, zip_[:5] if zip_ is not None else None)
        matches = state.patients.search(query)
    if len(matches) == 1:
        return {"Patient": fit(matches[0].render(), *_SEARCH, "Patient")}
    if not matches:
        return {"Patient": {}}
    return {"Patient": {}, "PotentialMatches": fit([p.render() for p in matches], *_SEARCH, "PotentialMatches")}


def _start(payload: dict[str, Any], query: str) -> float:
    value = timestamp(payload.get("StartDateTime"), "StartDateTime")
    if value is None:
        raise QueryRejected(f"{query} needs StartDateTime, an ISO-8601 date-time like 2024-05-01T00:00:00.000Z")
    return value


def _provider_ids(visit: dict[str, Any]) -> set[str] | None:
    """Visit.AttendingProviders[].ID (and Visit.AttendingProvider.ID): the providers asked about."""
    ids: set[str] = set()
    for i, entry in enumerate(array(visit.get("AttendingProviders"), "Visit.AttendingProviders")):
        id_ = text(obj(entry, f"Visit.AttendingProviders[{i}]").get("ID"), f"Visit.AttendingProviders[{i}].ID")
        if id_ is not None:
            ids.add(id_)
    single = text(obj(visit.get("AttendingProvider"), "Visit.AttendingProvider").get("ID"),
                  "Visit.AttendingProvider.ID")
    if single is not None:
        ids.add(single)
    return ids or None


def _visit_patient(state: State, appointment: Appointment) -> dict[str, Any]:
    if appointment.patient_key is not None and state.patients.get(appointment.patient_key) is not None:
        return state.patients.resolve(appointment.patient_key).brief()
    return clone(appointment.patient) if appointment.patient is not None else {}


def _patient_filter(state: State, ids: list[Identifier]) -> Callable[[Appointment], bool]:
    """Whether an appointment is for one of the patients `ids` name (all appointments when none)."""
    if not ids:
        return lambda _: True
    keys = {p.key for p in state.patients.find(ids)}
    asked = {(i, (t or "").casefold()) for i, t in ids}
    asked_ids = {i for i, t in ids if t is None}

    def wanted(a: Appointment) -> bool:
        if a.patient_key is not None and state.patients.get(a.patient_key) is not None:
            return state.patients.resolve(a.patient_key).key in keys
        listed = a.patient.get("Identifiers", []) if a.patient is not None else []
        return any((e["ID"], (e["IDType"] or "").casefold()) in asked or e["ID"] in asked_ids for e in listed)

    return wanted


def booked(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
    """Appointments from StartDateTime (to EndDateTime), for Patient / Visit.Patients if named."""
    start = _start(payload, "Scheduling.Booked")
    end = timestamp(payload.get("EndDateTime"), "EndDateTime")
    visit = obj(payload.get("Visit"), "Visit")
    ids, _, _ = patient_parts(payload)
    ids += listed_patients(visit.get("Patients"), "Visit.Patients")
    wanted = _patient_filter(state, ids)
    found = state.schedule.booked(start, end, wanted, _provider_ids(visit))
    return {"Visits": fit([render_visit(a, _visit_patient(state, a)) for a in found],
                          "Scheduling", "BookedResponse", "Visits")}


def available_slots(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
    """Free half-hour slots in [StartDateTime, EndDateTime) (a week when no end), booked ones left out."""
    start = _start(payload, "Scheduling.AvailableSlots")
    end = timestamp(payload.get("EndDateTime"), "EndDateTime")
    visit = obj(payload.get("Visit"), "Visit")
    reasons = array(visit.get("Reasons"), "Visit.Reasons")
    reason = (text(reasons[0], "Visit.Reasons[0]") if reasons else None) or \
        text(visit.get("Reason"), "Visit.Reason") or "Office Visit"
    free = state.schedule.available(start, end, _provider_ids(visit), now)
    return {"AvailableSlots": [render_slot(at, provider, reason) for at, provider in free]}


def _author(patient: Patient | None) -> dict[str, Any]:
    pcp = patient.extra.get("PCP") if patient is not None else None
    if isinstance(pcp, dict) and pcp:
        return {k: clone(v) for k, v in pcp.items() if k != "NPI"}
    return providers.PROVIDERS[0].reference()


def _clinical_summary(response: str) -> Answer:
    def answer(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """The patient's chart as a document; an unknown patient gets an empty one echoing the identifiers."""
        ids, _, _ = patient_parts(payload)
        if not ids:
            raise QueryRejected("Clinical Summary queries need Patient.Identifiers with at least one ID")
        patient = first_match(state, ids)
        if patient is None:
            echo = {"Identifiers": [{"ID": i, "IDType": t} for i, t in ids], "Demographics": {}}
            return clinical.summary(echo, {}, document_id=clinical.document_id(f"unknown:{ids}"), now=iso(now),
                                    author=_author(None))
        header = fit(clinical.header_patient(patient.brief()), "Clinical Summary", response, "Header", "Patient")
        return clinical.summary(header, clone(patient.chart), document_id=clinical.document_id(patient.key),
                                now=iso(now), author=_author(patient))

    return answer


def _summary_patient(state: State, document_id: str) -> Patient | None:
    """The patient whose summary document has this ID (one per patient: see clinical.document_id)."""
    for patient in state.patients.active():
        if clinical.document_id(patient.key) == document_id:
            return patient
    return None


def document_query(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
    """The patient's documents: the one summary document the synthetic EHR keeps per patient."""
    ids, _, _ = patient_parts(payload)
    patient = first_match(state, ids) if ids else None
    documents = [] if patient is None else [
        clinical.document_entry(clinical.document_id(patient.key), iso(now), _author(patient))]
    return {"Patient": {"Identifiers": [{"ID": i, "IDType": t} for i, t in ids]},
            "Documents": fit(documents, "Clinical Summary", "DocumentQueryResponse", "Documents")}


def document_get(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
    """One document by the ID DocumentQuery listed: the summary as CDA XML (Data, FileType)."""
    document = obj(payload.get("Document"), "Document")
    wanted = text(document.get("ID"), "Document.ID")
    if wanted is None:
        raise QueryRejected("Clinical Summary DocumentGet needs Document.ID (from a DocumentQuery's Documents)")
    patient = _summary_patient(state, wanted)
    if patient is None:
        raise QueryRejected(f"Clinical Summary DocumentGet: no document with ID {wanted!r} in the synthetic EHR; "
                            "a Clinical Summary DocumentQuery lists a patient's documents")
    return {"Document": {"ID": wanted}, "FileType": "text/xml",
            "Data": clinical.cda(wanted, iso(now), patient.brief(), _author(patient))}


def _in_window(order: dict[str, Any], start: float | None, end: float | None) -> bool:
    if start is None and end is None:
        return True
    try:
        at = timestamp(order.get("CompletionDateTime"), "CompletionDateTime")
    except QueryRejected:
        return False
    return at is not None and (start is None or at >= start) and (end is None or at < end)


def results_query(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
    """The named patients' resulted orders, filtered by OrderIDs and Completion window when given."""
    ids = listed_patients(payload.get("Patients"), "Patients")
    wanted = {text(v, f"OrderIDs[{i}]") for i, v in enumerate(array(payload.get("OrderIDs"), "OrderIDs"))}
    wanted.discard(None)
    completion = obj(payload.get("Completion"), "Completion")
    start = timestamp(completion.get("StartDateTime"), "Completion.StartDateTime")
    end = timestamp(completion.get("EndDateTime"), "Completion.EndDateTime")
    orders = []
    for patient in state.patients.find(ids) if ids else []:
        for order in patient.chart.get("Results", []):
            if (not wanted or str(order.get("ID")) in wanted) and _in_window(order, start, end):
                orders.append({"Patient": {"Identifiers": clone(patient.identifiers)}, **clone(order)})
    return {"Orders": fit(orders, "Results", "QueryResponse", "Orders")}


def provider_query(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
    provider = obj(payload.get("Provider"), "Provider")
    ids = identifiers(provider.get("Identifiers"), "Provider.Identifiers")
    demographics = obj(provider.get("Demographics"), "Provider.Demographics")
    found = providers.search(ids, text(demographics.get("FirstName"), "Provider.Demographics.FirstName"),
                             text(demographics.get("LastName"), "Provider.Demographics.LastName"))
    return {"Providers": [p.directory_entry() for p in found]}


def vaccination_query(state: State, payload: dict[str, Any], now: float) -> dict[str, Any]:
    """The patient with the immunization history of their chart."""
    ids, _, _ = patient_parts(payload)
    patient = first_match(state, ids) if ids else None
    if patient is None:
        return {"Patient": {}, "PotentialMatches": []}
    given = [clinical.vaccination(i) for i in patient.chart.get("Immunizations", []) if isinstance(i, dict)]
    return {"Patient": fit({**patient.render(), "Vaccinations": given}, "Vaccination", "PatientQueryResponse",
                           "Patient"),
            "PotentialMatches": []}


def _constant(body: dict[str, Any]) -> Answer:
    return lambda state, payload, now: clone(body)


EMPTY: dict[tuple[str, str], Answer] = {
    ("PatientAdmin", "CensusQuery"): _constant({"Patients": []}),
    ("PatientAdmin", "VisitQuery"): _constant({"Patients": []}),
    ("PatientSearch", "LocationQuery"): _constant({"Patients": []}),
    ("Order", "Query"): _constant({"Orders": []}),
    ("Notes", "Query"): _constant({"Notes": []}),
    ("Media", "Query"): _constant({"Media": []}),
    ("Referral", "Query"): _constant({"Referrals": []}),
    ("Organization", "Query"): lambda state, payload, now: {
        "Directory": text(payload.get("Directory"), "Directory"), "Organizations": [],
        "Paging": {"Count": 0, "Index": 0}},
    ("ClinicalDecisions", "Request"): _constant({"Advisories": []}),
    ("Enrichment", "NormalizationQuery"): _constant({"Entries": []}),
    ("Enrichment", "NaturalLanguageProcessingQuery"): _constant({"Entries": []}),
}

ANSWERS: dict[tuple[str, str], Answer] = {
    **EMPTY,
    ("PatientSearch", "Query"): patient_search,
    ("Scheduling", "Booked"): booked,
    ("Scheduling", "AvailableSlots"): available_slots,
    ("Clinical Summary", "PatientQuery"): _clinical_summary("PatientQueryResponse"),
    ("Clinical Summary", "VisitQuery"): _clinical_summary("VisitQueryResponse"),
    ("Clinical Summary", "DocumentQuery"): document_query,
    ("Clinical Summary", "DocumentGet"): document_get,
    ("Results", "Query"): results_query,
    ("Provider", "ProviderQuery"): provider_query,
    ("Vaccination", "PatientQuery"): vaccination_query,
}
