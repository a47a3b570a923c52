"""`redox-emulator test --explain`: what each contract asks of a client, read from the scenario itself.

Everything here is derived from the parsed scenario (setup, rules, pushes, expectations), never
written by hand, so it cannot drift from what the harness checks: the probe keys listed are exactly
the JSON paths of the scenario's `probe` expectations, and the example output is built from them.
docs/clients.md tells the same in prose.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator import resources
from emulator.harness import probe
from emulator.scenarios import jsonpath
from emulator.scenarios.model import Actions, Match, Push, Scenario, ValueMatcher, build_match, value_matcher


@dataclass(frozen=True, slots=True)
class ProbeKey:
    expectation: str
    path: str  # as the scenario writes it: $.results.ORD-1001.count
    matcher: ValueMatcher

    @property
    def steps(self) -> tuple[jsonpath.Step, ...]:
        return jsonpath.compile_path(self.path)

    @property
    def example(self) -> Any:
        """A value that keeps the expectation (None when the key must be absent)."""
        if self.matcher.kind == "equals":
            return self.matcher.expected
        if self.matcher.kind == "matches":
            return f"<text matching /{self.matcher.expected}/>"
        return "<any value>" if self.matcher.expected else None


def probe_keys(scenario: Scenario) -> list[ProbeKey]:
    """Every JSON path a `probe` expectation of the scenario reads, in the order written."""
    return [ProbeKey(e.name, path, value_matcher(raw))
            for e in scenario.expectations if e.kind == "probe" for path, raw in e.spec["probe"].items()]


def example_output(keys: Iterable[ProbeKey]) -> dict[str, Any]:
    """The smallest probe output that keeps every key: {"results": {"ORD-1001": {"count": 1}}}."""
    document: dict[str, Any] = {}
    for key in keys:
        if key.matcher.kind == "exists" and not key.matcher.expected:
            continue  # a key that must be absent is shown by leaving it out
        _place(document, key.steps, key.example)
    return document


def _place(container: Any, steps: Sequence[jsonpath.Step], value: Any) -> None:
    step, rest = steps[0], steps[1:]
    if step is None:
        step = 0
    if isinstance(step, int):
        while len(container) <= step:
            container.append({} if rest and not isinstance(rest[0], int) and rest[0] is not None else [])
        if not rest:
            container[step] = value
        else:
            _place(container[step], rest, value)
        return
    if not rest:
        container[step] = value
        return
    nxt = container.setdefault(step, [] if isinstance(rest[0], int) or rest[0] is None else {})
    _place(nxt, rest, value)


# ---- words ---------------------------------------------------------------------------------------
def describe_match(match: Match) -> str:
    """A rule's or expectation's match in a line: `/endpoint Order.New with $.Order.Procedure.Code = "85025"`."""
    parts = [match.method] if match.method else []
    if match.resource or match.interaction:
        parts.append(f"FHIR {match.resource or 'any resource'} {match.interaction or 'request'}")
        if match.path:
            parts.append(match.path)
        details = _details(match)
        return " ".join(parts) + (f" with {details}" if details else "")
    parts.append(match.path or ("/endpoint" if match.data_model or match.json else "any request"))
    if match.data_model or match.event_type:
        parts.append(f"{match.data_model or '*'}.{match.event_type or '*'}")
    details = _details(match)
    return " ".join(parts) + (f" with {details}" if details else "")


def _details(match: Match) -> str:
    details = [f"search parameter {name} {_value(m)}" for name, m in match.params]
    details += [f"{text} {_value(m)}" for text, _, m in match.json]
    details += [f"header {name} {_value(m)}" for name, m in match.headers]
    if match.malformed_json:
        details.append("a body that is not valid JSON")
    if match.nth is not None:
        details.append(f"from the {_ordinal(match.nth)} matching request on" if match.nth_and_later
                       else f"the {_ordinal(match.nth)} matching request only")
    if match.states:
        details.append(f"in state {' or '.join(sorted(match.states))}")
    return ", ".join(details)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _value(matcher: ValueMatcher) -> str:
    return f"= {json.dumps(matcher.expected)}" if matcher.kind == "equals" else matcher.describe()


def _count(spec: Any, what: str) -> str:
    if spec is None:
        return what
    if isinstance(spec, int):
        return f"no {what}" if spec == 0 else f"exactly {spec} {what}"
    low, high = spec.get("min"), spec.get("max")
    if low is not None and high is not None:
        return f"{low} to {high} {what}"
    return f"at least {low} {what}" if low is not None else f"at most {high} {what}"


def _times(spec: Any) -> str:
    if isinstance(spec, int):
        return "never" if spec == 0 else "exactly once" if spec == 1 else f"exactly {spec} times"
    low, high = spec.get("min"), spec.get("max")
    return f"at most {_n(high, 'time')}" if low is None else f"at least {_n(low, 'time')}" + \
        (f" and at most {high}" if high is not None else "")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _push_kind(push: Push) -> str:
    meta = push.body.get("Meta") or {}
    return f"{meta.get('DataModel')}.{meta.get('EventType')}"


def must_do(scenario: Scenario) -> list[str]:
    """One line per expectation: what keeps it."""
    pushes = {p.name: p for p in scenario.pushes}
    lines = []
    for e in scenario.expectations:
        spec = e.spec[e.kind]
        if e.kind == "requests":
            what = describe_match(build_match(spec["match"]))
            text = f"every request matching {what}" if "count" not in spec else \
                "send " + _count(spec["count"], f"request(s) matching {what}")
            if spec.get("valid"):
                text += ", each valid against its data model's contract"
            if "every" in spec:
                text += f"{' has' if 'count' not in spec else ', each with'} {_details(build_match(spec['every']))}"
        elif e.kind == "order":
            text = "send " + ", then ".join(f"a request matching {describe_match(build_match(s))}" for s in spec) + \
                   " (the first of each, in this order)"
        elif e.kind == "after":
            status = spec["status"]
            text = f"send a request matching {describe_match(build_match(spec['match']))} that is answered {status}"
            if spec.get("reauthenticates"):
                text += "; get a new token (any flow) before sending it again"
            if spec.get("resent") == 0:
                text += "; never send that same request again"
            elif "resent" in spec:
                text += f"; send that same request again {_times(spec['resent'])}"
        elif e.kind == "paging":
            what = describe_match(build_match(spec["match"]))
            text = f"follow the `next` link of every page a search matching {what} is answered with, to the last page"
            if "pages" in spec:
                text += " (" + _count(spec["pages"], "page(s) fetched in all") + ")"
        elif e.kind == "receiver":
            parts = []
            if spec.get("handshake"):
                parts.append("answer Redox's verification handshake 200 with the challenge in the body")
            if "push" in spec:
                push = pushes[spec["push"]]
                answer = f"answer push {push.name} ({_push_kind(push)}) with {spec.get('status', 'anything')}"
                if push.redeliver_times or push.repeat_count > 1:
                    answer += ", every delivery of it"
                if "latency_ms" in spec:
                    answer += f", within {spec['latency_ms']} ms of receiving it"
                if "within" in spec:
                    answer += f", at most {spec['within']:g} s (emulator clock) after its first attempt"
                parts.append(answer)
            text = "; ".join(parts)
        else:
            shown = (f"{path} = {json.dumps(ProbeKey(e.name, path, value_matcher(v)).example)}"
                     for path, v in spec.items())
            text = "the probe prints " + ", ".join(shown)
        lines.append(f"{e.name}: {text}" + (f" ({e.description.rstrip('.')})" if e.description else ""))
    return lines


def _actions(actions: Actions) -> str:
    said = []
    if actions.delay:
        said.append(f"the EHR takes {actions.delay:g} s (emulator clock) to answer")
    if actions.expire_token:
        said.append("the token that carries it has expired (401)")
    if actions.revoke_token:
        said.append("the token that carries it is revoked (401)")
    if actions.patient_matches:
        said.append(f'answered "Patient": {{}} with {len(actions.patient_matches)} PotentialMatches')
    if actions.reject_order:
        said.append(f"answered {actions.reject_status}: {actions.reject_order.text}")
    if actions.rate_limit:
        said.append("answered 429" + (f" with Retry-After: {actions.retry_after}" if actions.retry_after else ""))
    if actions.respond:
        outcome = actions.respond.outcome
        said.append(f"answered {actions.respond.status}" +
                    (f" with an OperationOutcome: {outcome.text}" if outcome is not None else ""))
    if actions.fail:
        said.append(f"answered {actions.fail.status} the first {actions.fail.times} time(s)")
    if actions.drop_connection:
        said.append("the connection is dropped without an answer")
    if actions.push:
        said.append("then the EHR pushes " + ", ".join(actions.push))
    if actions.goto:
        said.append(f"the scenario moves to state {actions.goto}")
    return "; ".join(said) or "noted"


def what_happens(scenario: Scenario) -> list[str]:
    """The scenario's setup, rules, pushes and outages, as a client meets them."""
    setup = scenario.setup
    lines = []
    for d in setup.destinations:
        if d.url is not None:
            lines.append(f"your receiver (webhook_url) is destination {d.name!r} ({d.id}), verified by the handshake "
                         f"before send runs; verification token {d.verification_token!r} (VERIFICATION_TOKEN)")
    if scenario.client_api == "fhir":
        lines.append("REDOX_API is fhir: the client works through the FHIR API at REDOX_FHIR_URL "
                     "(docs/clients.md#fhir-contracts)")
    if scenario.client_destination is not None:
        target = next(d for d in setup.destinations if scenario.client_destination in (d.id, d.name))
        subscribed = target.subscriptions if isinstance(target.subscriptions, str) else ", ".join(
            f"{model}.{event}" for model, events in target.subscriptions.items() for event in events)
        lines.append(f"REDOX_DESTINATION_ID is {target.id} ({target.name}), subscribed to {subscribed} only")
    if setup.clock_mode == "accelerated":
        lines.append(f"the emulator's clock runs {setup.clock_factor:g} times faster than real time")
    elif setup.clock_mode == "manual":
        lines.append("the emulator's clock stands still unless told (POST /__emulator/clock)")
    if setup.oauth_token_lifetime or setup.legacy_token_lifetime:
        lines.append(f"access tokens live {setup.oauth_token_lifetime or setup.legacy_token_lifetime:g} s")
    if setup.rate_limit:
        lines.append(f"more than {setup.rate_limit} requests per {setup.rate_window:g} s (emulator clock) from your "
                     "address are answered 429")
    if setup.payload_limit:
        lines.append(f"a body above {setup.payload_limit} bytes is answered 413")
    if setup.sync_timeout:
        lines.append(f"a query the EHR takes longer than {setup.sync_timeout:g} s to answer is answered 504"
                     + (" (an OperationOutcome, code timeout)" if scenario.client_api == "fhir" else ""))
    for patient in setup.patients:
        mrn = ", ".join(str(i.get("ID")) for i in patient.get("Identifiers") or [])
        who = patient.get("Demographics") or {}
        lines.append(f"the EHR holds patient MRN {mrn}: {who.get('FirstName')} {who.get('LastName')}, "
                     f"born {who.get('DOB')}")
    for rule in scenario.rules:
        lines.append(f"when you send {describe_match(rule.match)}: {_actions(rule.actions)}")
    for push in scenario.pushes:
        when = f"{push.when.at:g} s in" if push.when.at is not None else \
            f"{push.when.delay:g} s after rule {push.when.after_rule} fires"
        text = f"Redox pushes {push.name} ({_push_kind(push)}) to your webhook {when}"
        if push.repeat_count > 1:
            text += f", {push.repeat_count} times, every {push.repeat_every:g} s"
        if push.redeliver_times:
            again = _n(push.redeliver_times, "time")
            text += (f", then delivers the same message (same Meta.Logs[0].ID) again {again}, "
                     f"{push.redeliver_after:g} s after each acknowledgement")
        if push.event_time is not None:
            text += f"; its Meta.EventDateTime is {push.event_time:g} s after the start"
        if push.verification_token is not None:
            text += f"; it carries the verification-token {push.verification_token!r}"
        lines.append(text)
    for outage in scenario.outages:
        lines.append(f"your webhook is unreachable ({outage.failure}) from {outage.start:g} s to {outage.end:g} s; "
                     "Redox retries with back-off")
    return lines


# ---- the text ------------------------------------------------------------------------------------
def render(contracts: Sequence[tuple[str, Scenario]], suite_descriptions: Mapping[str, str]) -> str:
    out = [f"The probe prints one JSON object ({_where(str(probe.PROBE_SCHEMA))}; {probe.DOCS}#the-probe).", ""]
    shown = None
    for suite, scenario in contracts:
        if suite != shown:
            shown = suite
            title = f"suite {suite}" if suite else "scenarios in no suite"
            out += [f"{title}: {suite_descriptions.get(suite, '')}".rstrip(": "), ""]
        out.append(f"  contract {scenario.name}  ({_where(scenario.source)})  {probe.DOCS}#{scenario.name}")
        out += textwrap.wrap(" ".join(scenario.description.split()), 100, initial_indent="    ",
                             subsequent_indent="    ")
        happens = what_happens(scenario)
        if happens:
            out.append("    What happens:")
            out += [f"      - {line}" for line in happens]
        out.append("    What the client must do:")
        out += [f"      - {line}" for line in must_do(scenario)]
        keys = probe_keys(scenario)
        if keys:
            out.append("    Probe keys:")
            out += [f"      {k.path} = {json.dumps(k.example)}  (expectation {k.expectation}"
                    f"{', must be absent' if k.matcher.kind == 'exists' and not k.matcher.expected else ''})"
                    for k in keys]
            out.append(f"    Example probe output: {json.dumps(example_output(keys))}")
        else:
            out.append("    Probe keys: none (no expectation of this contract reads the probe)")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _where(source: str) -> str:
    """A bundled scenario by the repository path people read (contracts/..., scenarios/...), else as given."""
    path = Path(source).resolve()
    for folder, name in ((resources.CONTRACTS, "contracts"), (resources.SCENARIOS, "scenarios")):
        if path.is_relative_to(folder.resolve()):
            return f"{name}/{path.relative_to(folder.resolve()).as_posix()}"
    return source


def markdown(contracts: Sequence[tuple[str, Scenario]], suite_descriptions: Mapping[str, str]) -> str:
    """The same as `render`, as the per-contract part of docs/clients.md (`test --explain --markdown`):
    a `#### name` section per contract, so that reports can link to docs/clients.md#name."""
    out: list[str] = []
    shown = None
    for suite, scenario in contracts:
        if suite != shown:
            shown = suite
            out += [f"### Suite `{suite}`" if suite else "### Scenarios in no suite", ""]
            if suite_descriptions.get(suite):
                out += [suite_descriptions[suite], ""]
        about = " ".join(scenario.description.split())
        out += [f"#### {scenario.name}", "", f"`{_where(scenario.source)}`. {about}", ""]
        happens = what_happens(scenario)
        if happens:
            out += ["What happens:", "", *[f"- {line}" for line in happens], ""]
        out += ["What the client must do:", "", *[f"- {line}" for line in must_do(scenario)], ""]
        keys = probe_keys(scenario)
        if keys:
            out += ["Probe keys:", ""]
            out += [f"- `{k.path}` = `{json.dumps(k.example)}` (expectation `{k.expectation}`"
                    f"{', must be absent' if k.matcher.kind == 'exists' and not k.matcher.expected else ''})"
                    for k in keys]
            out += ["", f"Example probe output: `{json.dumps(example_output(keys))}`", ""]
        else:
            out += ["Probe keys: none (no expectation of this contract reads the probe).", ""]
    return "\n".join(out).rstrip() + "\n"
