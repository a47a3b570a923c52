"""Enforce the contracts: a fast yes/no per payload, Redox-worded `Meta.Errors` entries when no.

`jsonschema-rs` (compiled, a few microseconds a payload) answers valid or not on every request;
only an invalid payload pays for `jsonschema`'s detailed errors, turned into Redox's wording:

    Required field missing - Device.ID in Device:New
    Wrong type - Patient.Demographics in PatientAdmin:NewPatient: expected an object or null, found a string
    Invalid value - Visit.Status in Scheduling:New: expected one of "A", "B"; found "C"
    Unknown field - Patient.Demographic in PatientAdmin:NewPatient. Did you mean "Demographics"?

Modes: `redox` (what Redox enforces: unknown fields pass, numbers pass for strings as Redox coerces
them), `strict` (neither passes), `off`. `mode` can change at run time (a scenario sets it);
`reset()` restores the configured one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jsonschema_rs

from emulator import catalog
from emulator.contracts import relax
from emulator.contracts.schemas import Contract
from emulator.ehr.payload import kind
from emulator.errors import RedoxError
from emulator.settings import CONTRACT_MODES

if TYPE_CHECKING:  # imported for the first invalid payload only: valid ones never need it (4 MB)
    import jsonschema

Mode = Literal["redox", "strict", "off"]
MODES: tuple[str, ...] = CONTRACT_MODES
MAX_PROBLEMS = 50  # a garbage payload answers with this many entries and a count of the rest

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_JSON_TYPES = {"string": "a string", "number": "a number", "integer": "an integer", "boolean": "a boolean",
               "object": "an object", "array": "an array", "null": "null"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One Meta.Errors entry: Redox's Text and the JSON path of the offending value."""

    text: str
    path: str  # "$.Patient.Identifiers[0].ID"


def json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _NAME.match(part):
            path += f".{part}"
        else:
            path += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return path


def _field(path: str) -> str:
    """The path as Redox's Text names a field: `Device.ID`, not `$.Device.ID`."""
    return path[2:] if path.startswith("$.") else path


def found(value: Any) -> str:
    """`a string`, `an object`, `null`: a value's JSON type as the error texts say it."""
    name = kind(value)
    return name if name == "null" else ("an " if name[0] in "aeiou" else "a ") + name


def _expected(kinds: Any) -> str:
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    words = [_JSON_TYPES.get(n, n) for n in names if n != "null"] + (["null"] if "null" in names else [])
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


# (id of a schema dict, strict) -> (that dict, kept alive so the id stays its own; its compiled validator)
_COMPILED: dict[tuple[int, bool], tuple[dict[str, Any], Any]] = {}
_COMPILING = threading.Lock()


# The contracts are draft-04 files, validated by draft-07 rules: they use no keyword whose meaning
# changed, and from draft-06 on 1.0 is an integer, as in JSON itself (JavaScript, and so Redox, cannot
# tell 1.0 from 1). The OpenAPI document, in JSON Schema 2020-12, then says exactly what is enforced.
class ContractValidator:
    def __init__(self, contracts: Mapping[tuple[str, str], Contract], mode: str = "redox") -> None:
        self.contracts = contracts  # read-only; schemas.Contracts parses each on first use
        self.configured: Mode = check_mode(mode)
        self._mode: Mode = self.configured
        self._fast: dict[tuple[tuple[str, str], bool], Any] = {}
        self._detailed: dict[tuple[tuple[str, str], bool], jsonschema.Draft7Validator] = {}

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = check_mode(value)

    def reset(self) -> None:
        self.mode = self.configured

    def compile(self, mode: Mode) -> None:
        """Compile every event type's fast validator for `mode` now (the benchmark's warm-up). Otherwise
        each is compiled on first use, once per process: every sandbox of the process shares them
        (`_COMPILED`), so a fresh emulator costs no compilation and the hot path a dictionary look-up."""
        if mode != "off":
            for key in self.contracts:
                self._validator(key, mode == "strict")

    def _schema(self, key: tuple[str, str], strict: bool) -> dict[str, Any]:
        schema = self.contracts[key].schema
        return relax.strict(schema) if strict else schema

    def _validator(self, key: tuple[str, str], strict: bool) -> Any:
        fast = self._fast.get((key, strict))
        if fast is None:
            contract = self.contracts[key]
            shared = (id(contract.schema), strict)  # the schema objects are shared too (schemas.load caches)
            with _COMPILING:
                entry = _COMPILED.get(shared)
                if entry is None or entry[0] is not contract.schema:
                    entry = _COMPILED[shared] = (contract.schema,
                                                 jsonschema_rs.Draft7Validator(self._schema(key, strict)))
            fast = self._fast[key, strict] = entry[1]
        return fast

    def problems(self, payload: Any, data_model: str, event_type: str, mode: str | None = None) -> list[Problem]:
        """Every way `payload` breaks its contract; empty when it keeps it (or the mode is off)."""
        mode = check_mode(mode) if mode is not None else self._mode
        if mode == "off":
            return []
        key = catalog.canonical(data_model, event_type)
        strict = mode == "strict"
        if self._validator(key, strict).is_valid(payload):
            return []
        detailed = self._detailed.get((key, strict))
        if detailed is None:
            import jsonschema

            detailed = self._detailed[key, strict] = jsonschema.Draft7Validator(self._schema(key, strict))
        where = f"{data_model}:{event_type}"
        # jsonschema reports a `required` once per missing field, and _explain names all of them: once each.
        unique = {(p.text, p.path): p for error in detailed.iter_errors(payload) for p in _explain(error, where)}
        found_problems = sorted(unique.values(), key=lambda p: p.path)
        if len(found_problems) > MAX_PROBLEMS:
            rest = len(found_problems) - MAX_PROBLEMS + 1
            found_problems = [*found_problems[:MAX_PROBLEMS - 1],
                              Problem(f"{rest} more problems in {where} not listed", "$")]
        return found_problems


def identify(payload: dict[str, Any], meta: dict[str, Any]) -> tuple[str, str]:
    """Meta.DataModel and Meta.EventType, checked before anything else (RedoxError if unusable)."""
    if not isinstance(payload.get("Meta"), dict):
        raise RedoxError("Required field missing - Meta", meta=meta, path="$.Meta")
    model, event = meta.get("DataModel"), meta.get("EventType")
    if type(model) is str and type(event) is str and (model, event) in catalog.KINDS:
        return model, event  # the usual case: one look-up; below, what is wrong with the others
    if not isinstance(model, str) or not model:
        raise RedoxError("Required field missing - Meta.DataModel", meta=meta, path="$.Meta.DataModel")
    if not isinstance(event, str) or not event:
        raise RedoxError("Required field missing - Meta.EventType", meta=meta, path="$.Meta.EventType")
    if not catalog.is_model(model):
        raise RedoxError(f'Unknown DataModel "{model}".{catalog.did_you_mean(model, catalog.DATA_MODELS)}',
                         meta=meta, path="$.Meta.DataModel")
    if not catalog.is_known(model, event):
        events = catalog.DATA_MODELS[catalog.canonical(model, event)[0]]
        raise RedoxError(f'Unknown EventType "{event}" for DataModel {model}.'
                         f"{catalog.did_you_mean(event, events)} Valid event types: {', '.join(events)}",
                         meta=meta, path="$.Meta.EventType")
    return model, event


def to_error(problems: list[Problem], meta: dict[str, Any]) -> RedoxError:
    """One RedoxError carrying one Meta.Errors entry per problem, as Redox lists them."""
    first, rest = problems[0], problems[1:]
    return RedoxError(first.text, meta=meta, path=first.path, extra=[(p.text, "message", "DataModels") for p in rest],
                      extra_paths=[p.path for p in rest])


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"contract mode must be one of {', '.join(MODES)}, found {mode!r}")
    return mode  # type: ignore[return-value]


def _explain(error: jsonschema.ValidationError, where: str) -> list[Problem]:
    at = list(error.absolute_path)
    path = json_path(at)
    kind, instance = error.validator, error.instance
    value: Any = error.validator_value
    if kind == "required":
        missing = [json_path([*at, name]) for name in value if isinstance(instance, dict) and name not in instance]
        return [Problem(f"Required field missing - {_field(p)} in {where}", p) for p in missing]
    if kind == "type" and instance is None:  # null where a value is required: Redox calls it missing
        return [Problem(f"Required field missing - {_field(path)} in {where}", path)]
    if kind == "type":
        return [Problem(f"Wrong type - {_field(path)} in {where}: expected {_expected(value)}, "
                        f"found {found(instance)}", path)]
    if kind == "enum":
        options = ", ".join(f'"{o}"' if isinstance(o, str) else repr(o) for o in value)
        return [Problem(f"Invalid value - {_field(path)} in {where}: expected one of {options}; "
                        f"found {instance!r}", path)]
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = list(error.schema.get("properties") or {}) if isinstance(error.schema, dict) else []
        unknown = [(json_path([*at, name]), catalog.did_you_mean(name, known))
                   for name in instance if name not in known]
        return [Problem(f"Unknown field - {_field(p)} in {where}" + (f".{hint}" if hint else ""), p)
                for p, hint in unknown]
    return [Problem(f"Invalid value - {_field(path)} in {where}: {error.message}", path)]
