"""The synthetic EHR's clinicians and clinics: who sees patients, where, and who answers ProviderQuery.

A fixed roster rather than faker output, so scheduling scenarios can name a provider by NPI. The
first entry is the Redox sandbox's attending, Pat Granite (NPI 4356789876), because the Redox
docs' Scheduling samples book with that NPI: such bookings then take a real slot here.
NPIs other than Granite's are made up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.ehr.payload import Identifier


@dataclass(frozen=True, slots=True)
class Provider:
    npi: str
    first_name: str
    last_name: str
    credentials: tuple[str, ...]
    specialty: str
    facility: str
    department: str
    room: str
    street: str
    city: str
    state: str
    zip: str
    county: str
    phone: str

    def reference(self) -> dict[str, Any]:
        """The provider as Visit.AttendingProvider / PCP / AvailableSlots.Provider."""
        return {
            "ID": self.npi,
            "IDType": "NPI",
            "FirstName": self.first_name,
            "LastName": self.last_name,
            "Credentials": list(self.credentials),
            "Address": {"StreetAddress": self.street, "City": self.city, "State": self.state,
                        "ZIP": self.zip, "County": self.county, "Country": "USA"},
            "EmailAddresses": [],
            "PhoneNumber": {"Office": self.phone},
        }

    def pcp(self) -> dict[str, Any]:
        return {"NPI": self.npi, **self.reference()}

    def location(self) -> dict[str, Any]:
        return {"Type": "Outpatient", "Facility": self.facility, "Department": self.department,
                "Room": self.room}

    def directory_entry(self) -> dict[str, Any]:
        """The provider as a Provider.ProviderQueryResponse entry."""
        return {
            "Identifiers": [{"ID": self.npi, "IDType": "NPI"}],
            "IsActive": True,
            "Demographics": {
                "FirstName": self.first_name,
                "LastName": self.last_name,
                "Credentials": list(self.credentials),
                "Addresses": [{"Use": "Office", "StreetAddress": self.street, "City": self.city,
                               "State": self.state, "ZIP": self.zip, "County": self.county,
                               "Country": "USA"}],
                "EmailAddresses": [],
                "PhoneNumber": {"Office": self.phone},
            },
            "Qualifications": [],
            "Roles": [{"Specialties": [{"Description": self.specialty}],
                       "Locations": [{"Name": self.facility, "Status": "active"}]}],
        }


PROVIDERS: tuple[Provider, ...] = (
    Provider("4356789876", "Pat", "Granite", ("MD",), "Family Medicine", "Lakeside Family Clinic",
             "Family Medicine", "12", "900 Lakeshore Drive", "Madison", "WI", "53703", "Dane",
             "+16085550140"),
    Provider("1609283746", "Amara", "Okafor", ("MD",), "Internal Medicine", "Lakeside Family Clinic",
             "Internal Medicine", "21", "900 Lakeshore Drive", "Madison", "WI", "53703", "Dane",
             "+16085550141"),
    Provider("1811456302", "Daniel", "Whitfield", ("DO",), "Pediatrics", "Green County Pediatrics",
             "Pediatrics", "3", "45 Courthouse Square", "Monroe", "WI", "53566", "Green",
             "+16085550142"),
    Provider("1427730915", "Sofia", "Marchetti", ("NP",), "Cardiology", "Capitol Heart Center",
             "Cardiology", "204", "310 State Street", "Madison", "WI", "53703", "Dane",
             "+16085550143"),
    Provider("1952064871", "Henry", "Castellanos", ("MD",), "Endocrinology", "Capitol Heart Center",
             "Endocrinology", "118", "310 State Street", "Madison", "WI", "53703", "Dane",
             "+16085550144"),
)

BY_NPI: dict[str, Provider] = {p.npi: p for p in PROVIDERS}


def search(ids: list[Identifier], first_name: str | None, last_name: str | None) -> list[Provider]:
    """ProviderQuery: by any identifier's ID, else by whichever names were given (case-insensitive)."""
    if ids:
        wanted = {id_ for id_, _ in ids}
        return [p for p in PROVIDERS if p.npi in wanted]
    if first_name is None and last_name is None:
        return []
    return [p for p in PROVIDERS
            if (first_name is None or p.first_name.casefold() == first_name.casefold())
            and (last_name is None or p.last_name.casefold() == last_name.casefold())]
