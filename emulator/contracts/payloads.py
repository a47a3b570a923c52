"""Valid, realistic Redox payloads for every event type, from the synthetic EHR's patients.

    build("PatientAdmin", "NewPatient", patient="0000000001", seed=7, now=clock_now)

The contract's schema says what a payload must hold; the synthetic EHR's records (patients, the
provider roster) and faker fill it with values a real feed would carry. Every field the schema
requires is present, plus the common optional ones (Patient, Visit, codes, names, dates), and nothing
the schema does not list, so the payload keeps its contract in `strict` mode too. Same arguments,
same payload. Pushes (delivery) and tests use it.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from emulator import catalog
from emulator.contracts import schemas
from emulator.contracts.schemas import Contract
from emulator.contracts.shape import project
from emulator.ehr.population import build as build_population
from emulator.ehr.providers import PROVIDERS, Provider
from emulator.settings import Destination, Source

if TYPE_CHECKING:  # imported when a first payload is built: a fresh emulator may never (7 MB)
    from faker import Faker

REFERENCE_TIME = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)  # `now` unless given: keeps output deterministic
POPULATION_SEED, POPULATION_SIZE = 1, 200  # the emulator's default population
# Optional fields worth filling: what real feeds carry, without filling every corner of a schema.
_COMMON = frozenset({
    "Patient", "Visit", "Identifiers", "Demographics", "ID", "IDType", "FirstName", "LastName", "DOB", "Sex",
    "Address", "StreetAddress", "City", "State", "ZIP", "Country", "PhoneNumber", "Home", "VisitNumber",
    "VisitDateTime", "Location", "Facility", "Department", "AttendingProvider", "Order", "Orders", "Procedure",
    "Code", "Codeset", "Description", "Name", "Status", "DateTime", "Results", "Value", "ValueType", "Units",
    "Provider", "Type", "Note", "Document", "Medication", "Product", "Dose", "Quantity", "Transaction",
})
_MAX_DEPTH = 6  # optional fields deeper than this are left out


@functools.cache
def _population() -> tuple[dict[str, Any], ...]:
    records: list[dict[str, Any]] = orjson.loads(build_population(POPULATION_SEED, POPULATION_SIZE))["patients"]
    return tuple(records)


@functools.cache
def bundled() -> Mapping[tuple[str, str], Contract]:
    """The bundled contracts, loaded once per process."""
    return schemas.load()


@functools.cache
def _faker() -> Faker:
    from faker import Faker

    return Faker("en_US")


def patient_record(patient: object, rng: random.Random) -> dict[str, Any]:
    """A patient as a payload carries it, from an MRN, an EHR patient record (or object), or at random."""
    if patient is None:
        patient = rng.choice(_population())
    if isinstance(patient, str):
        for record in _population():
            if any(i["ID"] == patient for i in record["Identifiers"]):
                patient = record
                break
        else:
            raise LookupError(f"no patient with the identifier {patient!r} in the synthetic EHR")
    if isinstance(patient, Mapping):
        ids, demographics = patient.get("Identifiers"), patient.get("Demographics")
        extra = patient.get("Extra") or {}
    else:  # an emulator.ehr.patients.Patient
        ids, demographics = getattr(patient, "identifiers", None), getattr(patient, "demographics", None)
        extra = getattr(patient, "extra", {}) or {}
    if not isinstance(ids, list) or not isinstance(demographics, Mapping):
        raise TypeError(f"not a patient: {patient!r}")
    chart = patient.get("Chart") if isinstance(patient, Mapping) else getattr(patient, "chart", None)
    return {"Identifiers": ids, "Demographics": dict(demographics), **{k: v for k, v in extra.items() if v},
            "Chart": chart or {}}


class _Filler:
    """Values by field name, drawn from one seeded rng and faker so a seed gives one payload."""

    def __init__(self, rng: random.Random, now: datetime, patient: dict[str, Any], provider: Provider) -> None:
        self.rng, self.now, self.provider = rng, now, provider
        self.chart: dict[str, Any] = patient.pop("Chart", None) or {}
        self.patient = patient
        self.fake = _faker()
        self.fake.seed_instance(rng.getrandbits(32))

    def known(self, name: str, parent: str) -> Any:
        """A realistic section for a well-known field, or None to build it from the schema."""
        if name == "Patient" and parent == "":
            return self.patient
        if parent in ("", "Patient") and self.chart.get(name):
            return self.chart[name]  # Allergies, Problems, Medications, Results of the patient's chart
        if name in ("AttendingProvider", "OrderingProvider", "Provider", "ReferringProvider", "PCP"):
            return self.provider.reference()
        if name == "Location":
            return self.provider.location()
        return None

    def string(self, name: str, parent: str) -> str:
        rng, fake = self.rng, self.fake
        if name.endswith("DateTime") or name in ("Expiration", "IssuedAt"):
            return (self.now - timedelta(minutes=rng.randint(0, 600))).isoformat(timespec="milliseconds")
        if name.endswith("Date") or name == "DOB":
            return (self.now.date() - timedelta(days=rng.randint(0, 900))).isoformat()
        if name == "IDType":
            return "NPI" if "Provider" in parent else "MR"
        if name in ("ID", "VisitNumber", "AccountNumber", "Number") or name.endswith("ID"):
            return str(rng.randint(10_000_000, 99_999_999))
        if name in ("Codeset", "CodeSystemName"):
            return rng.choice(("LOINC", "CPT", "SNOMED CT", "RxNorm"))
        if name == "CodeSystem":
            return "2.16.840.1.113883.6.1"
        if name == "Code":
            return f"{rng.randint(1000, 99999)}-{rng.randint(0, 9)}"
        if name in ("FirstName", "LastName", "MiddleName"):
            return {"FirstName": fake.first_name, "LastName": fake.last_name, "MiddleName": fake.first_name}[name]()
        if name in ("Home", "Mobile", "Office", "Business", "Fax") or name == "PhoneNumber":
            return f"+1608555{rng.randint(0, 9999):04d}"
        if name.startswith("Email"):
            return str(fake.email(safe=True))
        if name == "StreetAddress":
            return str(fake.street_address())
        if name == "City":
            return str(fake.city())
        if name == "State":
            return str(fake.state_abbr())
        if name == "ZIP":
            return str(fake.zipcode())
        if name in ("Country",):
            return "US"
        if name == "Sex":
            return rng.choice(("Male", "Female"))
        if name == "Value":
            return f"{rng.uniform(1, 200):.1f}"
        if name == "ValueType":
            return "Numeric"
        if name == "Units":
            return rng.choice(("mg", "mL", "mmol/L", "g/dL"))
        if name == "Status":
            return rng.choice(("Active", "Final", "Completed"))
        if name in ("URL", "SessionBaseURL", "FileContents") or name.endswith("URI"):
            return f"https://example.test/{uuid.UUID(int=rng.getrandbits(128))}"
        if name in ("Description", "Name", "Notes", "Comments", "Reason", "Instructions", "Text"):
            return str(fake.sentence(nb_words=4)).rstrip(".")
        return str(fake.word()).capitalize()

    def value(self, schema: Mapping[str, Any], name: str, parent: str, depth: int) -> Any:
        kinds = schema.get("type")
        kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
        if "object" in kinds or "properties" in schema:
            return self.obj(schema, name, f"{parent}.{name}" if parent else name, depth)
        if "array" in kinds:
            items = schema.get("items")
            item = self.value(items, _singular(name), parent, depth + 1) if isinstance(items, Mapping) else None
            return [] if item is None else [item]
        if "string" in kinds:
            return self.string(name, parent)
        if "boolean" in kinds:
            return self.rng.random() < 0.5
        if "integer" in kinds or "number" in kinds:
            return self.rng.randint(1, 30)
        return None  # untyped (Extensions): left out

    def obj(self, schema: Mapping[str, Any], name: str, where: str, depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        done: dict[str, Any] = {}
        for field, sub in properties.items():
            known = self.known(field, where)
            if known is None and field not in required and (field not in _COMMON or depth >= _MAX_DEPTH):
                continue
            value = self.value(sub, field, where, depth + 1)
            if known is not None:  # the record's values, over a skeleton that has every required field
                value = _overlay(value, project(known, sub))
            if value is None and field in required:
                value = ""
            if value is not None and (value != [] or field in required):
                done[field] = value
        return done


def _overlay(base: Any, top: Any) -> Any:
    """`top` over `base`: objects merge key by key; anything else, `top` wins unless it is missing."""
    if isinstance(base, dict) and isinstance(top, dict):
        return {**base, **{k: _overlay(base.get(k), v) for k, v in top.items()}}
    if isinstance(base, list) and isinstance(top, list) and base and top:
        return [_overlay(base[0], item) for item in top]  # every record entry keeps the required fields
    return base if top is None or (top == [] and base) else top


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def build(data_model: str, event_type: str, *, patient: object = None, seed: int | None = None,
          rng: random.Random | None = None, now: datetime | None = None, source: Source | None = None,
          destinations: list[Destination] | None = None,
          contracts: Mapping[tuple[str, str], Contract] | None = None) -> dict[str, Any]:
    """A payload for one event type, with a full Meta; deterministic for a given seed (or rng state).

    `patient`: an MRN (or any identifier), an EHR patient record, or None for one drawn by the rng.
    `now` sets EventDateTime and the dates around it (default REFERENCE_TIME).
    """
    model, event = catalog.canonical(data_model, event_type)
    if not catalog.is_known(model, event):
        raise KeyError(f"unknown data model and event type: {data_model}.{event_type}")
    rng = rng or random.Random(seed if seed is not None else 0)
    now = now or REFERENCE_TIME
    schema = (contracts or bundled())[model, event].schema
    filler = _Filler(rng, now, patient_record(patient, rng), rng.choice(PROVIDERS))
    body = filler.obj(schema, "", "", 0)
    source = source or Source()
    destinations = destinations or [Destination()]
    body["Meta"] = project({
        "DataModel": data_model, "EventType": event_type,
        "EventDateTime": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "Test": True,
        "Source": {"ID": source.id, "Name": source.name},
        "Destinations": [{"ID": d.id, "Name": d.name} for d in destinations],
        "Message": {"ID": rng.randint(10_000_000, 99_999_999)},
        "Transmission": {"ID": rng.randint(10_000_000, 99_999_999)},
        "FacilityCode": "RES",
    }, schema["properties"]["Meta"])
    return {"Meta": body.pop("Meta"), **body}
