"""The EHR's clinician roster (`ehr.providers`) as Practitioner, PractitionerRole, Location, Organization.

One Organization and one Location per clinic (facility), one Practitioner and one PractitionerRole per
provider. The roster is fixed, so these resources are built once per process.
"""

from __future__ import annotations

import functools
from typing import Any

from emulator.ehr.providers import PROVIDERS, Provider
from emulator.fhir import common

ROSTER: dict[str, Provider] = {p.npi: p for p in PROVIDERS}
_FACILITIES: dict[str, Provider] = {}  # facility name -> the first provider there (its address)
for _p in PROVIDERS:
    _FACILITIES.setdefault(_p.facility, _p)


def practitioner_id(npi: str) -> str:
    return common.rid("Practitioner", npi)


def organization_id(facility: str) -> str:
    return common.rid("Organization", facility)


def location_id(facility: str) -> str:
    return common.rid("Location", facility)


def _address(p: Provider) -> dict[str, Any]:
    return {"use": "work", "line": [p.street], "city": p.city, "district": p.county, "state": p.state,
            "postalCode": p.zip, "country": "US"}


def practitioner(p: Provider) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner", "id": practitioner_id(p.npi),
        "identifier": [{"system": common.NPI_SYSTEM, "value": p.npi}],
        "active": True,
        "name": [{"use": "official", "family": p.last_name, "given": [p.first_name],
                  **({"suffix": list(p.credentials)} if p.credentials else {})}],
        "telecom": [{"system": "phone", "value": p.phone, "use": "work"}],
        "address": [_address(p)],
        "qualification": [{"code": {"text": c}} for c in p.credentials],
    }


def practitioner_role(p: Provider) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole", "id": common.rid("PractitionerRole", p.npi),
        "active": True,
        "practitioner": common.reference("Practitioner", practitioner_id(p.npi), f"{p.first_name} {p.last_name}"),
        "organization": common.reference("Organization", organization_id(p.facility), p.facility),
        "specialty": [{"text": p.specialty}],
        "location": [common.reference("Location", location_id(p.facility), p.facility)],
        "telecom": [{"system": "phone", "value": p.phone, "use": "work"}],
    }


def organization(facility: str) -> dict[str, Any]:
    p = _FACILITIES[facility]
    return {
        "resourceType": "Organization", "id": organization_id(facility),
        "identifier": [{"system": f"{common.SANDBOX_SYSTEM}:Facility", "value": facility}],
        "active": True,
        "type": [common.fixed_concept("http://terminology.hl7.org/CodeSystem/organization-type", "prov",
                                      "Healthcare Provider")],
        "name": facility,
        "telecom": [{"system": "phone", "value": p.phone, "use": "work"}],
        "address": [_address(p)],
    }


def location(facility: str) -> dict[str, Any]:
    p = _FACILITIES[facility]
    return {
        "resourceType": "Location", "id": location_id(facility),
        "identifier": [{"system": f"{common.SANDBOX_SYSTEM}:Facility", "value": facility}],
        "status": "active",
        "name": facility,
        "mode": "instance",
        "type": [common.fixed_concept("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "OF",
                                      "Outpatient facility")],
        "telecom": [{"system": "phone", "value": p.phone, "use": "work"}],
        "address": _address(p),
        "physicalType": common.fixed_concept("http://terminology.hl7.org/CodeSystem/location-physical-type",
                                             "bu", "Building"),
        "managingOrganization": common.reference("Organization", organization_id(facility), facility),
    }


@functools.cache
def resources(kind: str) -> tuple[dict[str, Any], ...]:
    """Every directory resource of `kind`, in roster order (callers copy before changing one)."""
    if kind == "Practitioner":
        return tuple(practitioner(p) for p in PROVIDERS)
    if kind == "PractitionerRole":
        return tuple(practitioner_role(p) for p in PROVIDERS)
    if kind == "Organization":
        return tuple(organization(f) for f in _FACILITIES)
    if kind == "Location":
        return tuple(location(f) for f in _FACILITIES)
    return ()


KINDS = ("Practitioner", "PractitionerRole", "Organization", "Location")


def location_for(facility: object) -> dict[str, Any] | None:
    """A reference to the clinic's Location when the facility is the roster's, else a display."""
    name = common.text(facility)
    if name is None:
        return None
    if name in _FACILITIES:
        return common.reference("Location", location_id(name), name)
    return {"display": name}
