"""The seeded synthetic population: patients, their charts and their upcoming appointments.

Same seed, same population, in any process: everything is drawn from one Faker instance seeded with
`seed` (its `random.Random` and its en_US name and address tables). Faker's own formatters cost
50-200 us a call, too slow for a 200-patient build, so names come from Faker's weighted tables with
`random.choices` and addresses, phones and e-mails are composed here.

Always present whatever the seed, and documented for tests and scenarios:
- the Redox sandbox patient Timothy Bixby (`BIXBY_MRN`), written by hand;
- `DUPLICATE_GROUPS`: look-alikes sharing FirstName + LastName + DOB with different MRNs, so a
  demographic PatientSearch returns PotentialMatches. No other two patients share those three.

Phone numbers use the fictional 555-01xx range, e-mails the example.* domains and SSNs the 9xx
area, which the SSA never assigns.

`build()` returns the population as JSON bytes, cached per (seed, size): `SyntheticEHR.reset()`
re-reads them instead of running Faker again, and several sandboxes in one process share the work.
They are kept on disk too (the user's cache directory), so that a process that finds them there
never imports Faker (7 MB resident, a good part of what a fresh emulator costs).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import random
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from emulator.ehr import clinical
from emulator.ehr.providers import PROVIDERS, Provider
from emulator.ehr.scheduling import HORIZON_DAYS, SLOTS_PER_DAY

if TYPE_CHECKING:  # imported only when a population is generated (see `build`)
    from faker import Faker

BIXBY_MRN = "0000000001"
BIXBY_EHRID = "3b8f2c4e-71d0-4a6b-9e15-c2d4f6a8b0e1"


@dataclass(frozen=True, slots=True)
class LookAlike:
    mrn: str
    sex: str
    zip: str


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Patients a FirstName + LastName + DOB search cannot tell apart; Sex or ZIP may."""

    first_name: str
    last_name: str
    dob: str
    members: tuple[LookAlike, ...]

    @property
    def mrns(self) -> tuple[str, ...]:
        return tuple(m.mrn for m in self.members)


DUPLICATE_GROUPS: tuple[DuplicateGroup, ...] = (
    # Two of three share a ZIP: the ZIP filter narrows the search but still leaves two.
    DuplicateGroup("Maria", "Garcia", "1985-03-14", (
        LookAlike("0000001001", "Female", "53703"),
        LookAlike("0000001002", "Female", "60614"),
        LookAlike("0000001003", "Female", "53703"),
    )),
    DuplicateGroup("James", "Johnson", "1972-11-02", (
        LookAlike("0000001011", "Male", "53566"),
        LookAlike("0000001012", "Male", "97006"),
    )),
    DuplicateGroup("Linda", "Nguyen", "1990-07-21", (
        LookAlike("0000001021", "Female", "10001"),
        LookAlike("0000001022", "Female", "94110"),
    )),
    # Same ZIP, different Sex: only the Sex filter tells them apart.
    DuplicateGroup("Jordan", "Lee", "2001-05-30", (
        LookAlike("0000001031", "Male", "30307"),
        LookAlike("0000001032", "Female", "30307"),
    )),
)

FIXED_PATIENTS = 1 + sum(len(g.members) for g in DUPLICATE_GROUPS)

_PLACES = {  # ZIP: City, State, County
    "53566": ("Monroe", "WI", "Green"),
    "53703": ("Madison", "WI", "Dane"),
    "60614": ("Chicago", "IL", "Cook"),
    "97006": ("Beaverton", "OR", "Washington"),
    "10001": ("New York", "NY", "New York"),
    "94110": ("San Francisco", "CA", "San Francisco"),
    "30307": ("Atlanta", "GA", "DeKalb"),
}
_RACES = ("White", "White", "White", "Black or African American", "Asian", "American Indian or Alaska Native",
          "Native Hawaiian or Other Pacific Islander", "Other Race")
_LANGUAGES = ("en", "en", "en", "en", "en", "en", "es", "es", "zh", "vi", "fr")
_ADULT_MARITAL = ("Single", "Married", "Married", "Divorced", "Widowed", "Separated")
_REASONS = ("Annual physical", "Follow up", "Check up", "Medication review", "Lab review")
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
_PEDIATRICIAN = PROVIDERS[2]
_PRIMARY_CARE = PROVIDERS[:2]
_SPECIALISTS = PROVIDERS[3:]

_FAKER: Faker | None = None
_FAKER_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Tables:
    male: tuple[str, ...]
    male_cum: tuple[float, ...]
    female: tuple[str, ...]
    female_cum: tuple[float, ...]
    last: tuple[str, ...]
    last_cum: tuple[float, ...]
    street_suffixes: tuple[str, ...]
    city_prefixes: tuple[str, ...]
    city_suffixes: tuple[str, ...]
    zip_ranges: tuple[tuple[str, int, int], ...]


def _cumulative(weights: dict[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    total, cum = 0.0, []
    for weight in weights.values():
        total += weight
        cum.append(total)
    return tuple(weights), tuple(cum)


def _faker() -> tuple[Faker, _Tables]:
    """One Faker per process: creating one costs ~30 ms, and the tables never change."""
    global _FAKER
    if _FAKER is None:
        from faker import Faker

        _FAKER = Faker("en_US")
    person = _FAKER.provider("faker.providers.person")
    address = _FAKER.provider("faker.providers.address")
    return _FAKER, _tables(person, address)


@functools.cache
def _tables(person: Any, address: Any) -> _Tables:
    male, male_cum = _cumulative(person.first_names_male)
    female, female_cum = _cumulative(person.first_names_female)
    last, last_cum = _cumulative(person.last_names)
    states = set(address.states_abbr)
    zips = tuple((state, lo, hi) for state, (lo, hi) in address.states_postcode.items() if state in states)
    return _Tables(male, male_cum, female, female_cum, last, last_cum, tuple(address.street_suffixes),
                   tuple(address.city_prefixes), tuple(address.city_suffixes), zips)


class _Builder:
    """One build: the seeded draws, the uniqueness bookkeeping, the appointment grid."""

    def __init__(self, rng: random.Random, tables: _Tables) -> None:
        self.rng, self.t = rng, tables
        self.patients: list[dict[str, Any]] = []
        self.appointments: list[dict[str, Any]] = []
        self.taken_keys: set[tuple[str, str, str]] = set()
        self.taken_cells: set[tuple[str, int, int]] = set()
        self.visit_numbers: set[str] = set()
        self.next_order = 700_000_001

    # -- draws --------------------------------------------------------------------------------
    def first_name(self, sex: str) -> str:
        names, cum = (self.t.female, self.t.female_cum) if sex == "Female" else (self.t.male, self.t.male_cum)
        return self.rng.choices(names, cum_weights=cum)[0]

    def last_name(self) -> str:
        return self.rng.choices(self.t.last, cum_weights=self.t.last_cum)[0]

    def phone(self) -> str:
        return f"+1{self.rng.randint(201, 989)}555{self.rng.randint(100, 199):04d}"

    def email(self, first: str, last: str) -> str:
        local = "".join(c for c in f"{first}.{last}".lower() if c.isalnum() or c == ".")
        return f"{local}{self.rng.randint(1, 99)}@{self.rng.choice(_EMAIL_DOMAINS)}"

    def ssn(self) -> str:
        return f"9{self.rng.randint(0, 99):02d}-{self.rng.randint(10, 99)}-{self.rng.randint(1, 9999):04d}"

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def street(self) -> str:
        name = self.last_name() if self.rng.random() < 0.6 else self.first_name("Female")
        return f"{self.rng.randint(1, 9999)} {name} {self.rng.choice(self.t.street_suffixes)}"

    def place(self) -> tuple[str, str, str, str]:
        """ZIP, City, State, County, with the ZIP inside the state's range."""
        state, lo, hi = self.rng.choice(self.t.zip_ranges)
        name = self.last_name() if self.rng.random() < 0.5 else self.first_name("Male")
        style = self.rng.randrange(3)
        city = (f"{self.rng.choice(self.t.city_prefixes)} {name}" if style == 0
                else f"{name}{self.rng.choice(self.t.city_suffixes)}" if style == 1 else name)
        return f"{self.rng.randint(lo, hi):05d}", city, state, self.last_name()

    # -- records ------------------------------------------------------------------------------
    def patient(self, *, mrn: str, first: str, middle: str | None, last: str, dob: date, sex: str,
                place: tuple[str, str, str, str], ehrid: str | None = None) -> dict[str, Any]:
        years = clinical.age(dob)
        zip_, city, state, county = place
        adult = years >= 18
        marital = self.rng.choice(_ADULT_MARITAL) if adult else "Single"
        pcp = self.rng.choice(_PRIMARY_CARE) if adult else _PEDIATRICIAN
        address = {"StreetAddress": self.street(), "City": city, "State": state, "ZIP": zip_,
                   "County": county, "Country": "US"}
        demographics: dict[str, Any] = {
            "FirstName": first, "MiddleName": middle, "LastName": last, "DOB": dob.isoformat(),
            "SSN": self.ssn(), "Sex": sex, "Race": self.rng.choice(_RACES),
            "IsHispanic": self.rng.random() < 0.18, "MaritalStatus": marital, "IsDeceased": False,
            "PhoneNumber": {"Home": self.phone(), "Office": self.phone() if adult else None,
                            "Mobile": self.phone()},
            "EmailAddresses": [self.email(first, last)], "Language": self.rng.choice(_LANGUAGES),
            "Citizenship": [], "Address": address,
        }
        contacts = []
        if not adult or self.rng.random() < 0.5:
            relation = (self.rng.choice(("Mother", "Father")) if not adult
                        else "Spouse" if marital == "Married" else self.rng.choice(("Sibling", "Friend")))
            contact_sex = "Female" if relation == "Mother" else "Male" if relation == "Father" \
                else self.rng.choice(("Female", "Male"))
            contact_last = last if relation in ("Mother", "Father", "Spouse", "Sibling") else self.last_name()
            contact_first = self.first_name(contact_sex)
            contacts.append({
                "FirstName": contact_first, "LastName": contact_last,
                "Address": dict(address) if relation != "Friend" else {},
                "PhoneNumber": {"Home": self.phone(), "Mobile": self.phone()},
                "EmailAddresses": [self.email(contact_first, contact_last)],
                "RelationToPatient": relation, "Roles": ["Emergency Contact"],
            })
        key = ehrid or self.uuid()
        chart = clinical.chart(self.rng, dob, self.next_order, pcp.reference())
        self.next_order += 10
        chart["Immunizations"], chart["Procedures"], insurances = clinical.extras(key, dob)
        record = {
            "Key": key,
            "Identifiers": [{"ID": mrn, "IDType": "MR"}, {"ID": key, "IDType": "EHRID"}],
            "Demographics": demographics,
            "Extra": {"Notes": [], "PCP": pcp.pcp(), "Contacts": contacts, "Insurances": insurances},
            "Chart": chart,
        }
        self.patients.append(record)
        self.taken_keys.add((first.casefold(), last.casefold(), dob.isoformat()))
        return record

    def appointment(self, patient: dict[str, Any], provider: Provider, *, day: int | None = None,
                    slot: int | None = None, reason: str | None = None, duration: int | None = None) -> None:
        """Book a free grid cell with `provider` (given or random); skipped if the diary is full."""
        for _ in range(50):
            d = day if day is not None else self.rng.randint(1, HORIZON_DAYS)
            s = slot if slot is not None else self.rng.randrange(SLOTS_PER_DAY)
            if (provider.npi, d, s) not in self.taken_cells:
                break
        else:
            return
        self.taken_cells.add((provider.npi, d, s))
        number = str(self.rng.randint(1_000_000, 9_999_999))
        while number in self.visit_numbers:
            number = str(self.rng.randint(1_000_000, 9_999_999))
        self.visit_numbers.add(number)
        is_specialist = provider in _SPECIALISTS
        self.appointments.append({
            "VisitNumber": number, "BusinessDay": d, "Slot": s, "Provider": provider.npi,
            "Duration": duration or self.rng.choice((15, 30)),
            "Reason": reason or ("Consultation" if is_specialist else self.rng.choice(_REASONS)),
            "PatientKey": patient["Key"],
        })

    def book_some(self, patient: dict[str, Any]) -> None:
        adult = clinical.age(date.fromisoformat(patient["Demographics"]["DOB"])) >= 18
        for _ in range(self.rng.choice((0, 1, 1, 2, 3))):
            if not adult:
                provider = _PEDIATRICIAN
            elif self.rng.random() < 0.75:
                provider = next(p for p in PROVIDERS if p.npi == patient["Extra"]["PCP"]["ID"])
            else:
                provider = self.rng.choice(_SPECIALISTS)
            self.appointment(patient, provider)


def _bixby(b: _Builder) -> None:
    """The Redox sandbox patient, with a hand-written chart and two appointments with his pediatrician."""
    record = b.patient(mrn=BIXBY_MRN, first="Timothy", middle="Paul", last="Bixby", dob=date(2008, 1, 6),
                       sex="Male", place=("53566", "Monroe", "WI", "Green"), ehrid=BIXBY_EHRID)
    demographics = record["Demographics"]
    demographics.update(SSN="900-10-0001", Race="White", IsHispanic=False, Language="en",
                        EmailAddresses=["timothy.bixby@example.com"],
                        PhoneNumber={"Home": "+16085550101", "Office": None, "Mobile": "+16085550102"})
    demographics["Address"]["StreetAddress"] = "218 Cedar Lane"
    record["Extra"]["Contacts"] = [{
        "FirstName": "Laura", "LastName": "Bixby", "Address": dict(demographics["Address"]),
        "PhoneNumber": {"Home": "+16085550101", "Mobile": "+16085550103"},
        "EmailAddresses": ["laura.bixby@example.com"], "RelationToPatient": "Mother",
        "Roles": ["Emergency Contact"],
    }]
    asthma = clinical.problem("Asthma", date(2014, 3, 11))
    record["Chart"] = {
        "Allergies": [clinical.allergy("Peanut", 2, 4, date(2010, 6, 2))],
        "Problems": [asthma],
        "Medications": [clinical.medication("albuterol", asthma, date(2014, 3, 11))],
        "Results": [],
        "Immunizations": [clinical.immunization("115", date(2019, 2, 4)),
                          clinical.immunization("141", date(2024, 10, 15))],
        "Procedures": [clinical.procedure("94010", date(2014, 3, 11))],
    }
    coverage = clinical.insurance(1, "BCW900100001", "00871", date(2020, 1, 1))
    coverage["Insured"] = {"Relationship": "Child", "FirstName": "Laura", "LastName": "Bixby"}
    record["Extra"]["Insurances"] = [coverage]
    b.appointment(record, _PEDIATRICIAN, day=1, slot=2, reason="Asthma follow up", duration=30)
    b.appointment(record, _PEDIATRICIAN, day=10, slot=10, reason="Annual physical", duration=30)


def _random_patient(b: _Builder, mrn: str) -> dict[str, Any]:
    sex = "Female" if b.rng.random() < 0.5 else "Male"
    first = b.first_name(sex)
    middle = b.first_name(sex) if b.rng.random() < 0.7 else None
    last = b.last_name()
    dob = date.fromordinal(b.rng.randint(date(1930, 1, 1).toordinal(), date(2023, 12, 31).toordinal()))
    while (first.casefold(), last.casefold(), dob.isoformat()) in b.taken_keys:
        dob = date.fromordinal(dob.toordinal() + 1)
    return b.patient(mrn=mrn, first=first, middle=middle, last=last, dob=dob, sex=sex, place=b.place())


def _generate(seed: int, size: int) -> dict[str, Any]:
    with _FAKER_LOCK:  # the shared Faker's random state is per build
        fake, tables = _faker()
        fake.seed_instance(seed)
        b = _Builder(fake.random, tables)
        _bixby(b)
        for group in DUPLICATE_GROUPS:
            for member in group.members:
                city, state, county = _PLACES[member.zip]
                record = b.patient(mrn=member.mrn, first=group.first_name,
                                   middle=b.first_name(member.sex) if b.rng.random() < 0.5 else None,
                                   last=group.last_name, dob=date.fromisoformat(group.dob), sex=member.sex,
                                   place=(member.zip, city, state, county))
                b.book_some(record)
        extra = max(0, size - FIXED_PATIENTS)
        # 2,000,000+ keeps random MRNs clear of Bixby's and the look-alikes' hand-picked ones.
        for number in b.rng.sample(range(2_000_000, 100_000_000), extra):
            b.book_some(_random_patient(b, f"{number:010d}"))
        return {"patients": b.patients, "appointments": b.appointments}


@functools.lru_cache(maxsize=8)
def build(seed: int, size: int) -> bytes:
    """The pristine population for (seed, size) as JSON; at least `FIXED_PATIENTS` patients.

    Read from the disk cache when an earlier process built it with the same code and Faker (the
    cache file's name says which), else generated and written there for the next process."""
    path = _cache_file(seed, size)
    if path is not None:
        try:
            cached = path.read_bytes()
        except OSError:
            pass
        else:
            if cached.startswith(b'{"patients":') and cached.endswith(b"}"):
                return cached
    built = orjson.dumps(_generate(seed, size))
    if path is not None:
        _write(path, built)
    return built


def _cache_file(seed: int, size: int) -> Path | None:
    """Where the population for (seed, size) is cached; None when there is no cache directory."""
    digest = _code_digest()
    if digest is None:
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "redox-emulator" / f"population-{seed}-{size}-{digest}.json"


@functools.cache
def _code_digest() -> str | None:
    """What the output depends on: this package's code (population, clinical, providers, scheduling
    and their helpers), Faker's version (its name tables) and Python's (its `random`)."""
    try:
        h = hashlib.sha256(f"{sys.version_info[:2]} faker {importlib.metadata.version('faker')}".encode())
        for source in sorted(Path(__file__).parent.glob("*.py")):
            h.update(source.name.encode() + b"\0" + source.read_bytes())
    except (OSError, importlib.metadata.PackageNotFoundError):
        return None
    return h.hexdigest()[:16]


def _write(path: Path, data: bytes) -> None:
    """Atomically (parallel test workers may build the same population at once); best effort."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only home: every process generates it, as before
