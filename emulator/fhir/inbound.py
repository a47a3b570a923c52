"""FHIR R4 resources a writeback carries -> the data-model events the synthetic EHR consumes.

A writeback changes the one EHR state through the same event handlers as /endpoint (`ehr.events`):
Patient -> PatientAdmin.NewPatient / PatientUpdate, Observation and DiagnosticReport -> Results.New
(an order holding its results), ServiceRequest -> Order.New, Appointment -> Scheduling.New /
Modification / Cancel, DocumentReference -> Notes.New. So what a FHIR client writes is what
PatientSearch, Results and Scheduling queries answer, and the FHIR API renders it back through the
part-1 mappings. The readers here take validated resources but stay defensive (validation may be off):
what they cannot read they leave out, they never raise but `Unresolvable`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from emulator.ehr.patients import Patient
from emulator.ehr.state import State
from emulator.fhir import common, directory
from emulator.fhir.common import HEALTH_ONE_MR, SANDBOX_SYSTEM, SSN_SYSTEM, items, obj, text

_SEX = {"male": "Male", "female": "Female", "other": "Other", "unknown": "Unknown"}
_APPOINTMENT_STATUS = {"booked": "Scheduled", "proposed": "Pending", "pending": "Pending", "arrived": "Arrived",
                       "fulfilled": "Completed", "cancelled": "Canceled", "noshow": "No Show",
                       "checked-in": "Checked In", "waitlist": "Pending", "entered-in-error": "Canceled"}
_RESULT_STATUS = {"final": "Final", "preliminary": "Preliminary", "amended": "Corrected",
                  "corrected": "Corrected", "cancelled": "Canceled", "registered": "Incomplete",
                  "partial": "Preliminary", "entered-in-error": "Canceled"}
_FLAGS = {"H": "High", "L": "Low", "N": "Normal", "A": "Abnormal", "HH": "Critical High", "LL": "Critical Low"}


class Unresolvable(Exception):
    """A reference the EHR cannot follow (`expression` names the element): a 400 for the client (404 when
    what an update or a cancel names is not there)."""

    def __init__(self, text: str, expression: str, *, status: int = 400) -> None:
        super().__init__(text)
        self.text, self.expression, self.status = text, expression, status


# -- Patient ---------------------------------------------------------------------------------------
def id_type(system: str | None) -> str | None:
    """The IDType an identifier system stands for (the inverse of `common.identifier_system`)."""
    if system is None:
        return None
    if system == HEALTH_ONE_MR:
        return "MR"
    if system.startswith(SANDBOX_SYSTEM + ":"):
        return system[len(SANDBOX_SYSTEM) + 1:]
    if system == common.NPI_SYSTEM:
        return "NPI"
    return system


def patient_section(resource: dict[str, Any]) -> dict[str, Any]:
    """A data-model `Patient` (Identifiers, Demographics, PCP) from a FHIR Patient."""
    ids, ssn = [], None
    for entry in items(resource.get("identifier")):
        entry = obj(entry)
        value, system = text(entry.get("value")), text(entry.get("system"))
        if value is None or obj(entry).get("use") == "old":
            continue
        if system == SSN_SYSTEM:
            ssn = value
            continue
        ids.append({"ID": value, "IDType": id_type(system)})
    names = [obj(n) for n in items(resource.get("name"))]
    name = next((n for n in names if n.get("use") in ("official", "usual")), names[0] if names else {})
    given = [g for g in (text(g) for g in items(name.get("given"))) if g]
    demographics: dict[str, Any] = {
        "FirstName": given[0] if given else None, "MiddleName": " ".join(given[1:]) or None,
        "LastName": text(name.get("family")), "DOB": common.fhir_date(resource.get("birthDate")),
        "Sex": _SEX.get(text(resource.get("gender")) or ""), "SSN": ssn}
    phones: dict[str, str] = {}
    emails: list[str] = []
    for point in (obj(t) for t in items(resource.get("telecom"))):
        value = text(point.get("value"))
        if value is None:
            continue
        if point.get("system") == "email":
            emails.append(value)
        elif point.get("system") in ("phone", "sms", None):
            phones.setdefault({"mobile": "Mobile", "work": "Office"}.get(str(point.get("use")), "Home"), value)
    demographics["PhoneNumber"] = phones or None
    demographics["EmailAddresses"] = emails or None
    addresses = [obj(a) for a in items(resource.get("address"))]
    if addresses:
        a = addresses[0]
        lines = [line for line in (text(x) for x in items(a.get("line"))) if line]
        demographics["Address"] = {k: v for k, v in {
            "StreetAddress": ", ".join(lines) or None, "City": text(a.get("city")), "County": text(a.get("district")),
            "State": text(a.get("state")), "ZIP": text(a.get("postalCode")), "Country": text(a.get("country"))
        }.items() if v is not None} or None
    marital = obj(resource.get("maritalStatus"))
    demographics["MaritalStatus"] = text(marital.get("text")) or _display(marital)
    if isinstance(resource.get("deceasedBoolean"), bool):
        demographics["IsDeceased"] = resource["deceasedBoolean"]
    if text(resource.get("deceasedDateTime")):
        demographics["IsDeceased"], demographics["DeathDateTime"] = True, text(resource["deceasedDateTime"])
    for extension in (obj(e) for e in items(resource.get("extension"))):
        parts = {obj(p).get("url"): obj(p) for p in items(extension.get("extension"))}
        shown = text(obj(parts.get("text")).get("valueString")) or _display({"coding": [
            obj(parts.get("ombCategory")).get("valueCoding")]})
        if extension.get("url") == "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race":
            demographics["Race"] = shown
        elif extension.get("url") == "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity":
            demographics["Ethnicity"] = shown
            if shown is not None:
                demographics["IsHispanic"] = shown.casefold() == "hispanic or latino"
    languages = [obj(c).get("language") for c in items(resource.get("communication"))]
    if languages:
        codings = items(obj(languages[0]).get("coding"))
        demographics["Language"] = text(obj(codings[0]).get("code")) if codings else text(obj(languages[0]).get("text"))
    section: dict[str, Any] = {"Identifiers": ids,
                               "Demographics": {k: v for k, v in demographics.items() if v is not None}}
    pcp = _provider(items(resource.get("generalPractitioner"))[:1])
    if pcp:
        section["PCP"] = pcp
    return section


def _display(concept: dict[str, Any]) -> str | None:
    for coding in (obj(c) for c in items(concept.get("coding"))):
        shown = text(coding.get("display")) or text(coding.get("code"))
        if shown is not None:
            return shown
    return None


def _provider(references: list[Any]) -> dict[str, Any] | None:
    """A data-model provider ({ID, IDType: NPI, names}) from Practitioner references or identifiers."""
    for ref in (obj(r) for r in references):
        target = text(ref.get("reference")) or ""
        if target.startswith("Practitioner/"):
            for npi, p in directory.ROSTER.items():
                if directory.practitioner_id(npi) == target[13:]:
                    return {"ID": npi, "IDType": "NPI", "NPI": npi, "FirstName": p.first_name,
                            "LastName": p.last_name}
        given = text(obj(ref.get("identifier")).get("value"))
        if given is not None:
            return {"ID": given, "IDType": "NPI", "NPI": given}
    return None


# -- whose it is ---------------------------------------------------------------------------------------
def owner(state: State, reference: object, expression: str, bundle: dict[str, dict[str, Any]]) -> Patient:
    """The patient a `subject` / `patient` reference names: `Patient/{id}` of the EHR, a Patient entry of
    the bundle (by fullUrl or id; its identifiers), or a logical reference by identifier."""
    ref = obj(reference)
    target = text(ref.get("reference"))
    if target is not None:
        found = state.patients.get(target[8:]) if target.startswith("Patient/") else None
        if found is not None:
            return state.patients.resolve(found.key)
        entry = bundle.get(target)
        if entry is not None and entry.get("resourceType") == "Patient":
            ids = [(i["ID"], i["IDType"]) for i in patient_section(entry)["Identifiers"]]
            hits = state.patients.find(ids)
            if hits:
                return hits[0]
        raise Unresolvable(f"{target} is not a patient the EHR knows: write it first with Patient/$patient-create "
                           "or name a patient by its id (Patient/{id}) or identifier", expression)
    identifier = obj(ref.get("identifier"))
    value = text(identifier.get("value"))
    if value is not None:
        hits = state.patients.find([(value, id_type(text(identifier.get("system"))))]) or \
            state.patients.find([(value, None)])
        if hits:
            return hits[0]
        raise Unresolvable(f"No patient holds the identifier {value!r}", expression)
    raise Unresolvable("A patient reference is required (reference Patient/{id} or an identifier)", expression)


def patient_ref(patient: Patient) -> dict[str, Any]:
    """The data-model `Patient` section that names `patient` (by the EHR's identifiers)."""
    return {"Identifiers": [dict(i) for i in patient.identifiers[:3]]}


# -- results, orders -------------------------------------------------------------------------------------
def _code(concept: object) -> dict[str, Any]:
    c = obj(concept)
    codings = [obj(x) for x in items(c.get("coding"))]
    first = codings[0] if codings else {}
    return {k: v for k, v in {"Code": text(first.get("code")), "Codeset": text(first.get("system")),
                              "Description": text(c.get("text")) or text(first.get("display"))}.items()
            if v is not None}


def result(observation: dict[str, Any]) -> dict[str, Any]:
    """A data-model result from a FHIR Observation."""
    found: dict[str, Any] = _code(observation.get("code"))
    quantity = obj(observation.get("valueQuantity"))
    if quantity.get("value") is not None:
        found.update(Value=str(quantity["value"]), ValueType="Numeric",
                     Units=text(quantity.get("unit")) or text(quantity.get("code")))
    else:
        for key, kind in (("valueString", "String"), ("valueInteger", "Numeric"), ("valueBoolean", "String"),
                          ("valueDateTime", "DateTime")):
            if observation.get(key) is not None:
                found.update(Value=str(observation[key]).lower() if key == "valueBoolean" else str(observation[key]),
                             ValueType=kind)
                break
        concept_value = obj(observation.get("valueCodeableConcept"))
        if concept_value:
            found.update(Value=text(concept_value.get("text")) or _display(concept_value), ValueType="String")
    found["Status"] = _RESULT_STATUS.get(text(observation.get("status")) or "", "Final")
    for interpretation in (obj(i) for i in items(observation.get("interpretation"))[:1]):
        code = text(obj((items(interpretation.get("coding")) or [{}])[0]).get("code"))
        found["AbnormalFlag"] = _FLAGS.get(code or "", text(interpretation.get("text")))
    ranges = [obj(r) for r in items(observation.get("referenceRange"))[:1]]
    if ranges:
        found["ReferenceRange"] = {k: v for k, v in {
            "Low": obj(ranges[0].get("low")).get("value"), "High": obj(ranges[0].get("high")).get("value"),
            "Text": text(ranges[0].get("text"))}.items() if v is not None}
    found["CompletionDateTime"] = text(observation.get("issued")) or text(observation.get("effectiveDateTime"))
    return {k: v for k, v in found.items() if v is not None}


def order_from_observation(observation: dict[str, Any], order_id: str, now: str) -> dict[str, Any]:
    when = text(observation.get("effectiveDateTime")) or text(obj(observation.get("effectivePeriod")).get("start"))
    return _clean({"ID": order_id, "Status": "Resulted", "TransactionDateTime": now, "CollectionDateTime": when,
                   "CompletionDateTime": text(observation.get("issued")) or when,
                   "ResultsStatus": _RESULT_STATUS.get(text(observation.get("status")) or "", "Final"),
                   "Procedure": _code(observation.get("code")) or None,
                   "Provider": _provider(items(observation.get("performer"))), "Results": [result(observation)]})


def order_from_report(report: dict[str, Any], order_id: str, observations: list[dict[str, Any]], now: str
                      ) -> dict[str, Any]:
    when = text(report.get("effectiveDateTime")) or text(obj(report.get("effectivePeriod")).get("start"))
    return _clean({"ID": order_id, "Status": "Resulted", "TransactionDateTime": now, "CollectionDateTime": when,
                   "CompletionDateTime": text(report.get("issued")) or when,
                   "ResultsStatus": _RESULT_STATUS.get(text(report.get("status")) or "", "Final"),
                   "Procedure": _code(report.get("code")) or None,
                   "Provider": _provider(items(report.get("performer"))),
                   "Results": [result(o) for o in observations]})


def order_from_request(request: dict[str, Any], order_id: str, now: str) -> dict[str, Any]:
    status = {"active": "New", "draft": "New", "on-hold": "Hold", "revoked": "Canceled", "completed": "Completed",
              "entered-in-error": "Canceled"}.get(text(request.get("status")) or "", "New")
    return _clean({"ID": order_id, "Status": status,
                   "TransactionDateTime": text(request.get("authoredOn")) or now,
                   "CollectionDateTime": text(request.get("occurrenceDateTime")),
                   "Priority": {"routine": "Routine", "urgent": "Urgent", "asap": "ASAP", "stat": "Stat"}.get(
                       text(request.get("priority")) or ""),
                   "Procedure": _code(request.get("code")) or None,
                   "Provider": _provider([request.get("requester")])})


def identifier_value(resource: dict[str, Any]) -> str | None:
    for entry in (obj(i) for i in items(resource.get("identifier"))):
        value = text(entry.get("value"))
        if value is not None:
            return value
    return None


# -- appointments, documents -----------------------------------------------------------------------------
def visit(appointment: dict[str, Any], visit_number: str) -> dict[str, Any]:
    participants = [obj(p) for p in items(appointment.get("participant"))]
    actors = [obj(p.get("actor")) for p in participants]
    start, end = text(appointment.get("start")), text(appointment.get("end"))
    duration = appointment.get("minutesDuration")
    if not isinstance(duration, int) and start and end:
        try:
            span = _instant(end) - _instant(start)
            duration = max(1, int(span.total_seconds() // 60))
        except (TypeError, ValueError):  # unreadable, or one with a zone and one without
            duration = None
    reasons = [obj(r) for r in items(appointment.get("reasonCode"))]
    services = [obj(s) for s in items(appointment.get("serviceType"))]
    return _clean({
        "VisitNumber": visit_number, "VisitDateTime": start, "Duration": duration,
        "Status": _APPOINTMENT_STATUS.get(text(appointment.get("status")) or ""),
        "Reason": text(appointment.get("description")) or (text(reasons[0].get("text")) or _display(reasons[0])
                                                           if reasons else None),
        "AttendingProvider": _provider([a for a in actors if (text(a.get("reference")) or "").startswith(
            "Practitioner/") or a.get("identifier")]),
        "Location": {"Department": text(services[0].get("text")) or _display(services[0])} if services else None,
    })


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def patient_actor(appointment: dict[str, Any]) -> dict[str, Any] | None:
    for participant in (obj(p) for p in items(appointment.get("participant"))):
        actor = obj(participant.get("actor"))
        if (text(actor.get("reference")) or "").startswith("Patient/") or (
                actor.get("identifier") and actor.get("type") == "Patient"):
            return actor
    return None


def note(document: dict[str, Any], document_id: str) -> dict[str, Any]:
    contents = [obj(obj(c).get("attachment")) for c in items(document.get("content"))]
    attachment = contents[0] if contents else {}
    data = text(attachment.get("data"))
    if data is not None:
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise Unresolvable("content[0].attachment.data is not base64", "DocumentReference.content[0]."
                                                                          "attachment.data") from None
    return _clean({"DocumentID": document_id, "DocumentType": text(obj(document.get("type")).get("text"))
                   or _display(obj(document.get("type"))) or "Note",
                   "ContentType": "Base64 Encoded" if data else "Plain Text",
                   "FileContents": data, "FileName": text(attachment.get("title")),
                   "FileType": text(attachment.get("contentType")),
                   "ServiceDateTime": text(document.get("date")),
                   "DocumentDescription": text(document.get("description")),
                   "Provider": _provider(items(document.get("author")))})


def _clean(found: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in found.items() if v is not None}
