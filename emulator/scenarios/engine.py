"""The scenario engine: which scenarios are active, their state machines, and what a request's rule does.

Plain Python (no HTTP): `web/scenario_routes.py` asks `decide()` about each request on the Redox
routes while any scenario is active, then carries the decision out (`before()`, the delay, `answer()`);
`web/fhir_routes.py` does the same for the FHIR API, with `fhir_answer()` (OperationOutcomes).
When none is active, `active` is empty and the Redox routes never call in here.

Delivery (issue 5) picks scenarios up through one object, `ScenarioEngine.delivery`:

    class MyDelivery:                                    # implements DeliveryHooks
        def scenario_activated(self, active): ...        # schedule active.scenario.pushes whose
                                                         # when.at is set, relative to active.activated_at
                                                         # (emulator clock); honour active.scenario.outages
        def scenario_deactivated(self, active): ...      # drop what was scheduled for it
        def push_triggered(self, active, push, request): ...  # a rule's `then.push` fired (when.after_rule)
    sandbox.scenarios.delivery = MyDelivery()           # activations before this are replayed to it

`pushes()` and `outages()` list what the active scenarios hold, for a delivery layer that polls.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from emulator import catalog
from emulator.clock import ClockMode
from emulator.errors import LoadError, RedoxError
from emulator.routing import Outcome
from emulator.scenarios import library
from emulator.scenarios.checker import ScenarioError, load_file
from emulator.scenarios.matching import RuleIndex, Seen, explain, matches_statically, nth_check, rank, state_check
from emulator.scenarios.model import Actions, ErrorSpec, FhirOutcome, Outage, Push, Rule, Scenario
from emulator.settings import Destination, Source

if TYPE_CHECKING:
    from emulator.sandbox import Sandbox

log = logging.getLogger(__name__)
RECEIVER = "{receiver}"
# HL7 issue-type codes for a scripted FHIR error that names none (http://hl7.org/fhir/valueset-issue-type.html)
ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               409: "conflict", 410: "deleted", 412: "conflict", 413: "too-costly", 422: "processing",
               429: "throttled", 504: "timeout"}


@dataclass(frozen=True, slots=True)
class FhirAnswer:
    """A rule's answer to a FHIR request: `body` None (a 2xx) means the FHIR API's own answer, this status."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # the texts a scripted error puts in its log


def operation_outcome(outcome: FhirOutcome, status: int) -> dict[str, Any]:
    code = outcome.code or ISSUE_CODES.get(status, "exception" if status >= 500 else "invalid")
    issue: dict[str, Any] = {"severity": outcome.severity, "code": code, "details": {"text": outcome.text}}
    if outcome.diagnostics is not None:
        issue["diagnostics"] = outcome.diagnostics
    if outcome.expression:
        issue["expression"] = list(outcome.expression)
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class DeliveryHooks(Protocol):
    """What the delivery layer implements to run the active scenarios' pushes and outages."""

    def scenario_activated(self, active: ActiveScenario) -> None: ...

    def scenario_deactivated(self, active: ActiveScenario) -> None: ...

    def push_triggered(self, active: ActiveScenario, push: Push, request: Any) -> None: ...


@dataclass(slots=True)
class ActiveScenario:
    scenario: Scenario
    activated_at: float  # the emulator's clock when it was activated: pushes and outages count from here
    state: str
    file: Path | None = None  # where it was loaded from: reloaded when that file changes
    counts: dict[str, int] = field(default_factory=dict)  # rule -> requests it matched (for `nth`)
    failures: dict[str, int] = field(default_factory=dict)  # rule -> failures given (for `fail`)
    fired: dict[str, int] = field(default_factory=dict)  # rule -> times it answered

    def view(self) -> dict[str, Any]:
        s = self.scenario
        return {"name": s.name, "description": s.description, "source": s.source, "state": self.state,
                "states": list(s.states), "rules": [{"name": r.name, "fired": self.fired.get(r.name, 0)}
                                                    for r in s.rules],
                "pushes": [p.name for p in s.pushes], "outages": len(s.outages),
                "expectations": [e.name for e in s.expectations],
                "contractMode": s.setup.contract_mode}


@dataclass(slots=True)
class Decision:
    """What the rules say about one request: the rule that matched (None: route as usual) and a note
    for the journal naming it, or the rules that came closest and what failed on each."""

    rule: Rule | None
    active: ActiveScenario | None
    note: dict[str, Any]

    @property
    def actions(self) -> Actions:
        return self.rule.actions if self.rule is not None else _NO_ACTIONS

    @property
    def failing(self) -> bool:
        """The rule's `fail` still has failures to give (decided in `before()`)."""
        return bool(self.note.get("failing"))


_NO_ACTIONS = Actions()


class ScenarioEngine:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self.active: tuple[ActiveScenario, ...] = ()  # empty: no scenario, no cost on the Redox routes
        self._by_name: dict[str, ActiveScenario] = {}
        self._index = RuleIndex(())
        self._delivery: DeliveryHooks | None = None
        self._lock = threading.RLock()  # activation from the control plane, the watcher, tests
        self._watcher: library.Watcher | None = None
        self.contract_mode: str | None = None  # what the active scenarios ask for; None: the configured one

    # ---- activation -----------------------------------------------------------------------
    def start(self) -> None:
        """Activate the scenarios the settings name (on start-up and after every reset)."""
        for name in self._sandbox.base_settings.scenarios:
            self.activate_file(name)

    def load(self, name_or_file: str) -> tuple[Scenario, Path]:
        path = library.resolve(name_or_file, self._sandbox.base_settings.scenarios_dir)
        return load_file(path), path

    def activate_file(self, name_or_file: str) -> ActiveScenario:
        scenario, path = self.load(name_or_file)
        return self.activate(scenario, file=path)

    def activate(self, scenario: Scenario, *, file: Path | None = None) -> ActiveScenario:
        """Make `scenario` active (replacing one of the same name), its state machine at the start."""
        with self._lock:
            if scenario.name in self._by_name:
                self._drop(scenario.name)
            active = ActiveScenario(scenario, self._sandbox.clock.now(), scenario.initial_state, file)
            self._by_name[scenario.name] = active
            self._rebuild()
            for patient in scenario.setup.patients:  # findable the way a client-sent NewPatient is
                self._sandbox.store.put_ehr(self._sandbox.ehr.consume(
                    {"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"}, "Patient": dict(patient)}))
            if scenario.setup.clock_mode is not None:
                self._sandbox.clock.set_mode(scenario.setup.clock_mode, scenario.setup.clock_factor)
            if file is not None:
                self._watch()
            if self._delivery is not None:
                self._delivery.scenario_activated(active)
            log.info("scenario %s active (%d rules)", scenario.name, len(scenario.rules))
            return active

    def deactivate(self, name: str | None = None) -> list[str]:
        """Deactivate one scenario, or all of them; returns the names deactivated."""
        with self._lock:
            if name is None:
                names = list(self._by_name)
            elif name in self._by_name:
                names = [name]
            else:
                raise LoadError(f"no active scenario named {name!r}."
                                f"{catalog.did_you_mean(name, self._by_name)} Active: "
                                f"{', '.join(self._by_name) or 'none'}")
            for each in names:
                self._drop(each)
            self._rebuild()
            return names

    def _drop(self, name: str) -> None:
        active = self._by_name.pop(name)
        if active.scenario.setup.clock_mode is not None and not any(
                a.scenario.setup.clock_mode for a in self._by_name.values()):
            self._sandbox.clock.set_mode(ClockMode.REAL)  # goes on from where it is: no jump back
        if self._delivery is not None:
            self._delivery.scenario_deactivated(active)
        log.info("scenario %s no longer active", name)

    def reset(self) -> None:
        """After a sandbox reset: only the start-up scenarios, fresh."""
        with self._lock:
            for name in list(self._by_name):
                self._drop(name)
            self._rebuild()
        self.start()

    def _rebuild(self) -> None:
        """Index, settings, destinations and contract mode from the active scenarios, later ones winning."""
        actives = list(self._by_name.values())
        rules: list[Rule] = []
        for active in actives:
            rules.extend(dataclasses.replace(r, order=len(rules) + i) for i, r in enumerate(active.scenario.rules))
        self._index = RuleIndex(rules)
        changes: dict[str, Any] = {}
        destinations: dict[str, Destination] = {}
        contract_mode: str | None = None
        for active in actives:
            setup = active.scenario.setup
            for key in ("oauth_token_lifetime", "legacy_token_lifetime", "rate_limit", "rate_window",
                        "payload_limit", "sync_timeout"):
                if getattr(setup, key) is not None:
                    changes[key] = getattr(setup, key)
            for d in setup.destinations:
                destinations[d.id] = Destination(d.id, d.name, d.subscriptions, d.verification_token,
                                                 self._receiver(active, d.url), format=d.format,
                                                 notifications=d.notifications)
            contract_mode = setup.contract_mode or contract_mode
        self._sandbox.retune(**changes)
        self._sandbox.destinations.set_scripted(list(destinations.values()))
        apply_contract_mode(self._sandbox, contract_mode)
        self.active = tuple(actives)

    def _receiver(self, active: ActiveScenario, url: str | None) -> str | None:
        """A setup URL with `{receiver}` standing for the app's webhook (`--webhook-url`, or the harness's)."""
        if url is None or RECEIVER not in url:
            return url
        webhook = self._sandbox.base_settings.webhook_url
        if not webhook:
            log.warning("scenario %s: a destination's url is %s but no webhook URL is set (serve --webhook-url); "
                        "it gets no deliveries", active.scenario.name, RECEIVER)
            return None
        return url.replace(RECEIVER, webhook)

    # ---- delivery's view --------------------------------------------------------------------
    @property
    def delivery(self) -> DeliveryHooks | None:
        return self._delivery

    @delivery.setter
    def delivery(self, hooks: DeliveryHooks | None) -> None:
        with self._lock:
            self._delivery = hooks
            if hooks is not None:
                for active in self.active:
                    hooks.scenario_activated(active)

    def pushes(self) -> list[tuple[ActiveScenario, Push]]:
        return [(a, p) for a in self.active for p in a.scenario.pushes]

    def outages(self) -> list[tuple[ActiveScenario, Outage]]:
        return [(a, o) for a in self.active for o in a.scenario.outages]

    # ---- requests -----------------------------------------------------------------------------
    def decide(self, seen: Seen) -> Decision:
        """The first rule, in order, whose matchers all pass; counts `nth` occurrences on the way."""
        for rule in self._index.candidates(seen):
            if not matches_statically(rule.match, seen):
                continue
            active = self._by_name.get(rule.scenario)
            if active is None or not state_check(rule.match, active.state)[0]:
                continue
            occurrence = active.counts.get(rule.name, 0) + 1
            active.counts[rule.name] = occurrence
            if not nth_check(rule.match, occurrence)[0]:
                continue
            return Decision(rule, active, {"scenario": rule.scenario, "rule": rule.name, "state": active.state,
                                           "occurrence": occurrence})
        return Decision(None, None, {"scenarios": [a.scenario.name for a in self.active], "rule": None,
                                     "nearMisses": [m.view() for m in self.near_misses(seen)]})

    def near_misses(self, seen: Seen) -> list[Any]:
        misses = []
        for rule in self._index.near_miss_pool(seen):
            active = self._by_name.get(rule.scenario)
            if active is not None:
                misses.append(explain(rule, seen, active.state, active.counts.get(rule.name, 0) + 1))
        return rank(misses)

    def before(self, decision: Decision, bearer: str | None, payload: Any) -> None:
        """The side effects of a matched rule, before the request is answered: the token, the state, pushes."""
        rule, active = decision.rule, decision.active
        if rule is None or active is None:
            return
        actions = rule.actions
        active.fired[rule.name] = active.fired.get(rule.name, 0) + 1
        if actions.fail is not None:
            given = active.failures.get(rule.name, 0)
            if given < actions.fail.times:
                active.failures[rule.name] = given + 1
                decision.note["failing"] = f"{given + 1} of {actions.fail.times}"
        if bearer:
            if actions.expire_token:
                self._sandbox.tokens.expire(bearer)
            if actions.revoke_token:
                self._sandbox.tokens.revoke(bearer)
        if actions.goto is not None:
            decision.note["goto"] = actions.goto
            active.state = actions.goto
        for name in actions.push:
            push = next(p for p in active.scenario.pushes if p.name == name)
            if self._delivery is not None:
                self._delivery.push_triggered(active, push, payload)
            else:
                log.warning("scenario %s: rule %s triggers push %s, but delivery is not running",
                            active.scenario.name, rule.name, name)

    def answer(self, decision: Decision, payload: Any, source: Source, exchange_id: int) -> Outcome | None:
        """The rule's scripted answer, or None when the request goes on to the router as usual."""
        rule = decision.rule
        if rule is None:
            return None
        actions, router = rule.actions, self._sandbox.router
        scenario = f"scenario {rule.scenario}, rule {rule.name}"
        if decision.failing:
            assert actions.fail is not None
            error = actions.fail.error or ErrorSpec(f"Scripted failure ({scenario}): the destination is "
                                                    "temporarily unavailable")
            return self._failure(error, actions.fail.status, payload, source, exchange_id)
        if actions.reject_order is not None:
            return self._failure(actions.reject_order, actions.reject_status, payload, source, exchange_id)
        if actions.rate_limit:
            limiter = self._sandbox.rate_limiter
            retry = actions.retry_after if actions.retry_after is not None else int(limiter.window)
            return self._failure(ErrorSpec(f"Rate limit exceeded: more than {limiter.limit} requests in "
                                           f"{limiter.window:g} seconds from this address", "transmission",
                                           "RateLimit"), 429, payload, source, exchange_id,
                                 {"X-RateLimit-Limit": str(limiter.limit), "Retry-After": str(retry)})
        if actions.patient_matches:
            answer = {"Patient": {}, "PotentialMatches": [dict(p) for p in actions.patient_matches]}
            return router.handle(payload, source, exchange_id, answer=answer)
        respond = actions.respond
        if respond is None:
            return None
        headers = dict(respond.headers)
        if respond.status < 400:  # the router's work (logs, the EHR), answered with this status and body
            routed = router.handle(payload, source, exchange_id)
            body = routed.body if respond.body is None else _jsonable(respond.body)
            return Outcome(respond.status, body, routed.logs, {**routed.headers, **headers})
        error = respond.error or ErrorSpec(f"Scripted answer ({scenario})")
        failed = self._failure(error, respond.status, payload, source, exchange_id, headers)
        if respond.body is not None:
            return Outcome(respond.status, _jsonable(respond.body), failed.logs, headers)
        return failed

    def fhir_answer(self, decision: Decision) -> FhirAnswer | None:
        """A FHIR request's scripted answer (OperationOutcomes for errors); None: the FHIR API answers."""
        rule = decision.rule
        if rule is None:
            return None
        actions = rule.actions
        scenario = f"scenario {rule.scenario}, rule {rule.name}"
        if decision.failing:
            assert actions.fail is not None
            text = actions.fail.error.text if actions.fail.error else \
                f"Scripted failure ({scenario}): the EHR is temporarily unavailable"
            return _outcome_answer(FhirOutcome(text, "error", "transient"), actions.fail.status)
        if actions.rate_limit:
            limiter = self._sandbox.rate_limiter
            retry = actions.retry_after if actions.retry_after is not None else int(limiter.window)
            return _outcome_answer(FhirOutcome(f"Rate limit exceeded: more than {limiter.limit} requests in "
                                               f"{limiter.window:g} seconds from this address", "error",
                                               "throttled"), 429,
                                   {"X-RateLimit-Limit": str(limiter.limit), "Retry-After": str(retry)})
        respond = actions.respond
        if respond is None:
            return None
        if respond.body is not None:
            body = _jsonable(respond.body)
            texts = tuple(i.get("details", {}).get("text", "") for i in body.get("issue", []) if isinstance(i, dict)) \
                if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else ()
            return FhirAnswer(respond.status, body, dict(respond.headers), texts)
        if respond.status < 400:
            return FhirAnswer(respond.status, None, dict(respond.headers))
        outcome = respond.outcome or FhirOutcome(f"Scripted answer ({scenario})")
        return _outcome_answer(outcome, respond.status, respond.headers)

    def _failure(self, error: ErrorSpec, status: int, payload: Any, source: Source, exchange_id: int,
                 headers: Mapping[str, str] | None = None) -> Outcome:
        """Redox's error answer, logged FAILED against the destinations the request names."""
        router = self._sandbox.router
        meta = payload.get("Meta") if isinstance(payload, dict) else None
        meta = dict(meta) if isinstance(meta, dict) else {}
        problem = RedoxError(error.text, type=error.type, module=error.module, status=status, meta=meta,
                             headers=dict(headers or {}))
        try:
            routed = router.check(payload, meta)
        except RedoxError:
            routed = None  # a request that is wrong anyway: logged as Redox logs any failed request
        return router.failure(problem, meta, source, exchange_id, routed)

    def timeout(self, payload: Any, source: Source, exchange_id: int, waited: float) -> Outcome:
        """Redox's answer to a query the destination did not answer within the sync timeout."""
        return self._failure(ErrorSpec(f"Request timed out: the destination did not respond within "
                                       f"{waited:g} seconds", "transmission", "Send"), 504, payload, source,
                             exchange_id)

    # ---- files ------------------------------------------------------------------------------------
    def _watch(self) -> None:
        if self._watcher is None:
            self._watcher = library.Watcher(self._sandbox.base_settings.scenarios_dir, self.reload)
            self._watcher.start()

    def reload(self, path: Path) -> None:
        """A scenario file changed: an active scenario loaded from it is loaded again (state back to start).
        A file that no longer checks is reported and the running version kept."""
        with self._lock:
            for active in list(self._by_name.values()):
                if active.file is None or active.file.resolve() != path.resolve():
                    continue
                try:
                    scenario = load_file(active.file)
                except ScenarioError as error:
                    log.error("scenario file changed but has problems; still running the previous version:\n%s",
                              error)
                    continue
                self.activate(scenario, file=active.file)
                log.info("scenario %s reloaded from %s", scenario.name, path)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None


def apply_contract_mode(sandbox: Sandbox, mode: str | None) -> None:
    """Where activation applies a scenario's `setup.contract_mode` ("redox" | "strict" | "off"); None when no
    active scenario sets one, meaning: back to the configured mode."""
    sandbox.scenarios.contract_mode = mode
    sandbox.contracts.mode = mode or sandbox.base_settings.contract_mode


def _outcome_answer(outcome: FhirOutcome, status: int, headers: Mapping[str, str] | None = None) -> FhirAnswer:
    return FhirAnswer(status, operation_outcome(outcome, status), dict(headers or {}), (outcome.text,))


def is_sync(seen: Seen) -> bool:
    return seen.data_model is not None and seen.event_type is not None and \
        catalog.is_query(seen.data_model, seen.event_type)


def _jsonable(body: Any) -> Any:
    """YAML gives dates and times as objects; a scripted body goes out as JSON text for those."""
    if isinstance(body, dict):
        return {str(k): _jsonable(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_jsonable(v) for v in body]
    if isinstance(body, str | int | float | bool) or body is None:
        return body
    return str(body)
