"""Checking a scenario file: the JSON Schema first, then what a schema cannot say.

Every problem is a `Problem` (file, line, column, JSON path, message with a did-you-mean where a
name was mistyped); `check_text()` returns them all rather than stopping at the first, so that
`redox-emulator check` shows a QA writer everything in one go. `load_text()` raises
`ScenarioError` (a `LoadError`) when there is any problem, else returns the parsed `Scenario`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any

from emulator import catalog
from emulator.errors import LoadError
from emulator.scenarios import model
from emulator.scenarios.document import Document, Path, Problem, read
from emulator.scenarios.jsonpath import JSONPathError, compile_path
from emulator.scenarios.model import START, Scenario

if TYPE_CHECKING:  # imported when a scenario is first checked: a fresh emulator seldom loads one (4 MB)
    import jsonschema

FHIR_KEYS = ("resource", "interaction", "params")  # a match with any of these is about /fhir/R4/ requests
INTERACTIONS = ("read", "search", "create", "write", "capabilities")
ANSWERS = ("respond", "drop_connection", "patient_matches", "reject_order", "rate_limit")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class ScenarioError(LoadError):
    """A scenario that cannot be loaded; `problems` holds each one, `str()` shows them a line each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@functools.cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(resources.files("emulator.scenarios").joinpath("schema.json").read_text())
    return loaded


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    validator: jsonschema.protocols.Validator = cls(schema())
    return validator


def load_file(path: str | FilePath) -> Scenario:
    file = FilePath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(str(path), 1, 1, (), f"cannot read the file: {exc}")]) from None
    return load_text(text, str(path), name=file.name.removesuffix(".yaml").removesuffix(".yml"))


def load_text(text: str, file: str = "<body>", *, name: str | None = None) -> Scenario:
    doc, problems = check_text(text, file)
    if problems:
        raise ScenarioError(problems)
    return model.build(doc.data, name or "unnamed", file)


def check_file(path: str | FilePath) -> list[Problem]:
    try:
        load_file(path)
    except ScenarioError as error:
        return error.problems
    return []


def check_text(text: str, file: str) -> tuple[Document, list[Problem]]:
    doc = read(file, text)
    if doc.problems:  # a syntax error leaves nothing sound to check further
        return doc, doc.problems
    if doc.data is None:
        doc.problem((), "the file is empty; a scenario needs at least a description")
        return doc, doc.problems
    _schema_problems(doc)
    if not doc.problems:  # the semantic checks rely on the shapes the schema guarantees
        _Semantics(doc).run()
    doc.problems.sort(key=lambda p: (p.line, p.column))
    return doc, doc.problems


# ---- the schema --------------------------------------------------------------------------------

def _schema_problems(doc: Document) -> None:
    for error in _leaf_errors(_validator().iter_errors(doc.data)):
        path: Path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = _allowed_keys(error.schema)
            for key in error.instance:
                if key not in allowed:
                    doc.problem((*path, key), f"unknown key {key!r}.{catalog.did_you_mean(key, allowed)}"
                                f" Allowed here: {', '.join(sorted(allowed))}", key=True)
        elif error.validator == "propertyNames":
            doc.problem(path, f"{error.instance!r} is not a Redox field name (they start with a capital letter)")
        else:
            doc.problem(path, _say(error))


def _leaf_errors(errors: Iterable[jsonschema.ValidationError]) -> Iterable[jsonschema.ValidationError]:
    """For oneOf/anyOf, the alternative that came closest rather than 'is not valid under any'."""
    import jsonschema  # loaded already: errors come from _validator()

    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context:
            best = jsonschema.exceptions.best_match(error.context)
            # An object that only fails the scalar alternative's type says that, which teaches nothing.
            if best.validator == "type" and isinstance(error.instance, dict | list):
                objects = [e for e in error.context if e.validator != "type"]
                best = jsonschema.exceptions.best_match(objects) if objects else best
            yield best
        else:
            yield error


def _allowed_keys(schema_: object) -> list[str]:
    return list(schema_.get("properties", {})) if isinstance(schema_, Mapping) else []


_TYPES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
          "number": "a number", "boolean": "true or false", "null": "null"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {dict: "a mapping", list: "a list", str: "text", int: "a whole number", float: "a number",
            type(None): "nothing (null)"}.get(type(value), type(value).__name__)


def _say(error: jsonschema.ValidationError) -> str:
    value: Any = error.instance
    kind: Any = error.validator
    expected: Any = error.validator_value
    if kind == "type":
        names = [_TYPES.get(t, t) for t in ([expected] if isinstance(expected, str) else expected)]
        return f"expected {' or '.join(names)}, found {_kind(value)} {_short(value)}"
    if kind == "enum":
        options = [str(o) for o in expected]
        hint = catalog.did_you_mean(str(value), options)
        return f"expected one of {', '.join(options)}, found {_short(value)}.{hint}"
    if kind == "const":
        return f"expected {json.dumps(error.validator_value)}, found {_short(value)}"
    if kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return f"missing required key {missing[0]!r}" if missing else error.message
    if kind == "pattern" and error.validator_value == "^[A-Za-z0-9][A-Za-z0-9_.-]*$":
        return f"a name uses letters, digits, '-', '_' and '.', found {_short(value)}"
    if kind == "pattern" and error.validator_value == "^[a-z][a-z-]*$":
        return f"an HL7 issue-type code is lower case, words joined by '-' (business-rule); found {_short(value)}"
    if kind == "pattern" and error.validator_value == "^/":
        return f"a path starts with '/', like /endpoint; found {_short(value)}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "above",
                 "exclusiveMaximum": "below"}
        return f"must be {words[kind]} {error.validator_value}, found {_short(value)}"
    if kind == "minItems":
        return f"needs at least {error.validator_value} item(s), found {len(value)}"
    if kind == "minProperties":
        return "needs at least one key" if error.validator_value == 1 else str(error.message)
    return str(error.message)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- what the schema cannot say ----------------------------------------------------------------

class _Semantics:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.data: dict[str, Any] = doc.data
        self.states = list(self.data.get("states") or [])
        self.rule_names = [r["name"] for r in self.data.get("rules") or []]
        self.push_names = [p["name"] for p in self.data.get("pushes") or []]
        setup = self.data.get("setup") or {}
        self.destinations = [d["id"] for d in setup.get("destinations") or []] + \
                            [d["name"] for d in setup.get("destinations") or []]

    def run(self) -> None:
        setup = self.data.get("setup") or {}
        self._setup(setup)
        self._unique("rules", self.rule_names)
        self._unique("pushes", self.push_names)
        self._unique("expectations", [e["name"] for e in self.data.get("expectations") or []])
        for i, rule in enumerate(self.data.get("rules") or []):
            when = rule.get("when") or {}
            self._match(("rules", i, "when"), when)
            self._actions(("rules", i, "then"), rule["then"])
            if any(k in when for k in FHIR_KEYS):
                self._fhir_actions(("rules", i, "then"), rule["then"])
            elif "outcome" in (rule["then"].get("respond") or {}):
                self.doc.problem(("rules", i, "then", "respond", "outcome"), "outcome (an OperationOutcome) answers "
                                 "FHIR requests: give the rule's `when` a resource or an interaction", key=True)
        for i, push in enumerate(self.data.get("pushes") or []):
            self._push(("pushes", i), push)
        for i, outage in enumerate(self.data.get("outages") or []):
            where = ("outages", i)
            if outage["until"] <= outage["from"]:
                self.doc.problem((*where, "until"), f"the outage ends ({outage['until']}) before or when it "
                                 f"starts ({outage['from']})")
            self._destination((*where, "destination"), outage.get("destination"))
        for i, expectation in enumerate(self.data.get("expectations") or []):
            self._expectation(("expectations", i), expectation)
        self._destination(("client", "destination"), (self.data.get("client") or {}).get("destination"))

    def _setup(self, setup: Mapping[str, Any]) -> None:
        clock = setup.get("clock") or {}
        if clock.get("mode") == "accelerated" and "factor" not in clock:
            self.doc.problem(("setup", "clock"), "accelerated mode needs a factor (emulated seconds per real second)")
        if "factor" in clock and clock.get("mode") != "accelerated":
            self.doc.problem(("setup", "clock", "factor"), f"a factor applies to accelerated mode only, "
                             f"not {clock.get('mode')}", key=True)
        for i, dest in enumerate(setup.get("destinations") or []):
            subs = dest.get("subscriptions", "all")
            if dest.get("format") == "fhir" or "notifications" in dest:
                self._fhir_destination(("setup", "destinations", i), dest)
            elif isinstance(subs, dict):
                for model_name, events in subs.items():
                    where: Path = ("setup", "destinations", i, "subscriptions", model_name)
                    if self._model(where, model_name, key=True) and isinstance(events, list):
                        for j, event in enumerate(events):
                            self._event((*where, j), model_name, event)
        self._unique(("setup", "destinations"), [d["id"] for d in setup.get("destinations") or []], "id")

    def _fhir_destination(self, where: Path, dest: Mapping[str, Any]) -> None:
        """A FHIR destination: what the config file refuses is refused here, where it is written."""
        if "notifications" in dest and dest.get("format") != "fhir":
            self.doc.problem((*where, "notifications"), "notifications is for a destination with format: fhir",
                             key=True)
            return
        if "url" not in dest:
            self.doc.problem((*where, "format"), "format: fhir is for a webhook destination: give its url "
                             "({receiver} for the client's webhook)")
            return
        subs = dest.get("subscriptions", "all")
        if not isinstance(subs, dict):
            return
        for model_name, events in subs.items():
            at: Path = (*where, "subscriptions", model_name)
            if model_name not in catalog.FHIR_MODELS:
                self.doc.problem(at, f"unknown FHIR notification model {model_name!r}."
                                 f"{catalog.did_you_mean(str(model_name), catalog.FHIR_MODELS)} A destination with "
                                 f"format: fhir subscribes by FHIR names, e.g. {catalog.FHIR_PATIENT_ADMIN}", key=True)
            elif isinstance(events, list):
                for j, event in enumerate(events):
                    if event not in catalog.FHIR_MODELS[model_name]:
                        self.doc.problem((*at, j), f"unknown {model_name} notification {event!r}."
                                         f"{catalog.did_you_mean(str(event), catalog.FHIR_MODELS[model_name])}")

    def _unique(self, where: str | Path, names: list[str], what: str = "name") -> None:
        seen: set[str] = set()
        base = (where,) if isinstance(where, str) else where
        for i, name in enumerate(names):
            if name in seen:
                self.doc.problem((*base, i, what), f"the {what} {name!r} is used twice in {base[-1]}")
            seen.add(name)

    def _model(self, where: Path, name: str, *, key: bool = False) -> bool:
        if catalog.is_model(name):
            return True
        self.doc.problem(where, f"unknown DataModel {name!r}.{catalog.did_you_mean(name, catalog.DATA_MODELS)}",
                         key=key)
        return False

    def _event(self, where: Path, model_name: str | None, event: str) -> None:
        if model_name is not None:
            if catalog.is_known(model_name, event):
                return
            events = catalog.DATA_MODELS[catalog.canonical(model_name, event)[0]]
            self.doc.problem(where, f"unknown EventType {event!r} for {model_name}."
                             f"{catalog.did_you_mean(event, events)} Valid: {', '.join(events)}")
            return
        every = sorted({e for events in catalog.DATA_MODELS.values() for e in events})
        if event not in every:
            hint = catalog.did_you_mean(event, every)
            self.doc.problem(where, f"unknown EventType {event!r} in any DataModel.{hint}")

    def _state(self, where: Path, name: str) -> None:
        known = self.states or [START]
        if name not in known:
            hint = catalog.did_you_mean(name, known)
            declared = f"States: {', '.join(known)}" if self.states else \
                "This scenario declares no states (add `states: [...]`; the first is where it starts)"
            self.doc.problem(where, f"unknown state {name!r}.{hint} {declared}")

    def _match(self, where: Path, match: Mapping[str, Any]) -> None:
        if any(k in match for k in FHIR_KEYS):
            self._fhir_match(where, match)
            return
        model_name = match.get("data_model")
        model_ok = model_name is None or self._model((*where, "data_model"), model_name)
        if "event_type" in match and model_ok:
            self._event((*where, "event_type"), model_name, match["event_type"])
        for text, value in (match.get("json") or {}).items():
            try:
                compile_path(text)
            except JSONPathError as exc:
                self.doc.problem((*where, "json", text), f"bad JSON path: {exc}", key=True)
            self._regex((*where, "json", text), value)
        for name, value in (match.get("headers") or {}).items():
            if not _HEADER_NAME.match(name):
                self.doc.problem((*where, "headers", name), f"{name!r} is not a valid HTTP header name", key=True)
            self._regex((*where, "headers", name), value)
        states = match.get("state")
        for i, state in enumerate([states] if isinstance(states, str) else states or []):
            self._state((*where, "state") if isinstance(states, str) else (*where, "state", i), state)

    def _fhir_match(self, where: Path, match: Mapping[str, Any]) -> None:
        from emulator.fhir.resources import TYPES  # the FHIR layer only for scenarios that speak FHIR
        from emulator.fhir.writeback import OPERATIONS

        for key in ("data_model", "event_type"):
            if key in match:
                self.doc.problem((*where, key), f"{key} matches the Data Model API (/endpoint); a FHIR match names "
                                 "`resource` and `interaction` (its log's DataModel is FHIR.{resource})", key=True)
        resource = match.get("resource")
        known = (*TYPES, "CapabilityStatement")
        if resource is not None and resource not in known:
            self.doc.problem((*where, "resource"), f"unknown FHIR resource {resource!r}."
                             f"{catalog.did_you_mean(resource, known)} Served: {', '.join(known)}")
            resource = None
        interaction = match.get("interaction")
        if interaction is not None:
            operations = {"$match": "Patient", **{op: kind for op, (kind, _, _) in OPERATIONS.items()}}
            if interaction.startswith("$"):
                owner = operations.get(interaction)
                if owner is None:
                    self.doc.problem((*where, "interaction"), f"unknown FHIR operation {interaction!r}."
                                     f"{catalog.did_you_mean(interaction, operations)} Served: "
                                     f"{', '.join(operations)}")
                elif resource is not None and owner != resource:
                    self.doc.problem((*where, "interaction"), f"{interaction} is an operation of {owner}, "
                                     f"not of {resource}")
            elif interaction not in INTERACTIONS:
                self.doc.problem((*where, "interaction"), f"unknown FHIR interaction {interaction!r}."
                                 f"{catalog.did_you_mean(interaction, INTERACTIONS)} Known: "
                                 f"{', '.join(INTERACTIONS)}, or an operation such as $match")
            if "params" in match and interaction != "search":
                self.doc.problem((*where, "params"), f"search parameters belong to interaction search, "
                                 f"not {interaction}", key=True)
        for name, value in (match.get("params") or {}).items():
            self._regex((*where, "params", name), value)
        rest = {k: v for k, v in match.items() if k not in (*FHIR_KEYS, "data_model", "event_type")}
        if rest:
            self._match(where, rest)

    def _regex(self, where: Path, value: Any) -> None:
        if isinstance(value, dict) and "matches" in value:
            try:
                re.compile(value["matches"])
            except re.error as exc:
                self.doc.problem((*where, "matches"), f"bad regular expression: {exc}")

    def _actions(self, where: Path, then: Mapping[str, Any]) -> None:
        answers = [a for a in ANSWERS if a in then]
        if len(answers) > 1:
            self.doc.problem((*where, answers[1]), f"a rule gives one answer; it has {' and '.join(answers)}",
                             key=True)
        if "goto" in then:
            self._state((*where, "goto"), then["goto"])
        for i, name in enumerate(then.get("push") or []):
            if name not in self.push_names:
                self.doc.problem((*where, "push", i), f"no push named {name!r} in pushes."
                                 f"{catalog.did_you_mean(name, self.push_names)}")
        respond = then.get("respond") or {}
        given = [k for k in ("body", "error", "outcome") if k in respond]
        if len(given) > 1:
            self.doc.problem((*where, "respond", given[1]), f"respond takes one of body, error and outcome, not "
                             f"{' and '.join(given)}", key=True)

    def _fhir_actions(self, where: Path, then: Mapping[str, Any]) -> None:
        """A rule whose `when` is about FHIR requests answers as the FHIR API does."""
        for key, instead in (("patient_matches", "respond.body (a searchset Bundle) on interaction $match"),
                             ("reject_order", "respond.outcome (an OperationOutcome)")):
            if key in then:
                self.doc.problem((*where, key), f"{key} answers the Data Model API; a FHIR rule uses {instead}",
                                 key=True)
        if "error" in (then.get("respond") or {}):
            self.doc.problem((*where, "respond", "error"), "error is Redox's Meta.Errors body; a FHIR rule answers "
                             "with outcome (an OperationOutcome)", key=True)

    def _push(self, where: Path, push: Mapping[str, Any]) -> None:
        meta = push["body"]["Meta"]
        if self._model((*where, "body", "Meta", "DataModel"), meta["DataModel"]):
            self._event((*where, "body", "Meta", "EventType"), meta["DataModel"], meta["EventType"])
        when = push.get("when") or {}
        if "at" in when and "after_rule" in when:
            self.doc.problem((*where, "when"), "a push happens `at` a time or `after_rule`, not both")
        if "delay" in when and "after_rule" not in when:
            self.doc.problem((*where, "when", "delay"), "delay counts from `after_rule`; use `at` alone", key=True)
        rule = when.get("after_rule")
        if rule is not None:
            if rule not in self.rule_names:
                self.doc.problem((*where, "when", "after_rule"), f"no rule named {rule!r}."
                                 f"{catalog.did_you_mean(rule, self.rule_names)}")
            elif not any(push["name"] in (r["then"].get("push") or []) for r in self.data["rules"]
                         if r["name"] == rule):
                self.doc.problem((*where, "when", "after_rule"), f"rule {rule!r} does not name this push in its "
                                 f"`then.push`, so it would never fire")
        self._destination((*where, "destination"), push.get("destination"))

    def _destination(self, where: Path, name: str | None) -> None:
        if name is not None and name not in self.destinations:
            known = self.destinations or ["(none: add setup.destinations)"]
            self.doc.problem(where, f"no setup destination with ID or name {name!r}."
                             f"{catalog.did_you_mean(name, self.destinations)} Known: {', '.join(known)}")

    def _expectation(self, where: Path, expectation: Mapping[str, Any]) -> None:
        kinds = [k for k in model.EXPECTATION_KINDS if k in expectation]
        if len(kinds) != 1:
            self.doc.problem(where, f"an expectation has exactly one of {', '.join(model.EXPECTATION_KINDS)}; "
                             f"found {', '.join(kinds) or 'none'}")
        matches: list[tuple[Path, Mapping[str, Any]]] = []
        for kind in ("requests", "after", "paging"):
            if kind in expectation:
                matches.append(((*where, kind, "match"), expectation[kind]["match"]))
                count_key = {"requests": "count", "after": "resent", "paging": "pages"}[kind]
                count = expectation[kind].get(count_key)
                if isinstance(count, dict) and count.get("min", 0) > count.get("max", count.get("min", 0)):
                    self.doc.problem((*where, kind, count_key), "min is above max")
        requests = expectation.get("requests") or {}
        if requests.get("valid") and any(k in requests["match"] for k in FHIR_KEYS):
            self.doc.problem((*where, "requests", "valid"), "valid checks Data Model payloads against their "
                             "contracts; FHIR requests are checked by the FHIR API itself", key=True)
        paging = (expectation.get("paging") or {}).get("match")
        if paging is not None and (paging.get("interaction", "search") != "search" or "resource" not in paging):
            self.doc.problem((*where, "paging", "match"), "paging follows FHIR searches: its match names a "
                             "`resource` and interaction search (or none)")
        if "every" in (expectation.get("requests") or {}):
            matches.append(((*where, "requests", "every"), expectation["requests"]["every"]))
        matches.extend(((*where, "order", i), m) for i, m in enumerate(expectation.get("order") or ()))
        for at, match in matches:
            for unsupported in ("nth", "state"):
                if unsupported in match:
                    self.doc.problem((*at, unsupported), f"{unsupported} applies to rules, not to expectations",
                                     key=True)
            self._match(at, {k: v for k, v in match.items() if k != "state"})
        receiver = expectation.get("receiver") or {}
        if "push" in receiver and receiver["push"] not in self.push_names:
            self.doc.problem((*where, "receiver", "push"), f"no push named {receiver['push']!r}."
                             f"{catalog.did_you_mean(receiver['push'], self.push_names)}")
        for text in expectation.get("probe") or {}:
            try:
                compile_path(text)
            except JSONPathError as exc:
                self.doc.problem((*where, "probe", text), f"bad JSON path: {exc}", key=True)
