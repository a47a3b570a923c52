"""Writebacks: `POST {Resource}/$<resource>-<verb>` with a message Bundle (FHIR.md 4), checked here.

    message = parse(kind, operation, body, mode)   # Message, or Invalid (a 400 naming each bad element)

The Bundle's structure is checked first: an object with `resourceType: Bundle` and entries; a
MessageHeader, when there is one, is the first entry, its `focus` references resolve to entries of
the Bundle (by fullUrl or `{Type}/{id}`) and name a resource of the operation's type; then every
resource is checked against FHIR R4 (`r4.problems`). Modes, as for the data-model contracts:

    redox   what the live sandbox let through is let through: no MessageHeader (the focus is then the
            entries of the operation's type), any eventUri, elements R4 does not define
    strict  a `message` Bundle whose first entry is a MessageHeader with the operation's eventUri and a
            source.endpoint; unknown elements refused
    off     structure only as far as a write needs it: one resource of the operation's type

A resource of the wrong type for the operation is refused in every mode (the live sandbox stored it,
and FHIR clients then read back something else than they wrote).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.errors import FhirError
from emulator.fhir import r4

EVENT_PREFIX = "https://fhir.redoxengine.com/EventDefinition/"

# operation -> (resource type, eventUri name, verb)
OPERATIONS: dict[str, tuple[str, str, str]] = {
    "$patient-create": ("Patient", "PatientCreate", "create"),
    "$patient-update": ("Patient", "PatientUpdate", "update"),
    "$observation-create": ("Observation", "ObservationCreate", "create"),
    "$observation-update": ("Observation", "ObservationUpdate", "update"),
    "$diagnosticreport-create": ("DiagnosticReport", "DiagnosticReportCreate", "create"),
    "$diagnosticreport-amend": ("DiagnosticReport", "DiagnosticReportAmend", "update"),
    "$appointment-create": ("Appointment", "AppointmentCreate", "create"),
    "$appointment-update": ("Appointment", "AppointmentUpdate", "update"),
    "$appointment-cancel": ("Appointment", "AppointmentCancel", "cancel"),
    "$servicerequest-create": ("ServiceRequest", "ServiceRequestCreate", "create"),
    "$documentreference-create": ("DocumentReference", "DocumentReferenceCreate", "create"),
}


class Invalid(FhirError):
    """A writeback refused: one OperationOutcome issue per bad element, `expression` naming it."""

    def __init__(self, issues: list[tuple[str, str, str]]) -> None:
        """`issues`: (HL7 issue code, text, FHIRPath expression)."""
        super().__init__(issues[0][1], status=400, code=issues[0][0])
        self.issues = issues

    def outcome(self) -> dict[str, Any]:
        return {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": code, "details": {"text": text}, "expression": [expression]}
            for code, text, expression in self.issues]}


@dataclass(frozen=True, slots=True)
class Message:
    operation: str
    kind: str
    verb: str
    focus: tuple[tuple[int, dict[str, Any]], ...]  # (entry index, resource) of what is written
    by_reference: dict[str, dict[str, Any]]  # every entry's resource by fullUrl and by Type/id


def operation_for(kind: str, operation: str) -> tuple[str, str, str] | None:
    found = OPERATIONS.get(operation)
    return found if found is not None and found[0] == kind else None


def parse(kind: str, operation: str, body: Any, mode: str) -> Message:
    _, event_name, verb = OPERATIONS[operation]
    issues: list[tuple[str, str, str]] = []
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        found = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise Invalid([("structure", f"A writeback body is a message Bundle, found {found!r}", "Bundle")])
    entries = body.get("entry")
    if not isinstance(entries, list) or not entries:
        raise Invalid([("required", "The Bundle has no entries: it carries a MessageHeader and the "
                                    f"{kind} to write", "Bundle.entry")])
    resources: list[dict[str, Any] | None] = []
    by_reference: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            issues.append(("structure", "Each entry carries a resource with a resourceType",
                           f"Bundle.entry[{i}].resource"))
            resources.append(None)
            continue
        resources.append(resource)
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            by_reference[full_url] = resource
            tail = full_url.rstrip("/").split("/")
            if len(tail) >= 2 and tail[-2] == resource["resourceType"]:  # a relative reference resolves
                by_reference.setdefault(f"{tail[-2]}/{tail[-1]}", resource)  # against the fullUrl's base
        if isinstance(resource.get("id"), str):
            by_reference[f"{resource['resourceType']}/{resource['id']}"] = resource
    if mode == "strict" and body.get("type") != "message":
        issues.append(("value", f"Bundle.type must be 'message', found {body.get('type')!r}", "Bundle.type"))
    headers = [i for i, r in enumerate(resources) if r is not None and r["resourceType"] == "MessageHeader"]
    focus: list[tuple[int, dict[str, Any]]] = []
    if headers:
        if headers[0] != 0:
            issues.append(("structure", "The MessageHeader must be the Bundle's first entry",
                           f"Bundle.entry[{headers[0]}]"))
        header = resources[headers[0]] or {}
        where = f"Bundle.entry[{headers[0]}].resource"
        expected = EVENT_PREFIX + event_name
        if mode == "strict" and header.get("eventUri") != expected:
            issues.append(("value", f"{operation} takes eventUri {expected}, found {header.get('eventUri')!r}",
                           f"{where}.eventUri"))
        source = header.get("source")
        if mode == "strict" and not (isinstance(source, dict) and isinstance(source.get("endpoint"), str)):
            issues.append(("required", "MessageHeader.source.endpoint (the source's id) is required",
                           f"{where}.source.endpoint"))
        refs = header.get("focus")
        if not isinstance(refs, list) or not refs:
            issues.append(("required", f"MessageHeader.focus must reference the {kind} to write", f"{where}.focus"))
            refs = []
        for j, ref in enumerate(refs):
            target = ref.get("reference") if isinstance(ref, dict) else None
            resolved = by_reference.get(target) if isinstance(target, str) else None
            if resolved is None:
                issues.append(("not-found", f"focus {target!r} names no entry of the Bundle (by fullUrl or "
                                            "Type/id)", f"{where}.focus[{j}]"))
            elif resolved["resourceType"] != kind:
                issues.append(("invalid", f"{operation} writes a {kind}; focus names a "
                                          f"{resolved['resourceType']}", f"{where}.focus[{j}]"))
            else:
                focus.append((resources.index(resolved), resolved))
    elif mode == "strict":
        issues.append(("required", "The Bundle's first entry must be a MessageHeader", "Bundle.entry[0]"))
    if not headers:
        focus = [(i, r) for i, r in enumerate(resources) if r is not None and r["resourceType"] == kind]
        if not focus and not issues:
            found = sorted({r["resourceType"] for r in resources if r is not None})
            issues.append(("invalid", f"{operation} writes a {kind}; the Bundle carries {', '.join(found)}",
                           "Bundle.entry"))
    if mode != "off":
        for i, resource in enumerate(resources):
            if resource is not None:
                issues.extend(("invalid" if code == "value" else code, text, f"Bundle.entry[{i}].resource{path}")
                              for code, text, path in r4.problems(resource, strict=mode == "strict"))
    if issues:
        raise Invalid(issues[:r4.MAX_ISSUES])
    return Message(operation, kind, verb, tuple(focus), by_reference)
