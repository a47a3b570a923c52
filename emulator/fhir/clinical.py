"""A patient's chart (`Patient.chart`, `Patient.extra`) as FHIR R4 clinical resources.

    Allergies      -> AllergyIntolerance
    Problems       -> Condition (problem-list-item)
    Medications    -> MedicationStatement, and a MedicationRequest for each prescription
    Results orders -> ServiceRequest (the order), Encounter (the visit it was drawn at), DiagnosticReport,
                      one Observation per result
    Immunizations  -> Immunization (as Vaccination.PatientQuery lists them)
    Procedures     -> Procedure (the Clinical Summary's Procedures section)
    Insurances     -> Coverage
    the summary document the EHR keeps per patient -> DocumentReference (the CDA inline, base64)

Ids are `{patient id}.{16 hex digits}`, the digits hashed from the item (its order ID, code or place
in the list): the same seed gives the same ids, and a read finds the patient from the id alone.
A `Results.New` sent through /endpoint files its orders in the chart, so they show here at once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from emulator.ehr import clinical as ehr_clinical
from emulator.ehr.patients import Patient
from emulator.fhir import common, directory
from emulator.fhir.common import concept, drop_empty, fhir_datetime, obj, reference, text
from emulator.fhir.patient import practitioner_reference, subject

Renderer = Callable[[Patient], list[dict[str, Any]]]
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
_UCUM = "http://unitsofmeasure.org"
ORDER_SYSTEM = f"{common.SANDBOX_SYSTEM}:OrderID"
VISIT_SYSTEM = f"{common.SANDBOX_SYSTEM}:VisitNumber"
DOCUMENT_DATE = f"{ehr_clinical.REFERENCE_DATE.isoformat()}T00:00:00Z"


def item_id(patient: Patient, kind: str, local: object) -> str:
    digest = hashlib.blake2b(f"{kind}\x1f{local}".encode(), digest_size=8).hexdigest()
    return f"{patient.key}.{digest}"


def patient_key(resource_id: str) -> str | None:
    """The patient a chart resource's id names (None: not a chart resource id)."""
    key, dot, digest = resource_id.rpartition(".")
    return key if dot and len(digest) == 16 else None


def _status(entry: object, table: dict[str, str], default: str) -> str:
    name = text(obj(entry).get("Name")) or text(entry)
    return table.get(name.casefold(), default) if name is not None else default


def _clinical_status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": f"{_TERMINOLOGY}{system}", "code": code}]}


_ACTIVE = {"active": "active", "inactive": "inactive", "resolved": "resolved", "remission": "remission",
           "recurrence": "recurrence", "relapse": "relapse"}


def allergies(patient: Patient) -> list[dict[str, Any]]:
    found = []
    for i, raw in enumerate(common.items(patient.chart.get("Allergies"))):
        a = obj(raw)
        substance = obj(a.get("Substance"))
        kind_name = (text(obj(a.get("Type")).get("Name")) or "").casefold()
        category = ("food" if "food" in kind_name else "medication" if "drug" in kind_name or "medication" in kind_name
                    else "environment" if kind_name else None)
        status = _status(a.get("Status"), {"active": "active", "inactive": "inactive", "resolved": "resolved"},
                         "active")
        severity = (text(obj(a.get("Severity")).get("Name")) or "").casefold()
        reactions = []
        for r in common.items(a.get("Reaction")):
            manifestation = concept(r)
            if manifestation is None:
                continue
            r_severity = (text(obj(obj(r).get("Severity")).get("Name")) or "").casefold()
            reactions.append(drop_empty({"manifestation": [manifestation],
                                         "severity": r_severity if r_severity in ("mild", "moderate", "severe")
                                         else None}))
        found.append(drop_empty({
            "resourceType": "AllergyIntolerance",
            "id": item_id(patient, "AllergyIntolerance", f"{i}:{text(substance.get('Code'))}"),
            "clinicalStatus": _clinical_status("allergyintolerance-clinical", status),
            "verificationStatus": _clinical_status("allergyintolerance-verification", "confirmed"),
            "type": "allergy",
            "category": [category] if category else None,
            "criticality": "high" if severity == "severe" else "low" if severity in ("mild", "moderate") else None,
            "code": concept(substance),
            "patient": subject(patient),
            "onsetDateTime": fhir_datetime(a.get("StartDate")),
            "reaction": reactions,
        }))
    return found


def conditions(patient: Patient) -> list[dict[str, Any]]:
    found = []
    for i, raw in enumerate(common.items(patient.chart.get("Problems"))):
        p = obj(raw)
        ended = fhir_datetime(p.get("EndDate"))
        status = _status(p.get("Status"), _ACTIVE, "resolved" if ended else "active")
        found.append(drop_empty({
            "resourceType": "Condition",
            "id": item_id(patient, "Condition", f"{i}:{text(p.get('Code'))}"),
            "clinicalStatus": _clinical_status("condition-clinical", status),
            "verificationStatus": _clinical_status("condition-ver-status", "confirmed"),
            "category": [{"coding": [{"system": f"{_TERMINOLOGY}condition-category", "code": "problem-list-item",
                                      "display": "Problem List Item"}]}],
            "code": concept(p),
            "subject": subject(patient),
            "onsetDateTime": fhir_datetime(p.get("StartDate")),
            "abatementDateTime": ended,
            "recordedDate": fhir_datetime(p.get("StartDate")),
        }))
    return found


def _dosage(m: dict[str, Any]) -> dict[str, Any] | None:
    dose = obj(m.get("Dose"))
    quantity = _number(dose.get("Quantity"))
    frequency = obj(m.get("Frequency"))
    period = _number(frequency.get("Period"))
    unit = text(frequency.get("Unit"))
    prn = m.get("IsPRN")
    return drop_empty({
        "timing": ({"repeat": {"frequency": 1, "period": period, "periodUnit": unit}}
                   if period is not None and unit in ("s", "min", "h", "d", "wk", "mo", "a") else None),
        "asNeededBoolean": prn if isinstance(prn, bool) else None,
        "route": concept(m.get("Route")),
        "doseAndRate": ([{"doseQuantity": drop_empty({"value": quantity, "unit": text(dose.get("Units"))})}]
                        if quantity is not None else None),
    }) or None


def _number(value: object) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if value == value and abs(value) != float("inf") else None
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = float(raw)
    except ValueError:
        return None
    if parsed != parsed or abs(parsed) == float("inf"):
        return None
    return int(parsed) if parsed.is_integer() and "." not in raw and "e" not in raw.lower() else parsed


def _med_key(i: int, m: dict[str, Any]) -> str:
    return f"{i}:{text(obj(m.get('Product')).get('Code'))}:{text(m.get('StartDate'))}"


def medication_statements(patient: Patient) -> list[dict[str, Any]]:
    found = []
    for i, raw in enumerate(common.items(patient.chart.get("Medications"))):
        m = obj(raw)
        ended = fhir_datetime(m.get("EndDate"))
        dosage = _dosage(m)
        found.append(drop_empty({
            "resourceType": "MedicationStatement",
            "id": item_id(patient, "MedicationStatement", _med_key(i, m)),
            "status": "completed" if ended else "active",
            "category": {"coding": [{"system": f"{_TERMINOLOGY}medication-statement-category", "code": "community",
                                     "display": "Community"}]},
            "medicationCodeableConcept": concept(m.get("Product")) or {"text": "Unknown medication"},
            "subject": subject(patient),
            "effectivePeriod": drop_empty({"start": fhir_datetime(m.get("StartDate")), "end": ended}) or None,
            "reasonCode": [c for c in (concept(x) for x in common.items(m.get("Indications"))) if c],
            "dosage": [dosage] if dosage else None,
        }))
    return found


def medication_requests(patient: Patient) -> list[dict[str, Any]]:
    found = []
    requester = practitioner_reference(patient.extra.get("PCP"))
    for i, raw in enumerate(common.items(patient.chart.get("Medications"))):
        m = obj(raw)
        if m.get("Prescription") is not True:
            continue
        ended = fhir_datetime(m.get("EndDate"))
        dosage = _dosage(m)
        found.append(drop_empty({
            "resourceType": "MedicationRequest",
            "id": item_id(patient, "MedicationRequest", _med_key(i, m)),
            "status": "completed" if ended else "active",
            "intent": "order",
            "category": [{"coding": [{"system": f"{_TERMINOLOGY}medicationrequest-category", "code": "community",
                                      "display": "Community"}]}],
            "medicationCodeableConcept": concept(m.get("Product")) or {"text": "Unknown medication"},
            "subject": subject(patient),
            "authoredOn": fhir_datetime(m.get("StartDate")),
            "requester": requester,
            "reasonCode": [c for c in (concept(x) for x in common.items(m.get("Indications"))) if c],
            "dosageInstruction": [dosage] if dosage else None,
        }))
    return found


# -- lab orders: ServiceRequest, Encounter, DiagnosticReport, Observation ---------------------------
_RESULT_STATUS = {"final": "final", "preliminary": "preliminary", "corrected": "corrected",
                  "canceled": "cancelled", "cancelled": "cancelled", "incomplete": "partial", "in process": "partial"}
_ORDER_STATUS = {"resulted": "completed", "completed": "completed", "canceled": "revoked", "cancelled": "revoked",
                 "new": "active", "in process": "active", "pending": "active", "scheduled": "active"}
_PRIORITY = {"routine": "routine", "stat": "stat", "asap": "asap", "urgent": "urgent"}
_FLAGS = {"high": ("H", "High"), "low": ("L", "Low"), "normal": ("N", "Normal"), "abnormal": ("A", "Abnormal"),
          "critical high": ("HH", "Critical high"), "critical low": ("LL", "Critical low")}


def _orders(patient: Patient) -> list[tuple[str, dict[str, Any]]]:
    """(local key, order) for every filed order: by its ID when it has one (Results.New replaces by ID)."""
    found = []
    for i, raw in enumerate(common.items(patient.chart.get("Results"))):
        order = obj(raw)
        order_id = text(order.get("ID"))
        found.append((f"order:{order_id}" if order_id is not None else f"order#{i}", order))
    return found


def _order_code(order: dict[str, Any]) -> dict[str, Any]:
    return concept(order.get("Procedure"), name_key="Description") or {"text": "Laboratory order"}


def _order_identifier(order: dict[str, Any]) -> list[dict[str, Any]]:
    order_id = text(order.get("ID"))
    return [{"system": ORDER_SYSTEM, "value": order_id}] if order_id is not None else []


def _order_time(order: dict[str, Any]) -> str | None:
    return fhir_datetime(order.get("CollectionDateTime")) or fhir_datetime(order.get("TransactionDateTime"))


def _instant(value: object) -> str | None:
    stamp = fhir_datetime(value)
    return stamp if stamp is not None and "T" in stamp else None


def _encounter_ref(patient: Patient, key: str) -> dict[str, Any]:
    return reference("Encounter", item_id(patient, "Encounter", key))


def service_requests(patient: Patient) -> list[dict[str, Any]]:
    found = []
    for key, order in _orders(patient):
        found.append(drop_empty({
            "resourceType": "ServiceRequest",
            "id": item_id(patient, "ServiceRequest", key),
            "identifier": [{**i, "type": {"coding": [{"system": f"{_TERMINOLOGY}v2-0203", "code": "PLAC",
                                                      "display": "Placer Identifier"}]}}
                           for i in _order_identifier(order)],
            "status": _status(order.get("Status"), _ORDER_STATUS, "active"),
            "intent": "order",
            "category": [{"coding": [{"system": SNOMEDCT, "code": "108252007", "display": "Laboratory procedure"}]}],
            "priority": _PRIORITY.get((text(order.get("Priority")) or "").casefold()),
            "code": _order_code(order),
            "subject": subject(patient),
            "encounter": _encounter_ref(patient, key),
            "occurrenceDateTime": _order_time(order),
            "authoredOn": fhir_datetime(order.get("TransactionDateTime")),
            "requester": practitioner_reference(order.get("Provider")),
        }))
    return found


SNOMEDCT = common.SNOMED


def encounters(patient: Patient) -> list[dict[str, Any]]:
    """The outpatient visit each lab order was collected at (the chart records no other visits)."""
    found = []
    for key, order in _orders(patient):
        provider = obj(order.get("Provider"))
        npi = text(provider.get("NPI")) or text(provider.get("ID"))
        clinic = directory.ROSTER[npi].facility if npi in directory.ROSTER else None
        start, end = _order_time(order), fhir_datetime(order.get("CompletionDateTime"))
        participant = practitioner_reference(provider)
        order_id = text(order.get("ID"))
        location = directory.location_for(clinic)
        found.append(drop_empty({
            "resourceType": "Encounter",
            "id": item_id(patient, "Encounter", key),
            "identifier": [{"system": VISIT_SYSTEM, "value": f"V{order_id}"}] if order_id else None,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                      "display": "ambulatory"},
            "type": [common.fixed_concept(SNOMEDCT, "185349003", "Encounter for check up")],
            "subject": subject(patient),
            "participant": [{"individual": participant}] if participant else None,
            "period": drop_empty({"start": start, "end": end if end and start and end >= start else None}) or None,
            "location": [{"location": location}] if location else None,
            "serviceProvider": (reference("Organization", directory.organization_id(clinic), clinic)
                                if clinic else None),
        }))
    return found


def _observation(patient: Patient, key: str, index: int, order: dict[str, Any], raw: object) -> dict[str, Any]:
    r = obj(raw)
    value: dict[str, Any] = {}
    number = _number(r.get("Value"))
    units = text(r.get("Units"))
    if number is not None and (text(r.get("ValueType")) or "Numeric").casefold() == "numeric":
        value["valueQuantity"] = drop_empty({"value": number, "unit": units,
                                             "system": _UCUM if units else None, "code": units})
    elif text(r.get("Value")) is not None:
        value["valueString"] = text(r.get("Value"))
    flag = _FLAGS.get((text(r.get("AbnormalFlag")) or "").casefold())
    ranges = obj(r.get("ReferenceRange"))
    low, high = _number(ranges.get("Low")), _number(ranges.get("High"))
    reference_range = drop_empty({
        "low": drop_empty({"value": low, "unit": units, "system": _UCUM if units else None, "code": units})
        if low is not None else None,
        "high": drop_empty({"value": high, "unit": units, "system": _UCUM if units else None, "code": units})
        if high is not None else None,
        "text": text(ranges.get("Text")),
    })
    issued = _instant(r.get("CompletionDateTime")) or _instant(order.get("CompletionDateTime"))
    return drop_empty({
        "resourceType": "Observation",
        "id": item_id(patient, "Observation", f"{key}:{index}:{text(r.get('Code'))}"),
        "meta": {"lastUpdated": issued} if issued else None,
        "basedOn": [reference("ServiceRequest", item_id(patient, "ServiceRequest", key))],
        "status": _status(r.get("Status"), _RESULT_STATUS, "final"),
        "category": [{"coding": [{"system": f"{_TERMINOLOGY}observation-category", "code": "laboratory",
                                  "display": "Laboratory"}]}],
        "code": concept(r, name_key="Description") or {"text": "Result"},
        "subject": subject(patient),
        "encounter": _encounter_ref(patient, key),
        "effectiveDateTime": _order_time(order),
        "issued": issued,
        **value,
        "interpretation": ([{"coding": [{"system": f"{_TERMINOLOGY}v3-ObservationInterpretation", "code": flag[0],
                                         "display": flag[1]}]}] if flag else None),
        "referenceRange": [reference_range] if reference_range else None,
    })


def observations(patient: Patient) -> list[dict[str, Any]]:
    return [_observation(patient, key, i, order, r)
            for key, order in _orders(patient) for i, r in enumerate(common.items(order.get("Results")))]


def observation_ids(patient: Patient) -> list[str]:
    """The ids of `observations(patient)`, in order, without rendering them (what a writeback looks up)."""
    return [item_id(patient, "Observation", f"{key}:{i}:{text(obj(r).get('Code'))}")
            for key, order in _orders(patient) for i, r in enumerate(common.items(order.get("Results")))]


def diagnostic_reports(patient: Patient) -> list[dict[str, Any]]:
    found = []
    for key, order in _orders(patient):
        results = [_observation(patient, key, i, order, r) for i, r in enumerate(common.items(order.get("Results")))]
        issued = _instant(order.get("CompletionDateTime"))
        performer = practitioner_reference(order.get("Provider"))
        found.append(drop_empty({
            "resourceType": "DiagnosticReport",
            "id": item_id(patient, "DiagnosticReport", key),
            "meta": {"lastUpdated": issued} if issued else None,
            "identifier": _order_identifier(order),
            "basedOn": [reference("ServiceRequest", item_id(patient, "ServiceRequest", key))],
            "status": _status(order.get("ResultsStatus"), _RESULT_STATUS, "final"),
            "category": [{"coding": [{"system": f"{_TERMINOLOGY}v2-0074", "code": "LAB", "display": "Laboratory"}]}],
            "code": _order_code(order),
            "subject": subject(patient),
            "encounter": _encounter_ref(patient, key),
            "effectiveDateTime": _order_time(order),
            "issued": issued,
            "performer": [performer] if performer else None,
            "result": [reference("Observation", o["id"], o["code"].get("text")) for o in results],
        }))
    return found


def coverages(patient: Patient) -> list[dict[str, Any]]:
    found = []
    for i, raw in enumerate(common.items(patient.extra.get("Insurances"))):
        ins = obj(raw)
        plan, company = obj(ins.get("Plan")), obj(ins.get("Company"))
        classes = []
        group = text(ins.get("GroupNumber"))
        if group is not None:
            classes.append(drop_empty({"type": {"coding": [{"system": f"{_TERMINOLOGY}coverage-class",
                                                            "code": "group"}]},
                                       "value": group, "name": text(ins.get("GroupName"))}))
        plan_id = text(plan.get("ID"))
        if plan_id is not None:
            classes.append(drop_empty({"type": {"coding": [{"system": f"{_TERMINOLOGY}coverage-class",
                                                            "code": "plan"}]},
                                       "value": plan_id, "name": text(plan.get("Name"))}))
        member = text(ins.get("MemberNumber"))
        found.append(drop_empty({
            "resourceType": "Coverage",
            "id": item_id(patient, "Coverage", f"{i}:{member}:{plan_id}"),
            "identifier": [{"system": f"{common.SANDBOX_SYSTEM}:MemberNumber", "value": member}] if member else None,
            "status": "active",
            "subscriberId": member,
            "beneficiary": subject(patient),
            "relationship": _relationship(text(obj(ins.get("Insured")).get("Relationship"))
                                          or text(ins.get("Relationship")) or "Self"),
            "period": drop_empty({"start": common.fhir_date(ins.get("EffectiveDate")),
                                  "end": common.fhir_date(ins.get("ExpirationDate"))}) or None,
            "payor": [{"display": text(company.get("Name")) or "Unknown payor"}],
            "class": classes,
        }))
    return found


_RELATIONSHIPS = ("self", "child", "spouse", "parent", "common", "other", "injured")


def _relationship(name: str) -> dict[str, Any]:
    """HL7's subscriber-relationship code for the insured's relationship to the patient, else its text."""
    code_ = name.casefold()
    if code_ not in _RELATIONSHIPS:
        return {"text": name}
    found: dict[str, Any] = {"coding": [{"system": f"{_TERMINOLOGY}subscriber-relationship", "code": code_}]}
    if code_ != "self":
        found["text"] = name
    return found


def document_references(patient: Patient) -> list[dict[str, Any]]:
    """The one summary document the EHR keeps per patient (the CDA DocumentGet hands over)."""
    document_id = ehr_clinical.document_id(patient.key)
    author = obj(patient.extra.get("PCP")) or None
    author_ref = practitioner_reference(author)
    cda = ehr_clinical.cda(document_id, ehr_clinical.iso_date(ehr_clinical.REFERENCE_DATE), patient.brief(),
                           author or {})
    return [drop_empty({
        "resourceType": "DocumentReference",
        "id": item_id(patient, "DocumentReference", document_id),
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{document_id}"},
        "identifier": [{"system": f"{common.SANDBOX_SYSTEM}:DocumentID", "value": document_id}],
        "status": "current",
        "type": common.fixed_concept(common.LOINC, "34133-9", "Summarization of Episode Note"),
        "category": [{"coding": [{"system": "urn:redox:document_kind", "code": "CDA"}]}],
        "subject": subject(patient),
        "date": DOCUMENT_DATE,
        "author": [author_ref] if author_ref else None,
        "description": "Synthetic EHR: Health Summary",
        "content": [{"attachment": {"contentType": "text/xml", "data": base64.b64encode(cda.encode()).decode(),
                                    "title": "Synthetic EHR: Health Summary"},
                     "format": {"system": "http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem",
                                "code": "urn:hl7-org:sdwg:ccda-structuredBody:2.1"}}],
        "context": {"period": {"start": DOCUMENT_DATE}},
    }), *(_filed_document(patient, obj(n)) for n in common.items(patient.chart.get("Notes")))]


def note_key(document_id: object) -> str:
    return f"note:{document_id}"


def _filed_document(patient: Patient, note: dict[str, Any]) -> dict[str, Any]:
    """A note filed by Notes.New (or a DocumentReference writeback)."""
    document_id = text(note.get("DocumentID"))
    data = text(note.get("FileContents"))
    if data is not None and text(note.get("ContentType")) != "Base64 Encoded":
        data = base64.b64encode(data.encode()).decode()
    author = practitioner_reference(note.get("Provider"))
    kind = text(note.get("DocumentType"))
    return drop_empty({
        "resourceType": "DocumentReference",
        "id": item_id(patient, "DocumentReference", note_key(document_id)),
        "identifier": ([{"system": f"{common.SANDBOX_SYSTEM}:DocumentID", "value": document_id}]
                       if document_id else None),
        "status": "current",
        "type": {"text": kind} if kind else None,
        "subject": subject(patient),
        "date": _instant(note.get("ServiceDateTime")),
        "author": [author] if author else None,
        "description": text(note.get("DocumentDescription")),
        "content": [{"attachment": drop_empty({"contentType": text(note.get("FileType")), "data": data,
                                               "title": text(note.get("FileName"))})}],
    })


def immunizations(patient: Patient) -> list[dict[str, Any]]:
    found = []
    for raw in common.items(patient.chart.get("Immunizations")):
        item = obj(raw)
        product, dose = obj(item.get("Product")), obj(item.get("Dose"))
        when = fhir_datetime(item.get("DateTime"))
        quantity = _number(dose.get("Quantity"))
        found.append(drop_empty({
            "resourceType": "Immunization",
            "id": item_id(patient, "Immunization", f"{product.get('Code')}:{item.get('DateTime')}"),
            "status": "not-done" if text(item.get("ReasonNotGiven")) else "completed",
            "vaccineCode": concept(product) or {"text": "Unknown vaccine"},
            "patient": subject(patient),
            "occurrenceDateTime": when,
            "primarySource": True,
            "lotNumber": text(product.get("LotNumber")),
            "route": concept(item.get("Route")),
            "doseQuantity": drop_empty({"value": quantity, "unit": text(dose.get("Units")),
                                        "system": _UCUM, "code": text(dose.get("Units"))})
            if quantity is not None else None,
        }))
    return found


def procedures(patient: Patient) -> list[dict[str, Any]]:
    found = []
    for raw in common.items(patient.chart.get("Procedures")):
        item = obj(raw)
        status = (text(item.get("Status")) or "completed").casefold()
        found.append(drop_empty({
            "resourceType": "Procedure",
            "id": item_id(patient, "Procedure", f"{item.get('Code')}:{item.get('DateTime')}"),
            "status": {"completed": "completed", "complete": "completed", "in progress": "in-progress",
                       "cancelled": "not-done"}.get(status, "unknown"),
            "code": concept(item) or {"text": "Unknown procedure"},
            "subject": subject(patient),
            "performedDateTime": fhir_datetime(item.get("DateTime")),
            "note": [{"text": t} for t in (text(obj(c).get("Text")) for c in common.items(item.get("Comments")))
                     if t] or None,
        }))
    return found


RENDERERS: dict[str, Renderer] = {
    "Encounter": encounters,
    "Observation": observations,
    "DiagnosticReport": diagnostic_reports,
    "Condition": conditions,
    "AllergyIntolerance": allergies,
    "MedicationStatement": medication_statements,
    "MedicationRequest": medication_requests,
    "Immunization": immunizations,
    "Procedure": procedures,
    "Coverage": coverages,
    "DocumentReference": document_references,
    "ServiceRequest": service_requests,
}
