"""FHIR search on the EHR's resources: parameters parsed by HL7 type, matched, narrowed by index.

    query = parse("Patient", [("family", "Bixby"), ("birthdate", "2008-01-06")])   # FhirError if bad
    matches = run(resources, query)            # every match, in a stable order
    included = include(resources, query, page) # _include / _revinclude for the page's matches

Repeated parameters AND, comma-separated values OR. An unknown parameter or modifier is a 400 naming
it (Redox: "the text in the response explains that there's an unknown parameter"); an empty value
is ignored (HL7). Chains go one level (`patient.identifier`, `location.name`). A search by patient
renders that patient's chart only; a Patient search by identifier or _id goes through the EHR's index,
one by a birth date through a per-generation index of birth dates, one by name checks the index's raw
demographics before rendering anyone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from emulator import catalog
from emulator.ehr.patients import Patient
from emulator.errors import FhirError
from emulator.fhir import values as v
from emulator.fhir.params import PARAMS, RESULT_PARAMS, REVINCLUDE_TYPES, Param, includes, revincludes
from emulator.fhir.resources import TYPES, Resources

DEFAULT_COUNT = 31  # the one page of a live sandbox search held 31 entries (FHIR.md 2)
MAX_COUNT = 1000
MAX_VALUES = 100  # alternatives per parameter, parameters per search: bounded work per request
_MODIFIERS = {"string": ("exact", "contains", "missing"), "token": ("text", "not", "missing"),
              "date": ("missing",), "reference": ("missing",), "composite": ()}
_SPLIT = re.compile(r"(?<!\\),")
_ELEMENT = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\[x\])?$")


@dataclass(frozen=True, slots=True)
class Criterion:
    param: Param
    modifier: str | None
    alternatives: tuple[Any, ...]  # parsed per type; any one matching satisfies the criterion
    chain: Query | None = None  # a chained search on the referenced type
    chain_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Query:
    kind: str
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    includes: tuple[tuple[str, str, str | None], ...] = ()  # (source type, param, target type)
    revincludes: tuple[tuple[str, str], ...] = ()  # (source type, param)
    elements: tuple[str, ...] = ()
    raw: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # as given, for paging


def _unknown(what: str, name: str, kind: str, known: Iterable[str]) -> FhirError:
    names = sorted(known)
    return FhirError(f"Unknown {what} {name!r} for {kind}.{catalog.did_you_mean(name, names)} "
                     f"Supported: {', '.join(names)}", code="invalid")


def parse(kind: str, pairs: Iterable[tuple[str, str]]) -> Query:
    table = PARAMS[kind]
    criteria: list[Criterion] = []
    count, elements = DEFAULT_COUNT, tuple[str, ...]()
    incs: list[tuple[str, str, str | None]] = []
    revs: list[tuple[str, str]] = []
    raw = tuple(pairs)
    if len(raw) > MAX_VALUES:
        raise FhirError(f"Too many search parameters ({len(raw)}); at most {MAX_VALUES}", code="too-costly")
    for name, value in raw:
        value = value.strip()
        if not value:
            continue  # HL7: an empty parameter value is ignored
        if name == "_count":
            count = _count(value)
        elif name == "_elements":
            elements = _elements(value)
        elif name == "_include":
            incs.extend(_include(kind, value))
        elif name == "_revinclude":
            revs.extend(_revinclude(kind, value))
        else:
            criteria.append(_criterion(kind, table, name, value))
    return Query(kind, tuple(criteria), count, tuple(dict.fromkeys(incs)), tuple(dict.fromkeys(revs)), elements, raw)


def _count(value: str) -> int:
    if not value.isdigit() or int(value) > MAX_COUNT:
        raise FhirError(f"_count must be a whole number from 0 to {MAX_COUNT}, found {value!r}", code="invalid")
    return int(value)


def _elements(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    for name in names:
        if not _ELEMENT.match(name):
            raise FhirError(f"_elements lists element names separated by commas (as in "
                            f"_elements=identifier,name); {name!r} is not one", code="invalid")
    return names


def _include(kind: str, value: str) -> list[tuple[str, str, str | None]]:
    found = []
    for item in _alternatives(value):
        source, _, rest = item.partition(":")
        name, _, target = rest.partition(":")
        if f"{source}:{name}" not in includes(kind):
            raise _unknown("_include", item, kind, includes(kind))
        param = PARAMS[source][name]
        if target and target not in param.targets:
            raise FhirError(f"_include {item!r}: {source}:{name} refers to {', '.join(param.targets)}, "
                            f"not {target}", code="invalid")
        found.append((source, name, target or None))
    return found


def _revinclude(kind: str, value: str) -> list[tuple[str, str]]:
    found = []
    served = revincludes(kind)
    for item in _alternatives(value):
        source, _, name = item.partition(":")
        if not served:
            raise FhirError(f"_revinclude is served on {', '.join(REVINCLUDE_TYPES)} searches only (where "
                            f"Redox documents it), not on {kind}", code="not-supported")
        if item not in served:
            raise _unknown("_revinclude", item, kind, served)
        found.append((source, name))
    return found


def _alternatives(value: str) -> list[str]:
    found = [part.replace("\\,", ",").strip() for part in _SPLIT.split(value)]
    found = [f for f in found if f]
    if len(found) > MAX_VALUES:
        raise FhirError(f"Too many values ({len(found)}) in one parameter; at most {MAX_VALUES}", code="too-costly")
    return found


def _criterion(kind: str, table: dict[str, Param], name: str, value: str) -> Criterion:
    head, dot, chained = name.partition(".")
    base, _, modifier_text = head.partition(":")
    modifier = modifier_text or None
    param = table.get(base)
    if param is None:
        if base in RESULT_PARAMS or base.startswith("_"):
            raise _unknown("parameter", name, kind, [*table, *RESULT_PARAMS])
        raise _unknown("search parameter", base, kind, [*table, *RESULT_PARAMS])
    if dot:
        return _chain(kind, param, modifier, chained, value, name)
    if modifier is not None and modifier not in _MODIFIERS[param.type] and not (
            param.type == "reference" and modifier in param.targets):
        allowed = list(_MODIFIERS[param.type]) + (list(param.targets) if param.type == "reference" else [])
        raise FhirError(f"Unknown modifier ':{modifier}' on the {param.type} parameter {base!r}"
                        + (f"; it takes {', '.join(':' + m for m in allowed)}" if allowed else
                           "; it takes none"), code="invalid")
    alternatives = _alternatives(value)
    if modifier == "missing":
        if any(a not in ("true", "false") for a in alternatives):
            raise FhirError(f"{name} must be true or false", code="invalid")
        return Criterion(param, modifier, tuple(a == "true" for a in alternatives))
    return Criterion(param, modifier, tuple(_value(param, modifier, a, name) for a in alternatives))


def _value(param: Param, modifier: str | None, raw: str, name: str) -> Any:
    if param.type == "token":
        return raw if modifier == "text" else v.token(raw)
    if param.type == "date":
        return v.date_query(name, raw)
    if param.type == "reference":
        kind = modifier if modifier in param.targets else None
        return frozenset(v.reference_query(name, raw, param.targets, kind))
    if param.type == "composite":
        parts = raw.split("$")
        if len(parts) != len(param.parts):
            raise FhirError(f"{name} takes {len(param.parts)} values joined by $ ("
                            f"{'$'.join(param.parts)}), found {raw!r}", code="invalid")
        return tuple(parts)
    return raw


def _chain(kind: str, param: Param, modifier: str | None, chained: str, value: str, name: str) -> Criterion:
    if param.type != "reference":
        raise FhirError(f"{name}: only reference parameters can be chained, and {param.name!r} is a "
                        f"{param.type} parameter", code="invalid")
    if modifier is not None and modifier not in param.targets:
        raise FhirError(f"{name}: a chained parameter takes a resource type modifier "
                        f"({', '.join(param.targets)}), not :{modifier}", code="invalid")
    served = tuple(t for t in ((modifier,) if modifier else param.targets) if t in PARAMS)
    if "." in chained:
        raise FhirError(f"{name}: chains go one level deep ({param.name}.<parameter>)", code="not-supported")
    chained_name = chained.partition(":")[0]
    targets = tuple(t for t in served if chained_name in PARAMS[t])
    if not targets:
        known = sorted({n for t in served for n in PARAMS[t]})
        raise _unknown("chained parameter", chained_name, "/".join(served) or param.name, known)
    subqueries = tuple(parse(t, [(chained, value)]) for t in targets)
    merged = Query(targets[0], tuple(c for q in subqueries for c in q.criteria))
    return Criterion(param, modifier, (), merged, targets)


# -- matching ----------------------------------------------------------------------------------
def _matches(resources: Resources, resource: dict[str, Any], c: Criterion, cache: dict[int, set[str]]) -> bool:
    from emulator.fhir.params import values as element_values

    if c.chain is not None:
        ids = cache.get(id(c))
        if ids is None:
            ids = cache[id(c)] = _chain_ids(resources, c)
        return any(v.reference_of(e) in ids for e in element_values(resource, c.param))
    if c.param.type == "composite":
        table = PARAMS[resource["resourceType"]]
        return any(all(_matches(resources, resource, _criterion(resource["resourceType"], table, part, raw), cache)
                       for part, raw in zip(c.param.parts, alt, strict=True)) for alt in c.alternatives)
    found = element_values(resource, c.param)
    if c.modifier == "missing":
        return any((not found) == wanted for wanted in c.alternatives)
    if c.param.type == "token":
        if c.modifier == "text":
            return any(v.fold(t).startswith(v.fold(alt)) for e in found for t in v.token_text(e)
                       for alt in c.alternatives)
        hit = any(v.token_matches(e, alt) for e in found for alt in c.alternatives)
        return not hit if c.modifier == "not" else hit
    if c.param.type == "string":
        return any(v.string_matches(e, alt, c.modifier) for e in found for alt in c.alternatives)
    if c.param.type == "date":
        return any(v.date_matches(e, alt) for e in found for alt in c.alternatives)
    refs = {v.reference_of(e) for e in found}
    return any(refs & alt for alt in c.alternatives)


def _chain_ids(resources: Resources, c: Criterion) -> set[str]:
    assert c.chain is not None
    ids: set[str] = set()
    for target in c.chain_types:
        sub = Query(target, tuple(x for x in c.chain.criteria if x.param.name in PARAMS[target]))
        ids.update(f"{target}/{r['id']}" for r in run(resources, sub))
    return ids


def run(resources: Resources, query: Query) -> list[dict[str, Any]]:
    """Every resource of `query.kind` that meets every criterion, in a stable order."""
    cache: dict[int, set[str]] = {}
    return [r for r in _candidates(resources, query, cache)
            if all(_matches(resources, r, c, cache) for c in query.criteria)]


def _candidates(resources: Resources, query: Query, cache: dict[int, set[str]]) -> Iterable[dict[str, Any]]:
    if query.kind == "Patient":
        narrowed = _patients(resources, query)
        return resources.every("Patient", narrowed)
    if resources.names_patient(query.kind):
        for c in query.criteria:
            if c.param.targets == ("Patient",) and c.modifier in (None, "Patient"):
                keys = _referenced_patients(resources, c, cache)
                patients = [p for p in (resources.patient_record(k) for k in keys) if p is not None]
                return resources.every(query.kind, sorted(patients, key=lambda p: keys.index(p.key)))
    return resources.every(query.kind)


def _referenced_patients(resources: Resources, c: Criterion, cache: dict[int, set[str]]) -> list[str]:
    """The patient keys a patient-reference criterion can match (in the order the search names them)."""
    if c.chain is not None:
        ids = cache.get(id(c))
        if ids is None:
            ids = cache[id(c)] = _chain_ids(resources, c)
        refs: Iterable[str] = sorted(ids)
    else:
        refs = [r for alt in c.alternatives for r in sorted(alt)]
    return list(dict.fromkeys(r.partition("/")[2] for r in refs if r.startswith("Patient/")))


Row = tuple[Patient, str, str, str, str, str | None]  # Resources.demographics: folded names, DOB, gender


def _patients(resources: Resources, query: Query) -> Iterable[Patient] | None:
    """The patients worth rendering for a Patient search: by index when it can, else a raw check."""
    checks: list[Callable[[Row], bool]] = []
    days: set[str] | None = None  # the birth dates every match has one of, when a criterion says so
    for c in query.criteria:
        name, mod = c.param.name, c.modifier
        if name == "_id" and mod is None:
            keys = [alt.code for alt in c.alternatives if alt.code]
            return [p for p in (resources.patient_record(k) for k in dict.fromkeys(keys)) if p is not None]
        if name == "identifier" and mod is None:
            found = _by_identifier(resources, c)
            if found is not None:
                return found
        if name in ("family", "given") and mod in (None, "contains"):
            checks.append(_string_check((1,) if name == "family" else (2, 3), c))
        elif name == "birthdate" and mod is None:
            wanted = _days(c)
            if wanted is not None:
                days = wanted if days is None else days & wanted
            else:
                checks.insert(0, _birthdate_check(c))  # the most selective: first
        elif name == "gender" and mod is None:
            checks.append(_gender_check({alt.code for alt in c.alternatives}))
    if days is not None:  # by the birth-date index, in the table's order as a scan gives them
        by_day = resources.born_on()
        rows: Iterable[Row] = by_day.get(next(iter(days)), []) if len(days) == 1 else [
            row for row in resources.demographics() if row[4] in days]
    elif checks:
        rows = resources.demographics()
    else:
        return None
    return [row[0] for row in rows if all(check(row) for check in checks)]


def _by_identifier(resources: Resources, c: Criterion) -> list[Patient] | None:
    """Patients by the EHR's index; None when a value may be one the index does not hold (an SSN)."""
    from emulator.fhir.common import SSN_SYSTEM

    found: dict[str, Patient] = {}
    for alt in c.alternatives:
        if alt.code is None or alt.system == SSN_SYSTEM:
            return None
        hits = resources.state.patients.find([(alt.code, None)])
        if not hits and alt.system is None:
            return None  # it may be an SSN
        for p in hits:
            found.setdefault(p.key, p)
    return list(found.values())


def _string_check(columns: tuple[int, ...], c: Criterion) -> Callable[[Row], bool]:
    wanted = [v.fold(alt) for alt in c.alternatives]

    def names(row: Row) -> Iterator[str]:
        for i in columns:
            value = row[i]
            if isinstance(value, str):
                yield value

    if c.modifier == "contains":
        return lambda row: any(w in n for n in names(row) for w in wanted)
    return lambda row: any(n.startswith(w) for n in names(row) for w in wanted)


def _gender_check(wanted: set[str | None]) -> Callable[[Row], bool]:
    return lambda row: row[5] in wanted


def _days(c: Criterion) -> set[str] | None:
    """The days a birthdate criterion names when each alternative is one day (the usual search), else None."""
    days = {alt.text for alt in c.alternatives if alt.prefix == "eq" and len(alt.text) == 10}
    return days if len(days) == len(c.alternatives) else None


def _birthdate_check(c: Criterion) -> Callable[[Row], bool]:
    return lambda row: bool(row[4]) and any(v.date_matches(row[4], alt) for alt in c.alternatives)


# -- includes ----------------------------------------------------------------------------------
def include(resources: Resources, query: Query, page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources `_include` and `_revinclude` add to a page (each once, none of the page's own)."""
    from emulator.fhir.params import values as element_values

    if not query.includes and not query.revincludes:
        return []
    seen = {f"{r['resourceType']}/{r['id']}" for r in page}
    found: list[dict[str, Any]] = []
    for source, name, target in query.includes:
        param = PARAMS[source][name]
        for r in page:
            if r["resourceType"] != source:
                continue
            for ref in filter(None, (v.reference_of(e) for e in element_values(r, param))):
                kind, _, id_ = ref.partition("/")
                if ref in seen or kind not in TYPES or (target is not None and kind != target):
                    continue
                seen.add(ref)
                included = resources.read(kind, id_)
                if included is not None:
                    found.append(included)
    for source, name in query.revincludes:
        param = PARAMS[source][name]
        for r in page:
            refs = frozenset({f"{r['resourceType']}/{r['id']}"})
            sub = Query(source, (Criterion(param, None, (refs,)),))
            for other in run(resources, sub):
                key = f"{other['resourceType']}/{other['id']}"
                if key not in seen:
                    seen.add(key)
                    found.append(other)
    return found


def subset(resource: dict[str, Any], elements: tuple[str, ...]) -> dict[str, Any]:
    """`_elements`: the listed top-level elements (and the mandatory ones), marked SUBSETTED (HL7)."""
    if not elements:
        return resource
    wanted = {e.removesuffix("[x]") for e in elements}
    kept = {k: val for k, val in resource.items()
            if k in ("resourceType", "id") or k in wanted or any(k.startswith(w) and k[len(w):][:1].isupper()
                                                                  for w in wanted)}
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                                          "code": "SUBSETTED", "display": "Resource encoded in summary mode"}]
    return {"resourceType": kept.pop("resourceType"), "id": kept.pop("id"), "meta": meta, **kept}
