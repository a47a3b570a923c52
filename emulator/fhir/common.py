"""What every FHIR mapping module shares: ids, identifier systems, codings, dates, defensive readers.

The EHR's records hold what clients sent through the data-model API, in whatever shape they sent it,
so every reader here takes any JSON value and returns a FHIR-valid value or None: a mapping never
raises, and never emits an empty string, a malformed date or a null (FHIR allows none of them).
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any

# Ids of resources that are not a patient: derived from what they stand for, so the same seed
# gives the same ids in every process (a patient's id is its EHR key, itself seeded).
_NAMESPACE = uuid.UUID("2a9c5e0b-8f41-4d7a-b3e6-1c0d9f7a5b28")

SANDBOX_SYSTEM = "urn:redox:redox-fhir-sandbox"  # + ":MR" etc., as the live sandbox writes them
HEALTH_ONE_MR = "urn:redox:health-one:MR"  # Redox's classic test patients (Timothy Bixby)
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
NCI = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
# The OIDs the data-model API carries (CodeSystem) and the names it uses (Codeset, CodeSystemName).
_SYSTEMS = {
    "2.16.840.1.113883.6.96": SNOMED, "snomed ct": SNOMED, "snomed": SNOMED,
    "2.16.840.1.113883.6.88": RXNORM, "rxnorm": RXNORM,
    "2.16.840.1.113883.6.1": LOINC, "loinc": LOINC,
    "2.16.840.1.113883.6.90": ICD10, "icd-10-cm": ICD10, "icd10": ICD10,
    "2.16.840.1.113883.3.26.1.1": NCI, "nci thesaurus": NCI,
    "2.16.840.1.113883.6.12": "http://www.ama-assn.org/go/cpt", "cpt": "http://www.ama-assn.org/go/cpt",
    "2.16.840.1.113883.12.292": "http://hl7.org/fhir/sid/cvx", "cvx": "http://hl7.org/fhir/sid/cvx",
}
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_URI = re.compile(r"^(urn:|https?://)\S+$")
_ID_TEXT = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def rid(kind: str, *parts: object) -> str:
    """A stable resource id for `kind` (its resource type) made of `parts` (keys, codes, order IDs)."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((kind, *map(str, parts)))))


def is_id(value: str) -> bool:
    """Whether `value` has the shape of a FHIR id (anything else cannot name a resource)."""
    return _ID_TEXT.match(value) is not None


def text(value: object) -> str | None:
    """A non-empty trimmed string from a string or a number (the data-model API carries both)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float):
        return str(value)
    return None


def obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def system_for(code_system: object, name: object = None) -> str | None:
    """A FHIR system URI from the data-model API's CodeSystem (an OID or a name) or Codeset."""
    for raw in (code_system, name):
        given = text(raw)
        if given is None:
            continue
        known = _SYSTEMS.get(given.casefold())
        if known is not None:
            return known
        if _OID.match(given):
            return f"urn:oid:{given}"
        if ":" in given:  # already a URI
            return given
    return None


def coding(code: object, system: str | None, display: object = None) -> dict[str, Any] | None:
    value, shown = text(code), text(display)
    if value is None and shown is None:
        return None
    found: dict[str, Any] = {}
    if system is not None:
        found["system"] = system
    if value is not None:
        found["code"] = value
    if shown is not None:
        found["display"] = shown
    return found


def concept(entry: object, *, code_key: str = "Code", name_key: str = "Name") -> dict[str, Any] | None:
    """A CodeableConcept from a data-model code object ({Code, CodeSystem|Codeset, Name|Description},
    AltCodes as further codings)."""
    item = obj(entry)
    if not item:
        return None
    system = system_for(item.get("CodeSystem"), item.get("CodeSystemName") or item.get("Codeset"))
    name = item.get(name_key) if item.get(name_key) is not None else item.get("Description")
    codings = []
    first = coding(item.get(code_key), system, name)
    if first is not None and "code" in first:
        codings.append(first)
    for alt in items(item.get("AltCodes")):
        alt = obj(alt)
        extra = coding(alt.get("Code"), system_for(alt.get("CodeSystem"), alt.get("CodeSystemName")),
                       alt.get("Name"))
        if extra is not None and "code" in extra:
            codings.append(extra)
    found: dict[str, Any] = {}
    if codings:
        found["coding"] = codings
    shown = text(name)
    if shown is not None:
        found["text"] = shown
    return found or None


def fixed_concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def fhir_date(value: object) -> str | None:
    """YYYY-MM-DD (or YYYY, YYYY-MM) from a date or date-time string, if it is one."""
    raw = text(value)
    if raw is None:
        return None
    head = raw[:10]
    if len(head) == 10:
        try:
            return date.fromisoformat(head).isoformat()
        except ValueError:
            return None
    return head if _DATE.match(head) else None


def fhir_datetime(value: object) -> str | None:
    """A FHIR dateTime (with a zone when it has a time) from the data-model API's ISO-8601 strings."""
    raw = text(value)
    if raw is None:
        return None
    if len(raw) <= 10:
        return fhir_date(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return fhir_date(raw)
    if parsed.tzinfo is None:
        return parsed.isoformat() + "Z" if parsed.microsecond == 0 else parsed.isoformat(timespec="milliseconds") + "Z"
    stamp = parsed.isoformat(timespec="milliseconds" if parsed.microsecond else "seconds")
    return stamp.replace("+00:00", "Z")


def reference(kind: str, id_: str, display: str | None = None) -> dict[str, Any]:
    found = {"reference": f"{kind}/{id_}"}
    if display:
        found["display"] = display
    return found


def identifier_system(id_type: object) -> str | None:
    """The system of a data-model identifier: Redox's `urn:redox:<slug>:<IDType>` (sandbox as seen live)."""
    kind = text(id_type)
    if kind is None:
        return None
    if kind.upper() == "NPI":
        return NPI_SYSTEM
    if kind.upper() == "SSN":
        return SSN_SYSTEM
    if _URI.match(kind):  # a FHIR writeback's own system, kept as the IDType: it reads back unchanged
        return kind
    safe = re.sub(r"[^A-Za-z0-9\-._]", "-", kind)
    return f"{SANDBOX_SYSTEM}:{safe}"


def person_name(first: object, middle: object, last: object, *, use: str | None = "official") -> dict[str, Any] | None:
    family, given = text(last), [g for g in (text(first), text(middle)) if g]
    if family is None and not given:
        return None
    name: dict[str, Any] = {}
    if use:
        name["use"] = use
    if family is not None:
        name["family"] = family
    if given:
        name["given"] = given
    return name


def address(entry: object, *, use: str | None = "home") -> dict[str, Any] | None:
    item = obj(entry)
    found: dict[str, Any] = {}
    if use:
        found["use"] = use
    line = text(item.get("StreetAddress"))
    if line is not None:
        found["line"] = [line]
    for key, field in (("City", "city"), ("County", "district"), ("State", "state"), ("ZIP", "postalCode"),
                       ("Country", "country")):
        value = text(item.get(key))
        if value is not None:
            found[field] = value
    return found if len(found) > (1 if use else 0) else None


def telecom(phones: object, emails: object) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    numbers = obj(phones)
    for key, use in (("Home", "home"), ("Mobile", "mobile"), ("Office", "work")):
        number = text(numbers.get(key))
        if number is not None:
            found.append({"system": "phone", "value": number, "use": use})
    for email in items(emails):
        value = text(email if not isinstance(email, dict) else email.get("Address"))
        if value is not None:
            found.append({"system": "email", "value": value})
    return found


def drop_empty(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without the fields a mapping left None or empty (FHIR allows neither)."""
    return {k: v for k, v in resource.items() if v is not None and v != [] and v != {}}
