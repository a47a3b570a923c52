"""`Patient/$match`: the EHR's patients scored against a Patient, best first (HL7's MPI match).

Redox's body (FHIR.md 3) is a plain object, `{resource, onlyCertainMatches, count, matchScoreThreshold}`;
HL7's `Parameters` form is read too. Redox's answer is not documented, so it is HL7's: a searchset
whose entries carry `search.score` (0..1) and the `match-grade` extension.

Points out of 100: family name 20 (12 when close), given name 15 (10 for a nickname, initial or typo),
birth date 25 (10 when two of year, month and day agree), gender 10, an identifier 20, a phone or
e-mail 5, the address (postal code or street) 5. `certain` takes 90 (a matching identifier and the
demographics), `probable` 70 (every demographic, or a near-duplicate), `possible` 45; less is not
returned. So a near-duplicate of a patient (a nickname, another phone) comes back as probable.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from emulator.ehr.patients import Patient
from emulator.errors import FhirError
from emulator.fhir import values
from emulator.fhir.resources import Resources

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
GRADES = ((90, "certain"), (70, "probable"), (45, "possible"))
DEFAULT_COUNT = 10
MAX_COUNT = 100


@dataclass(frozen=True, slots=True)
class MatchRequest:
    resource: dict[str, Any]
    only_certain: bool = False
    count: int = DEFAULT_COUNT
    threshold: float = 0.0


def parse(body: Any) -> MatchRequest:
    if not isinstance(body, dict):
        raise FhirError("Patient/$match takes a JSON object: {\"resource\": {Patient}, \"onlyCertainMatches\", "
                        "\"count\", \"matchScoreThreshold\"} (or an HL7 Parameters resource)", code="structure")
    fields = dict(body)
    if body.get("resourceType") == "Parameters":
        fields = {}
        for p in body.get("parameter") or []:
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                value = p.get("resource", next((p[k] for k in p if k.startswith("value")), None))
                fields[p["name"]] = value
    resource = fields.get("resource")
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise FhirError("Patient/$match needs `resource`, a Patient resource (resourceType \"Patient\") to match",
                        code="required")
    only = fields.get("onlyCertainMatches", False)
    if not isinstance(only, bool):
        raise FhirError("onlyCertainMatches must be true or false", code="invalid")
    count = fields.get("count", DEFAULT_COUNT)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise FhirError(f"count must be a whole number from 1 to {MAX_COUNT}, found {count!r}", code="invalid")
    threshold = fields.get("matchScoreThreshold", 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise FhirError(f"matchScoreThreshold must be a number from 0 to 1, found {threshold!r}", code="invalid")
    return MatchRequest(resource, only, count, float(threshold))


def _strings(items: Any, key: str) -> list[str]:
    found: list[str] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            value = item.get(key)
            found += [x for x in (value if isinstance(value, list) else [value]) if isinstance(x, str) and x.strip()]
    return found


@dataclass(frozen=True, slots=True)
class _Features:
    families: tuple[str, ...]
    givens: tuple[str, ...]
    birth: str | None
    gender: str | None
    identifiers: tuple[tuple[str | None, str], ...]
    contacts: tuple[str, ...]
    postal: tuple[str, ...]
    lines: tuple[str, ...]


def features(resource: dict[str, Any]) -> _Features:
    names = resource.get("name")
    ids = tuple((i.get("system") if isinstance(i.get("system"), str) else None, i["value"])
                for i in resource.get("identifier") or [] if isinstance(i, dict) and isinstance(i.get("value"), str))
    contacts = tuple(_contact(t) for t in resource.get("telecom") or [] if isinstance(t, dict)
                     and isinstance(t.get("value"), str) and t["value"].strip())
    birth = resource.get("birthDate")
    gender = resource.get("gender")
    return _Features(
        tuple(values.fold(x.strip()) for x in _strings(names, "family")),
        tuple(values.fold(x.strip()) for x in _strings(names, "given")),
        birth[:10] if isinstance(birth, str) else None,
        gender if isinstance(gender, str) else None,
        ids, contacts,
        tuple(x.strip()[:5] for x in _strings(resource.get("address"), "postalCode")),
        tuple(values.fold(x.strip()) for x in _strings(resource.get("address"), "line")),
    )


def _contact(t: dict[str, Any]) -> str:
    value: str = t["value"].strip()
    digits = "".join(c for c in value if c.isdigit())
    return digits[-10:] if t.get("system") == "phone" and len(digits) >= 10 else value.casefold()


def _close(a: str, b: str) -> bool:
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def _nickname(a: str, b: str) -> bool:
    """Tim for Timothy, T for Thomas, Jon for John (a typo): what a duplicate record often has."""
    short, long_ = sorted((a, b), key=len)
    return bool(short) and (long_.startswith(short) or _close(a, b))


def points(q: _Features, c: _Features) -> int:
    score = 0
    if q.families and c.families:
        if set(q.families) & set(c.families):
            score += 20
        elif any(_close(a, b) for a in q.families for b in c.families):
            score += 12
    if q.givens and c.givens:
        if q.givens[0] == c.givens[0]:
            score += 15
        elif any(_nickname(a, b) for a in q.givens for b in c.givens):
            score += 10
    if q.birth and c.birth:
        if q.birth == c.birth:
            score += 25
        else:
            qa, ca = q.birth.split("-"), c.birth.split("-")
            if len(qa) == len(ca) == 3 and sum(x == y for x, y in zip(qa, ca, strict=True)) == 2:
                score += 10
    if q.gender and q.gender == c.gender:
        score += 10
    if any(value == cv and (system is None or cs is None or system == cs)
           for system, value in q.identifiers for cs, cv in c.identifiers):
        score += 20
    if set(q.contacts) & set(c.contacts):
        score += 5
    if set(q.postal) & set(c.postal) or set(q.lines) & set(c.lines):
        score += 5
    return score


def grade(score: int) -> str | None:
    return next((name for floor, name in GRADES if score >= floor), None)


def _candidate(p: Patient, q: _Features, numbers: set[str]) -> bool:
    """A cheap look at the raw record: could it score at all? (Saves rendering the whole population.)"""
    d = p.demographics
    last, dob = d.get("LastName"), d.get("DOB")
    if isinstance(dob, str) and q.birth and dob[:10] == q.birth:
        return True
    if isinstance(last, str) and q.families and any(_close(values.fold(last.strip()), f) for f in q.families):
        return True
    return any(isinstance(e, dict) and e.get("ID") in numbers for e in p.identifiers)


def run(resources: Resources, request: MatchRequest) -> list[tuple[dict[str, Any], float, str]]:
    """(Patient, score, grade) for every patient worth returning, best first."""
    q = features(request.resource)
    numbers = {value for _, value in q.identifiers}
    found = []
    for p in resources.active_patients():
        if not _candidate(p, q, numbers):
            continue
        resource = resources.patient(p)
        score = points(q, features(resource))
        name = grade(score)
        if name is None or score / 100 < request.threshold or (request.only_certain and name != "certain"):
            continue
        found.append((resource, score / 100, name))
    found.sort(key=lambda item: -item[1])
    return found[:request.count]


def bundle(base: str, matches: list[tuple[dict[str, Any], float, str]]) -> dict[str, Any]:
    entries = [{"fullUrl": f"{base}/Patient/{r['id']}", "resource": r,
                "search": {"extension": [{"url": MATCH_GRADE, "valueCode": name}], "mode": "match", "score": score}}
               for r, score, name in matches]
    found: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(entries)}
    if entries:
        found["entry"] = entries
    return found
