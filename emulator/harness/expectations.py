"""What a scenario's `expectations` say about one run: the journal, the handshakes and the probe.

Plain Python over plain data (the journal's exchanges as `LogStore.exchanges()` gives them), so it is
unit-testable with no emulator. Each kind (scenarios/README.md, section 6):

    requests   what the client sent: count, every payload valid against its contract, every request
               also matching `every` (Meta.Test true, headers...)
    order      the first requests matching each of these, in this order
    after      requests answered with `status`: how often the same body was sent again (`resent`),
               and whether a token request came first (`reauthenticates`)
    receiver   how the client's webhook answered a push (status, `within` emulated seconds, `latency_ms`),
               or the verification handshake
    probe      JSON path -> value in what the client's probe printed
    paging     FHIR searches: every `next` link of a matching searchset answered 200 was requested later,
               so the client read to the last page (`pages`: how many pages it fetched in all)

A FHIR request is matched as the rules saw it: the journal's note keeps its resource, interaction and
search parameters (`fhir_routes._decide`), since its path and body alone do not say them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from emulator.contracts.validator import ContractValidator
from emulator.harness import probe
from emulator.scenarios import jsonpath
from emulator.scenarios.matching import Seen, matches_statically, static_checks
from emulator.scenarios.model import Expectation, Match, Scenario, build_match, value_matcher

AUTH_PATHS = frozenset({"/v2/auth/token", "/auth/authenticate", "/auth/refreshToken"})
SHOWN = 8  # journal entries shown under a failed expectation


@dataclass(frozen=True, slots=True)
class Handshake:
    destination_id: str
    ok: bool
    explanation: str


@dataclass(slots=True)
class Evidence:
    """Everything a verdict may look at, gathered once the run is over."""

    scenario: Scenario
    exchanges: list[dict[str, Any]]  # the journal, oldest first
    validator: ContractValidator
    handshakes: list[Handshake] = field(default_factory=list)
    probe: Any = None
    probe_error: str | None = None  # why there is no probe JSON (no probe command, bad output...)

    def requests(self) -> list[dict[str, Any]]:
        return [e for e in self.exchanges if e.get("direction") == "in"]

    def push_answers(self, push: str) -> list[dict[str, Any]]:
        return [e for e in self.exchanges if e.get("direction") == "out" and (e.get("scenario") or {}).get("push")
                == push]


@dataclass(frozen=True, slots=True)
class Verdict:
    expectation: str
    kind: str
    ok: bool
    message: str  # what was expected and what was found
    entries: tuple[dict[str, Any], ...] = ()  # the journal entries behind it

    def view(self) -> dict[str, Any]:
        return {"expectation": self.expectation, "kind": self.kind, "ok": self.ok, "message": self.message,
                "entries": [entry_line(e) for e in self.entries]}


def evaluate(expectation: Expectation, evidence: Evidence) -> Verdict:
    check = _KINDS[expectation.kind]
    ok, message, entries = check(expectation.spec[expectation.kind], evidence)
    return Verdict(expectation.name, expectation.kind, ok, message, tuple(entries[:SHOWN]))


def evaluate_all(evidence: Evidence) -> list[Verdict]:
    return [evaluate(e, evidence) for e in evidence.scenario.expectations]


# ---- matching journal entries ------------------------------------------------------------------------
def seen(entry: Mapping[str, Any]) -> Seen:
    body = entry.get("request")
    fhir = (entry.get("scenario") or {}).get("fhir")
    if isinstance(fhir, dict):
        headers = {str(k).lower(): str(v) for k, v in (entry.get("requestHeaders") or {}).items()}
        return Seen.fhir(str(entry.get("method")), str(entry.get("path")), headers,
                         body if isinstance(body, dict | list) else None, str(fhir.get("resource")),
                         str(fhir.get("interaction")), fhir.get("params") or {})
    malformed = isinstance(body, str) and entry.get("path") in ("/endpoint", "/query")
    headers = {str(k).lower(): str(v) for k, v in (entry.get("requestHeaders") or {}).items()}
    return Seen.of(str(entry.get("method")), str(entry.get("path")), headers,
                   None if malformed or isinstance(body, str) else body, malformed)


def matching(entries: Sequence[dict[str, Any]], match: Match) -> list[dict[str, Any]]:
    return [e for e in entries if matches_statically(match, seen(e))]


def entry_line(e: Mapping[str, Any]) -> str:
    """One journal entry as a report line: `#12 in POST /endpoint PatientAdmin.NewPatient -> 401`."""
    what = ""
    body = e.get("request")
    meta = body.get("Meta") if isinstance(body, dict) else None
    note = e.get("scenario") or {}
    if isinstance(meta, dict) and meta.get("DataModel"):
        what = f" {meta.get('DataModel')}.{meta.get('EventType')}"
    elif isinstance(note.get("fhir"), dict):
        what = f" FHIR {note['fhir'].get('resource')} {note['fhir'].get('interaction')}"
    if note.get("push"):
        what += f" (push {note['push']}{', forged' if note.get('forged') else ''})"
    elif note.get("rule"):
        what += f" (rule {note['rule']})"
    status = e.get("status") or "no answer"
    return f"#{e.get('id')} {e.get('direction')} {e.get('method')} {e.get('path')}{what} -> {status} " \
           f"({float(e.get('latencyMs') or 0):.0f} ms)"


def _count_ok(spec: Any, n: int) -> tuple[bool, str]:
    if spec is None:
        return True, ""
    if isinstance(spec, int):
        return n == spec, f"exactly {spec}"
    low, high = spec.get("min"), spec.get("max")
    ok = (low is None or n >= low) and (high is None or n <= high)
    words = [f"at least {low}"] if low is not None else []
    words += [f"at most {high}"] if high is not None else []
    return ok, " and ".join(words)


def _status_ok(spec: Any, status: int) -> bool:
    if isinstance(spec, list):
        return status in spec
    if isinstance(spec, str):
        return status // 100 == int(spec[0])
    return bool(status == spec)


Result = tuple[bool, str, list[dict[str, Any]]]


# ---- the kinds -------------------------------------------------------------------------------------
def _requests(spec: Mapping[str, Any], ev: Evidence) -> Result:
    found = matching(ev.requests(), build_match(spec["match"]))
    ok, wanted = _count_ok(spec.get("count"), len(found))
    if not ok:
        return False, f"expected {wanted} matching request(s), found {len(found)}", found
    if spec.get("valid"):
        for e in found:
            s = seen(e)
            if s.data_model is None or s.event_type is None:
                return False, "a request has no Meta.DataModel and EventType to validate against", [e]
            problems = ev.validator.problems(s.payload, s.data_model, s.event_type)
            if problems:
                return False, f"payload breaks the {s.data_model}.{s.event_type} contract: " + \
                    "; ".join(p.text for p in problems[:3]), [e]
    if "every" in spec:
        every = build_match(spec["every"])
        for e in found:
            failed = [why for ok_, why in static_checks(every, seen(e)) if not ok_]
            if failed:
                return False, "a request breaks " + "; ".join(failed), [e]
    return True, f"{len(found)} matching request(s)", found


def _order(spec: Sequence[Mapping[str, Any]], ev: Evidence) -> Result:
    requests = ev.requests()
    firsts: list[dict[str, Any]] = []
    for i, raw in enumerate(spec):
        found = matching(requests, build_match(raw))
        if not found:
            return False, f"no request matches step {i + 1} of the order", firsts
        firsts.append(found[0])
    ids = [int(e["id"]) for e in firsts]
    if ids != sorted(ids):
        return False, "the first requests of each step came in another order", firsts
    return True, "in order", firsts


def _after(spec: Mapping[str, Any], ev: Evidence) -> Result:
    requests = ev.requests()
    answered = [e for e in matching(requests, build_match(spec["match"])) if _status_ok(spec["status"], e["status"])]
    if not answered:
        return False, f"no matching request was answered {spec['status']}: the scenario never reached its point", []
    for e in answered:
        later = [x for x in requests if x["id"] > e["id"]]
        resends = [x for x in later if x.get("path") == e.get("path") and x.get("method") == e.get("method")
                   and x.get("request") == e.get("request") and _search_params(x) == _search_params(e)]
        ok, wanted = _count_ok(spec.get("resent"), len(resends))
        if not ok:
            return False, f"after #{e['id']} was answered {e['status']}, the same request was sent again " \
                          f"{len(resends)} time(s); expected {wanted}", [e, *resends]
        if spec.get("reauthenticates"):
            until = resends[0]["id"] if resends else float("inf")
            auth = [x for x in later if x.get("path") in AUTH_PATHS and x["id"] < until and x["status"] == 200]
            if not auth:
                return False, f"after #{e['id']} was answered {e['status']}, no new token was obtained" + \
                    (" before the request was sent again" if resends else ""), [e, *later[:SHOWN - 1]]
    return True, f"{len(answered)} request(s) answered {spec['status']}, each handled as expected", answered


def _search_params(entry: Mapping[str, Any]) -> Any:
    """A FHIR search's parameters (the query string is not in the journal's path); None for the rest."""
    fhir = (entry.get("scenario") or {}).get("fhir")
    return fhir.get("params") if isinstance(fhir, dict) else None


def _receiver(spec: Mapping[str, Any], ev: Evidence) -> Result:
    if spec.get("handshake"):
        shook = list(ev.handshakes)
        journal = [e for e in ev.exchanges if e.get("direction") == "out" and e.get("method") in ("POST", "GET")
                      and isinstance(e.get("request"), dict) and "challenge" in e["request"]]
        if not shook:
            return False, "the scenario has no webhook destination to verify", journal
        bad = [h for h in shook if not h.ok]
        if bad:
            return False, f"verification handshake failed: {bad[0].explanation}", journal
    if "push" not in spec:
        return True, "handshake answered", []
    push = next(p for p in ev.scenario.pushes if p.name == spec["push"])
    answers = ev.push_answers(push.name)
    if not answers:
        return False, f"push {push.name} never reached the client's webhook", []
    status = spec.get("status")
    if status is not None:
        if push.verification_token is not None or str(status)[0] != "2":
            wrong = [e for e in answers if not _status_ok(status, e["status"])]
            if wrong:
                found = wrong[0]["status"] or "none"
                return False, f"push {push.name}: expected every answer {status}, found {found}", answers
        else:
            acks = [e for e in answers if _status_ok(status, e["status"])]
            wanted = push.repeat_count * (1 + push.redeliver_times)
            if len(acks) < wanted or not _status_ok(status, answers[-1]["status"]):
                return False, f"push {push.name}: expected {wanted} delivery(ies) acknowledged {status}, " \
                              f"{len(acks)} were (last answer: {answers[-1]['status'] or 'none'})", answers
    if "within" in spec:
        took = _seconds(answers[-1]) - _seconds(answers[0])
        if took > spec["within"]:
            return False, f"push {push.name}: acknowledged {took:.0f} s (emulator clock) after the first attempt; " \
                          f"expected within {spec['within']:g} s", answers
    if "latency_ms" in spec:
        slow = [e for e in answers if not e["status"] or float(e.get("latencyMs") or 0) > spec["latency_ms"]]
        if slow:
            return False, f"push {push.name}: an answer took {float(slow[0].get('latencyMs') or 0):.0f} ms " \
                          f"({slow[0]['status'] or 'no answer'}); expected within {spec['latency_ms']} ms", answers
    return True, f"push {push.name}: {len(answers)} attempt(s) answered as expected", answers


def _probe(spec: Mapping[str, Any], ev: Evidence) -> Result:
    name = ev.scenario.name
    if ev.probe_error is not None:
        return False, f"no probe result: {ev.probe_error}; contract {name} reads {', '.join(spec)} " \
                      f"(see {probe.documented(name)})", []
    for text, raw in spec.items():
        steps = jsonpath.compile_path(text)
        matcher = value_matcher(raw)
        found = jsonpath.values(ev.probe, steps)
        ok, why = matcher.test(found)
        if ok:
            continue
        if not found and matcher.kind != "exists":
            why = f"missing key {text} ({probe.where_missing(ev.probe, steps)}); contract {name} reads it, " \
                  f"expecting {matcher.describe()}; see {probe.documented(name)}"
        else:
            why = f"probe {text}: {why}"
        broken = probe.problems(ev.probe, text)
        if broken:
            why += f"; the output breaks {probe.PROBE_SCHEMA.as_posix()}: " + "; ".join(broken[:probe.SHOWN])
        return False, why, []
    return True, "probe as expected", []


def _paging(spec: Mapping[str, Any], ev: Evidence) -> Result:
    requests = ev.requests()
    searches = [e for e in matching(requests, build_match(spec["match"])) if e.get("status") == 200]
    if not searches:
        return False, "no matching search was answered 200: the client searched nothing, or the scenario " \
                      "never reached its point", []
    for e in searches:
        url = _next_link(e.get("response"))
        if url is None:
            continue
        path = urlsplit(url).path
        if not any(x["id"] > e["id"] and x.get("path") == path and x.get("status") == 200 for x in requests):
            return False, f"#{e['id']} was answered a page with a next link ({path}) that the client never " \
                          "fetched (answered 200): it stopped before the last page", [e]
    ok, wanted = _count_ok(spec.get("pages"), len(searches))
    if not ok:
        return False, f"expected {wanted} page(s) fetched, found {len(searches)}", searches
    return True, f"{len(searches)} page(s) fetched, every next link followed to the last page", searches


def _next_link(body: Any) -> str | None:
    links = body.get("link") if isinstance(body, dict) and body.get("resourceType") == "Bundle" else None
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _seconds(entry: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["createdAt"]).replace("Z", "+00:00")).timestamp()


_KINDS: dict[str, Callable[[Any, Evidence], Result]] = {
    "requests": _requests, "order": _order, "after": _after, "receiver": _receiver, "probe": _probe,
    "paging": _paging,
}
KINDS = tuple(_KINDS)
