"""Parsed scenarios: frozen objects built from a file the checker has passed (see `checker.py`).

Names follow the file format (scenarios/README.md); the JSON Schema in `schema.json` is the
authority on which keys exist. `build()` assumes a checked document and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.scenarios.jsonpath import Step, compile_path

START = "start"  # the state of a scenario that declares none
EXPECTATION_KINDS = ("requests", "receiver", "probe", "after", "order", "paging")  # the harness evaluates them


@dataclass(frozen=True, slots=True)
class ValueMatcher:
    """One expected value: equal to `equals`, a regex `matches`, or `exists` (true/false)."""

    kind: str  # "equals" | "matches" | "exists"
    expected: Any
    pattern: re.Pattern[str] | None = None

    def ok(self, found: list[Any]) -> bool:
        """`test()` without the reason: what matching runs on every request."""
        if self.kind == "exists":
            return bool(found) is bool(self.expected)
        if self.kind == "matches":
            assert self.pattern is not None
            return any(isinstance(v, str | int | float) and self.pattern.search(str(v)) for v in found)
        return any(_same(v, self.expected) for v in found)

    def test(self, found: list[Any]) -> tuple[bool, str]:
        if self.kind == "exists":
            return (bool(found) == self.expected,
                    "" if bool(found) == self.expected else ("absent" if self.expected else f"present: {found[0]!r}"))
        if not found:
            return False, "absent"
        if self.kind == "matches":
            assert self.pattern is not None
            ok = any(isinstance(v, str | int | float) and self.pattern.search(str(v)) for v in found)
            return ok, "" if ok else f"found {found[0]!r}, which does not match /{self.expected}/"
        ok = any(_same(v, self.expected) for v in found)
        return ok, "" if ok else f"found {found[0]!r}, expected {self.expected!r}"

    def describe(self) -> str:
        if self.kind == "exists":
            return "present" if self.expected else "absent"
        return f"/{self.expected}/" if self.kind == "matches" else repr(self.expected)


@dataclass(frozen=True, slots=True)
class Match:
    method: str | None = None
    path: str | None = None
    data_model: str | None = None
    event_type: str | None = None
    resource: str | None = None  # FHIR: the resource type of a /fhir/R4/ request
    interaction: str | None = None  # FHIR: read, search, capabilities, create, write or an operation ($match...)
    params: tuple[tuple[str, ValueMatcher], ...] = ()  # FHIR search parameters
    json: tuple[tuple[str, tuple[Step, ...], ValueMatcher], ...] = ()
    headers: tuple[tuple[str, ValueMatcher], ...] = ()  # lower-case names
    nth: int | None = None
    nth_and_later: bool = False
    states: frozenset[str] | None = None
    malformed_json: bool | None = None


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    text: str
    type: str = "transmission"
    module: str = "Send"


@dataclass(frozen=True, slots=True)
class FhirOutcome:
    """A FHIR OperationOutcome's one issue, as a rule scripts it."""

    text: str
    severity: str = "error"
    code: str | None = None  # None: the HL7 issue type the status implies (see engine.fhir_answer)
    diagnostics: str | None = None
    expression: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Respond:
    status: int
    body: Any = None  # None: a Redox error body built from `error` (or a default text); FHIR: from `outcome`
    error: ErrorSpec | None = None
    outcome: FhirOutcome | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fail:
    times: int
    status: int = 503
    error: ErrorSpec | None = None


@dataclass(frozen=True, slots=True)
class Actions:
    respond: Respond | None = None
    delay: float = 0.0
    drop_connection: bool = False
    expire_token: bool = False
    revoke_token: bool = False
    patient_matches: tuple[Mapping[str, Any], ...] = ()
    reject_order: ErrorSpec | None = None
    reject_status: int = 400
    rate_limit: bool = False
    retry_after: int | None = None
    fail: Fail | None = None
    goto: str | None = None
    push: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    match: Match
    actions: Actions
    order: int  # position among all active rules: the first rule that matches wins
    scenario: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class PushWhen:
    at: float | None = None  # seconds after activation on the emulator's clock
    after_rule: str | None = None  # or: when this rule fires (its `push` action names this push)
    delay: float = 0.0  # after the rule fired


@dataclass(frozen=True, slots=True)
class Push:
    """An event the EHR sends to the client's destination (delivery: issue 5)."""

    name: str
    body: Mapping[str, Any]
    when: PushWhen = PushWhen(at=0.0)
    destination: str | None = None  # ID or name of a setup destination; None: the first with a webhook
    repeat_count: int = 1
    repeat_every: float = 0.0
    redeliver_times: int = 0  # the same message (same Meta.Logs ID) again after it was acknowledged
    redeliver_after: float = 0.0
    event_time: float | None = None  # Meta.EventDateTime as seconds after activation
    verification_token: str | None = None  # sent instead of the destination's (a wrong token)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Outage:
    """A window in which the client's destination is unreachable, seconds after activation."""

    start: float
    end: float
    destination: str | None = None
    failure: str | int = "refused"  # "refused" | "timeout" | an HTTP status


@dataclass(frozen=True, slots=True)
class SetupDestination:
    id: str
    name: str
    url: str | None = None
    verification_token: str = "sandbox-verification-token"
    subscriptions: str | Mapping[str, Any] = "all"
    format: str = "json"  # "fhir": the webhook gets FHIR notification Bundles
    notifications: str = "detailed"


@dataclass(frozen=True, slots=True)
class Setup:
    clock_mode: str | None = None
    clock_factor: float | None = None
    oauth_token_lifetime: float | None = None
    legacy_token_lifetime: float | None = None
    contract_mode: str | None = None  # "redox" | "strict" | "off"; applied by engine.apply_contract_mode
    rate_limit: int | None = None
    rate_window: float | None = None
    payload_limit: int | None = None
    sync_timeout: float | None = None
    patients: tuple[Mapping[str, Any], ...] = ()
    destinations: tuple[SetupDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a correct client does; only the syntax lives here, the harness evaluates it."""

    name: str
    kind: str  # one of EXPECTATION_KINDS
    spec: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    states: tuple[str, ...]
    setup: Setup
    rules: tuple[Rule, ...]
    pushes: tuple[Push, ...]
    outages: tuple[Outage, ...]
    expectations: tuple[Expectation, ...]
    source: str  # the file it came from, or "<body>"
    client_destination: str | None = None  # the harness's REDOX_DESTINATION_ID: a setup destination's ID or name
    client_api: str = "data-model"  # the harness's REDOX_API: "data-model" or "fhir"

    @property
    def initial_state(self) -> str:
        return self.states[0]


def _same(found: Any, expected: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(found, bool) or isinstance(expected, bool):
        return found is expected
    return bool(found == expected)


def value_matcher(raw: Any, *, text: bool = False) -> ValueMatcher:
    """`text`: header values are strings, so `X-Count: 3` in YAML means the text "3"."""
    if isinstance(raw, dict):
        ((kind, expected),) = raw.items()
        if kind == "equals" and text:
            expected = str(expected)
        return ValueMatcher(kind, expected, re.compile(expected) if kind == "matches" else None)
    return ValueMatcher("equals", str(raw) if text and raw is not None else raw)


def build_match(raw: Mapping[str, Any]) -> Match:
    nth = raw.get("nth")
    later = isinstance(nth, str)
    states = raw.get("state")
    return Match(
        method=raw.get("method"), path=raw.get("path"),
        data_model=raw.get("data_model"), event_type=raw.get("event_type"),
        resource=raw.get("resource"), interaction=raw.get("interaction"),
        params=tuple((name, value_matcher(v, text=True)) for name, v in (raw.get("params") or {}).items()),
        json=tuple((text, compile_path(text), value_matcher(v)) for text, v in (raw.get("json") or {}).items()),
        headers=tuple((name.lower(), value_matcher(v, text=True)) for name, v in (raw.get("headers") or {}).items()),
        nth=int(str(nth).rstrip("+")) if later else nth, nth_and_later=later,
        states=None if states is None else frozenset([states] if isinstance(states, str) else states),
        malformed_json=raw.get("malformed_json"),
    )


def _error(raw: Mapping[str, Any] | None) -> ErrorSpec | None:
    if raw is None:
        return None
    return ErrorSpec(raw["text"], raw.get("type", "transmission"), raw.get("module", "Send"))


def _outcome(raw: Mapping[str, Any] | None) -> FhirOutcome | None:
    if raw is None:
        return None
    return FhirOutcome(raw["text"], raw.get("severity", "error"), raw.get("code"), raw.get("diagnostics"),
                   tuple(raw.get("expression") or ()))


def _actions(raw: Mapping[str, Any]) -> Actions:
    respond = raw.get("respond")
    fail = raw.get("fail")
    reject = raw.get("reject_order")
    limit = raw.get("rate_limit")
    return Actions(
        respond=None if respond is None else Respond(respond["status"], respond.get("body"),
                                                     _error(respond.get("error")), _outcome(respond.get("outcome")),
                                                     respond.get("headers") or {}),
        delay=float(raw.get("delay", 0)),
        drop_connection=bool(raw.get("drop_connection")),
        expire_token=bool(raw.get("expire_token")),
        revoke_token=bool(raw.get("revoke_token")),
        patient_matches=tuple(raw.get("patient_matches") or ()),
        reject_order=None if reject is None else ErrorSpec(reject["text"], "transmission", "Send"),
        reject_status=400 if reject is None else reject.get("status", 400),
        rate_limit=limit is not None,
        retry_after=None if limit is None else limit.get("retry_after"),
        fail=None if fail is None else Fail(fail["times"], fail.get("status", 503), _error(fail.get("error"))),
        goto=raw.get("goto"),
        push=tuple(raw.get("push") or ()),
    )


def _push(raw: Mapping[str, Any]) -> Push:
    when = raw.get("when") or {}
    repeat = raw.get("repeat") or {}
    redeliver = raw.get("redeliver") or {}
    return Push(
        name=raw["name"], body=raw["body"],
        when=PushWhen(at=when.get("at", None if "after_rule" in when else 0.0), after_rule=when.get("after_rule"),
                      delay=float(when.get("delay", 0))),
        destination=raw.get("destination"),
        repeat_count=repeat.get("count", 1), repeat_every=float(repeat.get("every", 0)),
        redeliver_times=redeliver.get("times", 0), redeliver_after=float(redeliver.get("after", 0)),
        event_time=raw.get("event_time"), verification_token=raw.get("verification_token"),
        description=raw.get("description", ""),
    )


def _setup(raw: Mapping[str, Any]) -> Setup:
    clock = raw.get("clock") or {}
    lifetimes = raw.get("token_lifetimes") or {}
    limit = raw.get("rate_limit") or {}
    return Setup(
        clock_mode=clock.get("mode"), clock_factor=clock.get("factor"),
        oauth_token_lifetime=lifetimes.get("oauth"), legacy_token_lifetime=lifetimes.get("legacy"),
        contract_mode=raw.get("contract_mode"),
        rate_limit=limit.get("limit"), rate_window=limit.get("window"),
        payload_limit=raw.get("payload_limit"), sync_timeout=raw.get("sync_timeout"),
        patients=tuple(raw.get("patients") or ()),
        destinations=tuple(SetupDestination(d["id"], d["name"], d.get("url"),
                                            d.get("verification_token", "sandbox-verification-token"),
                                            d.get("subscriptions", "all"), d.get("format", "json"),
                                            d.get("notifications", "detailed"))
                           for d in raw.get("destinations") or ()),
    )


def build(raw: Mapping[str, Any], name: str, source: str) -> Scenario:
    name = raw.get("name", name)
    return Scenario(
        name=name,
        description=raw["description"],
        states=tuple(raw.get("states") or (START,)),
        setup=_setup(raw.get("setup") or {}),
        rules=tuple(Rule(r["name"], build_match(r.get("when") or {}), _actions(r["then"]), i, name,
                         r.get("description", ""))
                    for i, r in enumerate(raw.get("rules") or ())),
        pushes=tuple(_push(p) for p in raw.get("pushes") or ()),
        outages=tuple(Outage(o["from"], o["until"], o.get("destination"), o.get("failure", "refused"))
                      for o in raw.get("outages") or ()),
        expectations=tuple(Expectation(e["name"], next(k for k in EXPECTATION_KINDS if k in e),
                                       {k: v for k, v in e.items() if k in EXPECTATION_KINDS},
                                       e.get("description", ""))
                           for e in raw.get("expectations") or ()),
        source=source,
        client_destination=(raw.get("client") or {}).get("destination"),
        client_api=(raw.get("client") or {}).get("api", "data-model"),
    )
