"""Which rule answers a request: matchers that say why they failed, and an index so that matching
costs a few dictionary look-ups however many rules are loaded.

A FHIR request is seen as its log is written: DataModel `FHIR.{Resource}`, EventType the interaction
(read, search, $match, $observation-create...), so `resource` and `interaction` index as those do.

Rules are indexed by (path, DataModel, EventType), each of which a rule may leave open; a request
looks in the eight buckets its own values and the open slots make, then tries the candidates in
rule order. Every matcher returns `(matched, reason)`; when no rule matches, `near_misses()` ranks
the rules that came closest with the matcher that failed on each (WireMock's near misses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emulator import catalog
from emulator.scenarios import jsonpath
from emulator.scenarios.jsonpath import Step
from emulator.scenarios.model import Match, Rule

NEAR_MISSES = 3  # rules listed when none matched
NEAR_MISS_BUDGET = 24  # rules examined for near misses at most: an unmatched request stays cheap too


@dataclass(slots=True)
class Seen:
    """What the rules may look at in a request."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    payload: Any = None  # the parsed body; None when there is none or it is not JSON
    malformed: bool = False  # a body that is not valid JSON
    data_model: str | None = None  # canonical, from Meta; FHIR: FHIR.{Resource}
    event_type: str | None = None  # FHIR: the interaction
    resource: str | None = None  # FHIR requests only
    params: Mapping[str, list[str]] | None = None  # FHIR search parameters (query string, form body)

    @classmethod
    def fhir(cls, method: str, path: str, headers: Mapping[str, str], payload: Any, resource: str,
             interaction: str, params: Mapping[str, list[str]]) -> Seen:
        return cls(method, path, headers, payload, False, f"FHIR.{resource}", interaction, resource, params)

    @classmethod
    def of(cls, method: str, path: str, headers: Mapping[str, str], payload: Any, malformed: bool) -> Seen:
        meta = payload.get("Meta") if isinstance(payload, dict) else None
        model = meta.get("DataModel") if isinstance(meta, dict) else None
        event = meta.get("EventType") if isinstance(meta, dict) else None
        if isinstance(model, str) and isinstance(event, str):
            model, event = catalog.canonical(model, event)
        return cls(method, path, headers, payload, malformed,
                   model if isinstance(model, str) else None, event if isinstance(event, str) else None)


def static_checks(match: Match, seen: Seen) -> Iterable[tuple[bool, str]]:
    """The stateless matchers, cheapest first, each as (matched, reason when not)."""
    if match.method is not None:
        yield match.method == seen.method, f"method: expected {match.method}, found {seen.method}"
    if match.path is not None:
        yield match.path == seen.path, f"path: expected {match.path}, found {seen.path}"
    if match.data_model is not None:
        model = catalog.MODEL_ALIASES.get(match.data_model, match.data_model)
        yield model == seen.data_model, f"DataModel: expected {match.data_model}, found {seen.data_model}"
    if match.event_type is not None:
        yield match.event_type == seen.event_type, f"EventType: expected {match.event_type}, found {seen.event_type}"
    if match.resource is not None:
        yield (match.resource == seen.resource,
               f"resource: expected {match.resource}, found {seen.resource or 'no FHIR request'}")
    if match.interaction is not None:
        found = seen.event_type if seen.resource is not None else "no FHIR request"
        yield match.interaction == found, f"interaction: expected {match.interaction}, found {found}"
    for name, matcher in match.params:
        ok, why = matcher.test((seen.params or {}).get(name, []))
        yield ok, f"search parameter {name}: {why}"
    if match.malformed_json is not None:
        yield (match.malformed_json == seen.malformed,
               "body: expected malformed JSON, found valid JSON" if match.malformed_json
               else "body: expected valid JSON, found malformed JSON")
    for text, steps, matcher in match.json:
        ok, why = matcher.test(jsonpath.values(seen.payload, steps))
        yield ok, f"{text}: {why}"
    for name, matcher in match.headers:
        value = seen.headers.get(name)
        ok, why = matcher.test([] if value is None else [value])
        yield ok, f"header {name}: {why}"


def matches_statically(match: Match, seen: Seen) -> bool:
    """`static_checks` without the reasons: what every candidate costs on every request."""
    if match.method is not None and match.method != seen.method:
        return False
    if match.path is not None and match.path != seen.path:
        return False
    if match.data_model is not None and catalog.MODEL_ALIASES.get(match.data_model, match.data_model) != \
            seen.data_model:
        return False
    if match.event_type is not None and match.event_type != seen.event_type:
        return False
    if match.resource is not None and match.resource != seen.resource:
        return False
    if match.interaction is not None and (seen.resource is None or match.interaction != seen.event_type):
        return False
    for name, matcher in match.params:
        if not matcher.ok((seen.params or {}).get(name, [])):
            return False
    if match.malformed_json is not None and match.malformed_json != seen.malformed:
        return False
    for _, steps, matcher in match.json:
        if not matcher.ok(jsonpath.values(seen.payload, steps)):
            return False
    for name, matcher in match.headers:
        value = seen.headers.get(name)
        if not matcher.ok([] if value is None else [value]):
            return False
    return True


def state_check(match: Match, state: str) -> tuple[bool, str]:
    if match.states is None or state in match.states:
        return True, ""
    return False, f"state: expected {' or '.join(sorted(match.states))}, scenario is in {state}"


def nth_check(match: Match, occurrence: int) -> tuple[bool, str]:
    """`occurrence`: which matching request this is (1-based), counting this one."""
    if match.nth is None:
        return True, ""
    if match.nth_and_later:
        return occurrence >= match.nth, f"nth: from the {_ordinal(match.nth)} on, this is the {_ordinal(occurrence)}"
    return occurrence == match.nth, f"nth: only the {_ordinal(match.nth)}, this is the {_ordinal(occurrence)}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class _Bucket:
    """The rules that share (path, DataModel, EventType). Rules with an equality matcher on a JSON path
    are filed again by the expected value, so a thousand rules told apart by, say, $.Patient.Identifiers
    cost one path evaluation and one look-up, not a thousand checks."""

    __slots__ = ("keyed", "loose")

    def __init__(self) -> None:
        self.keyed: dict[tuple[Step, ...], dict[Any, list[Rule]]] = {}
        self.loose: list[Rule] = []

    def add(self, rule: Rule) -> None:
        for _, steps, matcher in rule.match.json:
            if matcher.kind == "equals" and None not in steps and _hashable(matcher.expected):
                self.keyed.setdefault(steps, {}).setdefault(_key(matcher.expected), []).append(rule)
                return
        self.loose.append(rule)

    def candidates(self, payload: Any, into: list[Rule]) -> int:
        """Appends the rules that may match; returns how many groups contributed (for the sort)."""
        groups = 0
        if self.loose:
            into.extend(self.loose)
            groups += 1
        for steps, by_value in self.keyed.items():
            for value in jsonpath.values(payload, steps):
                if _hashable(value):
                    rules = by_value.get(_key(value))
                    if rules:
                        into.extend(rules)
                        groups += 1
        return groups

    def all(self) -> list[Rule]:
        return [*self.loose, *(r for by_value in self.keyed.values() for rules in by_value.values() for r in rules)]


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _key(value: Any) -> tuple[str, Any]:
    """1 and 1.0 alike, true and 1 apart: as `ValueMatcher` compares."""
    return ("bool", value) if isinstance(value, bool) else ("value", value)


class RuleIndex:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = sorted(rules, key=lambda r: r.order)
        self._buckets: dict[tuple[str | None, str | None, str | None], _Bucket] = {}
        self._by_model: dict[str | None, list[Rule]] = {}
        for rule in self.rules:
            m = rule.match
            model = catalog.MODEL_ALIASES.get(m.data_model, m.data_model) if m.data_model else None
            if m.resource is not None and model is None:
                model = f"FHIR.{m.resource}"
            event = m.event_type or m.interaction
            self._buckets.setdefault((m.path, model, event), _Bucket()).add(rule)
            self._by_model.setdefault(model, []).append(rule)

    def __len__(self) -> int:
        return len(self.rules)

    def candidates(self, seen: Seen) -> list[Rule]:
        """The rules whose path, DataModel and EventType agree with the request, in rule order."""
        found: list[Rule] = []
        hits = 0
        buckets = self._buckets
        for path in (seen.path, None):
            for model in (seen.data_model, None) if seen.data_model is not None else (None,):
                for event in (seen.event_type, None) if seen.event_type is not None else (None,):
                    bucket = buckets.get((path, model, event))
                    if bucket is not None:
                        hits += bucket.candidates(seen.payload, found)
        if hits > 1:
            found.sort(key=lambda r: r.order)
        return found

    def near_miss_pool(self, seen: Seen) -> list[Rule]:
        """Rules worth explaining when none matched: those indexed alike, then those on the same DataModel,
        then the rest, at most NEAR_MISS_BUDGET of them."""
        pool: dict[int, Rule] = {}
        for group in (self.candidates(seen), self._by_model.get(seen.data_model, ()), self.rules):
            for rule in group:
                if len(pool) >= NEAR_MISS_BUDGET:
                    return list(pool.values())
                pool.setdefault(id(rule), rule)
        return list(pool.values())


@dataclass(frozen=True, slots=True)
class NearMiss:
    rule: Rule
    passed: int
    total: int
    failed: tuple[str, ...]  # the reason of every matcher that failed

    def view(self) -> dict[str, Any]:
        return {"scenario": self.rule.scenario, "rule": self.rule.name,
                "matchers": f"{self.passed} of {self.total} matched", "failed": list(self.failed)}


def explain(rule: Rule, seen: Seen, state: str, occurrence: int) -> NearMiss:
    """Every matcher of `rule` against the request; `occurrence` is what the n-th count would be."""
    results = [*static_checks(rule.match, seen)]
    if rule.match.states is not None:
        results.append(state_check(rule.match, state))
    if rule.match.nth is not None:
        results.append(nth_check(rule.match, occurrence))
    failed = tuple(why for ok, why in results if not ok)
    return NearMiss(rule, len(results) - len(failed), len(results), failed)


def rank(misses: Iterable[NearMiss]) -> list[NearMiss]:
    """Closest first: most matchers passed, then fewest failed, then rule order."""
    ordered = sorted(misses, key=lambda m: (-m.passed, len(m.failed), m.rule.order))
    return ordered[:NEAR_MISSES]
