"""The search parameters served per resource type: Redox's documented ones (FHIR.md 2), HL7 types.

Each parameter reads its values from the rendered resource by a path: dotted element names, a list
at any step, and `[key=value]` to keep only the elements with that value (`telecom[system=phone]`).
Names Redox documents that HL7 R4 does not define (`class-display`, `occurrenceDateTime`,
`encounter-identifier`, `physical-type`, `name-physical-type`) are read the way their names say;
docs/fhir.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str  # token | string | date | reference | composite
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()  # reference: the types it may point at
    parts: tuple[str, ...] = ()  # composite: the parameters joined by `$`


def _p(name: str, type_: str, *paths: str, targets: tuple[str, ...] = (), parts: tuple[str, ...] = ()) -> Param:
    return Param(name, type_, paths, targets, parts)


P = ("Patient",)
PRACTITIONER = ("Practitioner", "PractitionerRole", "Organization")

COMMON = (_p("_id", "token", "id"), _p("_lastUpdated", "date", "meta.lastUpdated"))

_TABLE: dict[str, tuple[Param, ...]] = {
    "Patient": (
        _p("identifier", "token", "identifier"),
        _p("active", "token", "active"),
        _p("family", "string", "name.family"),
        _p("given", "string", "name.given"),
        _p("name", "string", "name"),
        _p("birthdate", "date", "birthDate"),
        _p("gender", "token", "gender"),
        _p("address", "string", "address"),
        _p("address-line", "string", "address.line"),
        _p("address-city", "string", "address.city"),
        _p("address-state", "string", "address.state"),
        _p("address-postalcode", "string", "address.postalCode"),
        _p("phone", "token", "telecom[system=phone]"),
        _p("email", "token", "telecom[system=email]"),
        _p("telecom", "token", "telecom"),
        _p("general-practitioner", "reference", "generalPractitioner", targets=PRACTITIONER),
    ),
    "Encounter": (
        _p("identifier", "token", "identifier"),
        _p("date", "date", "period"),
        _p("status", "token", "status"),
        _p("class", "token", "class"),
        _p("class-display", "string", "class.display"),
        _p("type", "token", "type"),
        _p("patient", "reference", "subject", targets=P),
        _p("subject", "reference", "subject", targets=P),
        _p("practitioner", "reference", "participant.individual", targets=("Practitioner",)),
        _p("participant", "reference", "participant.individual", targets=PRACTITIONER),
        _p("location", "reference", "location.location", targets=("Location",)),
        _p("destination", "reference", "hospitalization.destination", targets=("Location",)),
        _p("service-provider", "reference", "serviceProvider", targets=("Organization",)),
    ),
    "Observation": (
        _p("identifier", "token", "identifier"),
        _p("patient", "reference", "subject", targets=P),
        _p("subject", "reference", "subject", targets=P),
        _p("category", "token", "category"),
        _p("code", "token", "code"),
        _p("date", "date", "effectiveDateTime", "effectivePeriod"),
        _p("effective", "date", "effectiveDateTime", "effectivePeriod"),
        _p("status", "token", "status"),
        _p("encounter", "reference", "encounter", targets=("Encounter",)),
        _p("based-on", "reference", "basedOn", targets=("ServiceRequest",)),
    ),
    "DiagnosticReport": (
        _p("identifier", "token", "identifier"),
        _p("date", "date", "effectiveDateTime", "effectivePeriod"),
        _p("issued", "date", "issued"),
        _p("subject", "reference", "subject", targets=P),
        _p("patient", "reference", "subject", targets=P),
        _p("status", "token", "status"),
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("encounter", "reference", "encounter", targets=("Encounter",)),
        _p("context", "reference", "encounter", targets=("Encounter",)),
        _p("result", "reference", "result", targets=("Observation",)),
        _p("based-on", "reference", "basedOn", targets=("ServiceRequest",)),
        _p("performer", "reference", "performer", targets=PRACTITIONER),
    ),
    "Appointment": (
        _p("identifier", "token", "identifier"),
        _p("date", "date", "start"),
        _p("status", "token", "status"),
        _p("patient", "reference", "participant.actor", targets=P),
        _p("practitioner", "reference", "participant.actor", targets=("Practitioner",)),
        _p("location", "reference", "participant.actor", targets=("Location",)),
        _p("actor", "reference", "participant.actor", targets=("Patient", "Practitioner", "Location")),
    ),
    "Condition": (
        _p("patient", "reference", "subject", targets=P),
        _p("subject", "reference", "subject", targets=P),
        _p("category", "token", "category"),
        _p("clinical-status", "token", "clinicalStatus"),
        _p("code", "token", "code"),
        _p("encounter", "reference", "encounter", targets=("Encounter",)),
        _p("recorded-date", "date", "recordedDate"),
        _p("onset-date", "date", "onsetDateTime"),
    ),
    "AllergyIntolerance": (
        _p("patient", "reference", "patient", targets=P),
        _p("clinical-status", "token", "clinicalStatus"),
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("criticality", "token", "criticality"),
    ),
    "MedicationStatement": (
        _p("patient", "reference", "subject", targets=P),
        _p("subject", "reference", "subject", targets=P),
        _p("category", "token", "category"),
        _p("effective", "date", "effectivePeriod"),
        _p("status", "token", "status"),
        _p("code", "token", "medicationCodeableConcept"),
    ),
    "MedicationRequest": (
        _p("patient", "reference", "subject", targets=P),
        _p("subject", "reference", "subject", targets=P),
        _p("intent", "token", "intent"),
        _p("status", "token", "status"),
        _p("code", "token", "medicationCodeableConcept"),
        _p("authoredon", "date", "authoredOn"),
        _p("requester", "reference", "requester", targets=PRACTITIONER),
        _p("recorder", "reference", "recorder", targets=PRACTITIONER),
        _p("encounter", "reference", "encounter", targets=("Encounter",)),
    ),
    "Immunization": (
        _p("patient", "reference", "patient", targets=P),
        _p("date", "date", "occurrenceDateTime"),
        _p("status", "token", "status"),
        _p("vaccine-code", "token", "vaccineCode"),
    ),
    "Procedure": (
        _p("patient", "reference", "subject", targets=P),
        _p("subject", "reference", "subject", targets=P),
        _p("date", "date", "performedDateTime", "performedPeriod"),
        _p("code", "token", "code"),
        _p("status", "token", "status"),
    ),
    "Coverage": (
        _p("beneficiary", "reference", "beneficiary", targets=P),
        _p("patient", "reference", "beneficiary", targets=P),
        _p("identifier", "token", "identifier"),
        _p("status", "token", "status"),
    ),
    "DocumentReference": (
        _p("identifier", "token", "masterIdentifier", "identifier"),
        _p("patient", "reference", "subject", targets=P),
        _p("subject", "reference", "subject", targets=P),
        _p("type", "token", "type"),
        _p("category", "token", "category"),
        _p("date", "date", "date"),
        _p("period", "date", "context.period"),
        _p("status", "token", "status"),
        _p("encounter", "reference", "context.encounter", targets=("Encounter",)),
        _p("encounter-identifier", "token", "context.encounter.identifier"),
    ),
    "ServiceRequest": (
        _p("identifier", "token", "identifier"),
        _p("patient", "reference", "subject", targets=P),
        _p("subject", "reference", "subject", targets=P),
        _p("occurrence", "date", "occurrenceDateTime", "occurrencePeriod"),
        _p("occurrenceDateTime", "date", "occurrenceDateTime"),
        _p("authored", "date", "authoredOn"),
        _p("status", "token", "status"),
        _p("code", "token", "code"),
        _p("category", "token", "category"),
        _p("intent", "token", "intent"),
        _p("encounter", "reference", "encounter", targets=("Encounter",)),
        _p("requester", "reference", "requester", targets=PRACTITIONER),
    ),
    "Practitioner": (
        _p("identifier", "token", "identifier"),
        _p("given", "string", "name.given"),
        _p("family", "string", "name.family"),
        _p("name", "string", "name"),
        _p("active", "token", "active"),
    ),
    "PractitionerRole": (
        _p("practitioner", "reference", "practitioner", targets=("Practitioner",)),
        _p("organization", "reference", "organization", targets=("Organization",)),
        _p("location", "reference", "location", targets=("Location",)),
        _p("specialty", "token", "specialty"),
        _p("active", "token", "active"),
    ),
    "Location": (
        _p("identifier", "token", "identifier"),
        _p("name", "string", "name"),
        _p("status", "token", "status"),
        _p("type", "token", "type"),
        _p("physical-type", "token", "physicalType"),
        _p("name-physical-type", "composite", parts=("name", "physical-type")),
        _p("address", "string", "address"),
        _p("address-city", "string", "address.city"),
        _p("address-state", "string", "address.state"),
        _p("address-postalcode", "string", "address.postalCode"),
        _p("organization", "reference", "managingOrganization", targets=("Organization",)),
    ),
    "Organization": (
        _p("identifier", "token", "identifier"),
        _p("name", "string", "name"),
        _p("active", "token", "active"),
        _p("type", "token", "type"),
        _p("address", "string", "address"),
        _p("address-city", "string", "address.city"),
        _p("address-state", "string", "address.state"),
        _p("address-postalcode", "string", "address.postalCode"),
    ),
}

PARAMS: dict[str, dict[str, Param]] = {kind: {p.name: p for p in (*COMMON, *table)} for kind, table in _TABLE.items()}
# Result parameters: they shape the answer rather than select resources.
RESULT_PARAMS = ("_count", "_include", "_revinclude", "_elements")
# _revinclude is served where Redox documents it (Patient); _include everywhere a reference is.
REVINCLUDE_TYPES = ("Patient",)


def values(resource: dict[str, Any], param: Param) -> list[Any]:
    found: list[Any] = []
    for path in param.paths:
        if "." in path or "[" in path:
            found.extend(walk(resource, path.split(".")))
            continue
        value = resource.get(path)  # one element, the usual case: no walk
        if isinstance(value, list):
            found.extend(v for v in value if v is not None)
        elif value is not None:
            found.append(value)
    return found


def walk(value: Any, steps: list[str]) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from walk(item, steps)
        return
    if not steps:
        if value is not None:
            yield value
        return
    if not isinstance(value, dict):
        return
    step, rest = steps[0], steps[1:]
    name, _, condition = step.partition("[")
    child = value.get(name)
    if condition:
        key, _, wanted = condition.rstrip("]").partition("=")
        items = child if isinstance(child, list) else [child]
        for item in items:
            if isinstance(item, dict) and item.get(key) == wanted:
                yield from walk(item, rest)
        return
    yield from walk(child, rest)


def includes(kind: str) -> list[str]:
    """`_include` values served for `kind`: `Kind:param` for each of its reference parameters."""
    return [f"{kind}:{p.name}" for p in PARAMS[kind].values() if p.type == "reference"]


def revincludes(kind: str) -> list[str]:
    """`_revinclude` values served for `kind`: every served reference parameter that can point at it."""
    if kind not in REVINCLUDE_TYPES:
        return []
    return [f"{other}:{p.name}" for other, table in PARAMS.items() for p in table.values()
            if p.type == "reference" and kind in p.targets]
