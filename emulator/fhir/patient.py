"""A patient of the EHR's index as a FHIR R4 Patient (US Core race and ethnicity extensions).

The id is the patient's EHR key: a seeded UUID for the seeded population (the same in every process),
a name-based UUID for a patient a data-model event created. A patient merged away by a PatientMerge
stays readable by its old id, `active: false` with a `replaced-by` link to the survivor (HL7's merge
convention: Redox does not document its own); the survivor lists the merged-away identifiers with
`use: old` and links back with `replaces`.
"""

from __future__ import annotations

from typing import Any

from emulator.ehr.patients import Patient
from emulator.ehr.population import BIXBY_EHRID
from emulator.fhir import common
from emulator.fhir.common import drop_empty, obj, text

_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_ID_TYPES = {"MR": ("MR", "Medical record number"), "SSN": ("SS", "Social Security number"),
             "NPI": ("NPI", "National provider identifier")}
_GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female", "other": "other",
            "unknown": "unknown", "u": "unknown", "nonbinary": "other"}
_MARITAL = {"single": ("S", "Never Married"), "married": ("M", "Married"), "divorced": ("D", "Divorced"),
            "widowed": ("W", "Widowed"), "separated": ("L", "Legally Separated"),
            "domestic partner": ("T", "Domestic partner")}
_RACES = {"white": "2106-3", "black or african american": "2054-5", "asian": "2028-9",
          "american indian or alaska native": "1002-5", "native hawaiian or other pacific islander": "2076-8",
          "other race": "2131-1"}
_RACE_SYSTEM = "urn:oid:2.16.840.1.113883.6.238"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"


def gender(sex: object) -> str | None:
    value = text(sex)
    return _GENDERS.get(value.casefold()) if value is not None else None


def identifier_system(id_type: object, patient_key: str) -> str | None:
    """Redox's systems: Timothy Bixby's MRN is a classic Redox test patient's (`urn:redox:health-one:MR`)."""
    if patient_key == BIXBY_EHRID and text(id_type) == "MR":
        return common.HEALTH_ONE_MR
    return common.identifier_system(id_type)


def identifiers(patient: Patient, *, use: str = "usual") -> list[dict[str, Any]]:
    found = []
    for entry in patient.identifiers:
        value = text(obj(entry).get("ID"))
        if value is None:
            continue
        id_type = text(entry.get("IDType"))
        item: dict[str, Any] = {"use": use}
        known = _ID_TYPES.get((id_type or "").upper())
        if known is not None:
            item["type"] = {"coding": [{"system": _V2_0203, "code": known[0], "display": known[1]}]}
        system = identifier_system(id_type, patient.key)
        if system is not None:
            item["system"] = system
        item["value"] = value
        found.append(item)
    ssn = text(patient.demographics.get("SSN"))
    if ssn is not None and use == "usual":
        found.append({"use": "official", "type": {"coding": [{"system": _V2_0203, "code": "SS",
                                                               "display": "Social Security number"}]},
                      "system": common.SSN_SYSTEM, "value": ssn})
    return found


def _extensions(d: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    race = text(d.get("Race"))
    if race is not None:
        code = _RACES.get(race.casefold())
        parts: list[dict[str, Any]] = []
        if code is not None:
            parts.append({"url": "ombCategory", "valueCoding": {"system": _RACE_SYSTEM, "code": code, "display": race}})
        parts.append({"url": "text", "valueString": race})
        found.append({"url": US_CORE_RACE, "extension": parts})
    hispanic = d.get("IsHispanic")
    ethnicity = text(d.get("Ethnicity"))
    if isinstance(hispanic, bool) or ethnicity is not None:
        if ethnicity is None:
            ethnicity = "Hispanic or Latino" if hispanic else "Not Hispanic or Latino"
        code = {"hispanic or latino": "2135-2", "not hispanic or latino": "2186-5"}.get(ethnicity.casefold())
        parts = []
        if code is not None:
            parts.append({"url": "ombCategory", "valueCoding": {"system": _RACE_SYSTEM, "code": code,
                                                                "display": ethnicity}})
        parts.append({"url": "text", "valueString": ethnicity})
        found.append({"url": US_CORE_ETHNICITY, "extension": parts})
    return found


def _contacts(extra: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for entry in common.items(extra.get("Contacts")):
        entry = obj(entry)
        contact = drop_empty({
            "relationship": [{"text": r} for r in [text(entry.get("RelationToPatient"))] if r],
            "name": common.person_name(entry.get("FirstName"), entry.get("MiddleName"), entry.get("LastName"),
                                       use=None),
            "telecom": common.telecom(entry.get("PhoneNumber"), entry.get("EmailAddresses")),
            "address": common.address(entry.get("Address"), use=None),
        })
        if contact:
            found.append(contact)
    return found


def practitioner_reference(provider: object) -> dict[str, Any] | None:
    """A reference to the directory's Practitioner when the NPI is on the roster, else the NPI alone."""
    from emulator.fhir import directory  # the roster's resources import this module's helpers

    item = obj(provider)
    npi = text(item.get("NPI")) or text(item.get("ID"))
    name = " ".join(p for p in (text(item.get("FirstName")), text(item.get("LastName"))) if p) or None
    if npi is not None and npi in directory.ROSTER:
        return common.reference("Practitioner", directory.practitioner_id(npi), name)
    if npi is None and name is None:
        return None
    found: dict[str, Any] = {}
    if npi is not None:
        found["identifier"] = {"system": common.NPI_SYSTEM, "value": npi}
    if name is not None:
        found["display"] = name
    return found


def resource(patient: Patient, replaced: list[Patient], survivor: str | None) -> dict[str, Any]:
    """`replaced`: the patients merged into this one; `survivor`: the key this one was merged into."""
    d = patient.demographics
    marital = text(d.get("MaritalStatus"))
    marital_code = _MARITAL.get(marital.casefold()) if marital is not None else None
    language = text(d.get("Language"))
    pcp = practitioner_reference(patient.extra.get("PCP"))
    ids = identifiers(patient)
    for old in replaced:
        ids.extend(identifiers(old, use="old"))
    links = [{"other": common.reference("Patient", p.key), "type": "replaces"} for p in replaced]
    if survivor is not None:
        links.append({"other": common.reference("Patient", survivor), "type": "replaced-by"})
    deceased = d.get("IsDeceased")
    death = common.fhir_datetime(d.get("DeathDateTime"))
    return drop_empty({
        "resourceType": "Patient",
        "id": patient.key,
        "extension": _extensions(d),
        "identifier": ids,
        "active": survivor is None,
        "name": [n for n in [common.person_name(d.get("FirstName"), d.get("MiddleName"), d.get("LastName"))] if n],
        "telecom": common.telecom(d.get("PhoneNumber"), d.get("EmailAddresses")),
        "gender": gender(d.get("Sex")),
        "birthDate": common.fhir_date(d.get("DOB")),
        "deceasedDateTime": death,
        "deceasedBoolean": deceased if isinstance(deceased, bool) and death is None else None,
        "address": [a for a in [common.address(d.get("Address"))] if a],
        "maritalStatus": ({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                       "code": marital_code[0], "display": marital_code[1]}], "text": marital}
                          if marital_code else {"text": marital} if marital else None),
        "contact": _contacts(patient.extra),
        "communication": ([{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]},
                            "preferred": True}] if language else None),
        "generalPractitioner": [pcp] if pcp else None,
        "link": links,
    })


def subject(patient: Patient) -> dict[str, Any]:
    """The reference a patient's clinical resources carry."""
    d = patient.demographics
    name = " ".join(p for p in (text(d.get("FirstName")), text(d.get("LastName"))) if p) or None
    return common.reference("Patient", patient.key, name)
