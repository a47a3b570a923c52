"""A resource checked against FHIR R4: fhirclient's R4 models (types, formats, cardinality, required
elements, unknown elements), plus the required code bindings of the types a writeback writes.

    problems(resource, strict=False) -> [(HL7 issue code, text, path)]   path: ".birthDate", ".name[0].given"

fhirclient (SMART on FHIR's maintained Python client) is imported on the first writeback only: a fresh
emulator never loads its 300 model modules. Unknown elements are reported only when `strict` (the
live sandbox stored what it was given).

Two steps, as the data-model contracts are checked (contracts/validator.py): `fits`, a yes/no walk over
the same models' element tables (fhirclient's `elementProperties`: name, type, list or not, choice
group, required), compiled once per class, answers most valid resources in a few microseconds; only a
resource it does not pass goes through fhirclient's models, which name every problem. `fits` is stricter
than the models wherever it is simpler to be (every list item checked, no nulls or empty lists, no
undefined element below the resource itself, nothing inside a nested resource): it may send a valid
resource the slow way, never pass one the models refuse (tests/test_fhir_r4.py checks that on
generated resources).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

MAX_ISSUES = 50
MAX_MODELS = 256
_NAMED = re.compile(r'"([^"]+)"')
_INDEX = re.compile(r"\.(\d+)(?=\.|$)")
# Required bindings (R4) of the writeback types' status-like codes: the models do not check codes.
_CODES: dict[str, dict[str, frozenset[str]]] = {
    "Patient": {"gender": frozenset({"male", "female", "other", "unknown"})},
    "Observation": {"status": frozenset({"registered", "preliminary", "final", "amended", "corrected",
                                         "cancelled", "entered-in-error", "unknown"})},
    "DiagnosticReport": {"status": frozenset({"registered", "partial", "preliminary", "final", "amended",
                                              "corrected", "appended", "cancelled", "entered-in-error",
                                              "unknown"})},
    "Appointment": {"status": frozenset({"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled",
                                         "noshow", "entered-in-error", "checked-in", "waitlist"})},
    "ServiceRequest": {"status": frozenset({"draft", "active", "on-hold", "revoked", "completed",
                                            "entered-in-error", "unknown"}),
                       "intent": frozenset({"proposal", "plan", "directive", "order", "original-order",
                                            "reflex-order", "filler-order", "instance-order", "option"})},
    "DocumentReference": {"status": frozenset({"current", "superseded", "entered-in-error"})},
}


_MODELS: dict[str, Any] = {}


def _model(kind: str) -> Any:
    """fhirclient's R4 class for `kind`, or None for a type it does not know (remembered: the types a
    writeback names are few, a client's typos bounded by MAX_MODELS)."""
    if kind in _MODELS:
        return _MODELS[kind]
    try:
        module = importlib.import_module(f"fhirclient.models.{kind.lower()}")
    except (ImportError, ValueError):  # ValueError: a name importlib refuses ("", a relative one)
        module = None
    found = getattr(module, kind, None) if module is not None else None
    if len(_MODELS) >= MAX_MODELS:
        _MODELS.clear()
    _MODELS[kind] = found
    return found


def problems(resource: dict[str, Any], *, strict: bool = False) -> list[tuple[str, str, str]]:
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return [("required", "resourceType is required", ".resourceType")]
    model = _model(kind)
    if model is None:
        return [("not-supported", f"{kind!r} is not a FHIR R4 resource type", ".resourceType")]
    found: list[tuple[str, str, str]] = []
    if not fits(model, resource, strict=strict):
        from fhirclient.models.fhirabstractbase import FHIRValidationError

        try:
            model(resource, strict=True)
        except FHIRValidationError as error:
            _walk(error, "", found, strict)
        except Exception as error:  # a model that trips on hostile input: still a bad resource
            found.append(("structure", f"Unreadable {kind}: {error}", ""))
    for element, codes in _CODES.get(kind, {}).items():
        value = resource.get(element)
        if isinstance(value, str) and value not in codes:
            found.append(("code-invalid", f"{kind}.{element} {value!r} is not one of {', '.join(sorted(codes))}",
                          f".{element}"))
    return found[:MAX_ISSUES]


# -- the fast yes/no -------------------------------------------------------------------------------
# A class's table: JSON name -> (kind, list or not, what checks a value), the choice groups' members,
# the required names (a choice group's name for a required choice). Kinds: "str", "num", "bool",
# "date" (a FHIRDate subclass: its own constructor checks the value), "object" (a nested element),
# "refuse" (a resource inside the resource, or a type this walk does not know: the models decide).
_Table = tuple[dict[str, tuple[str, bool, Any]], dict[str, frozenset[str]], tuple[str, ...]]
_TABLES: dict[type, _Table] = {}


def _table(cls: type) -> _Table:
    table = _TABLES.get(cls)
    if table is not None:
        return table
    from fhirclient.models.fhirabstractbase import FHIRAbstractBase
    from fhirclient.models.fhirabstractresource import FHIRAbstractResource
    from fhirclient.models.fhirdate import FHIRDate

    elements: dict[str, tuple[str, bool, Any]] = {}
    groups: dict[str, set[str]] = {}
    required: list[str] = []
    table = (elements, {}, ())
    _TABLES[cls] = table  # first: the element types refer back (Extension holds Extensions)
    for _, jsname, typ, is_list, of_many, not_optional in cls().elementProperties():
        if typ is str:
            kind = "str"
        elif typ is int or typ is float:
            kind = "num"
        elif typ is bool:
            kind = "bool"
        elif isinstance(typ, type) and issubclass(typ, FHIRDate):
            kind = "date"
            # What the class's constructor checks, without the instance it builds (five times the cost).
            pattern, parse = getattr(typ, "_REGEX", None), getattr(typ, "_from_string", None)
            typ = (pattern.fullmatch, parse) if pattern is not None and parse is not None else (typ, _true)
        elif isinstance(typ, type) and issubclass(typ, FHIRAbstractBase) and not issubclass(typ, FHIRAbstractResource):
            kind = "object"
        else:
            kind = "refuse"
        elements[jsname] = (kind, bool(is_list), typ)
        if of_many is not None:
            groups.setdefault(of_many, set()).add(jsname)
        if not_optional and (of_many or jsname) not in required:
            required.append(of_many or jsname)
    table = (elements, {name: frozenset(members) for name, members in groups.items()}, tuple(required))
    _TABLES[cls] = table
    return table


def fits(model: type, resource: Any, *, strict: bool) -> bool:
    """True only if fhirclient's `model` takes `resource` without a problem `problems` would report."""
    try:
        return _fits(model, resource, not strict)
    except Exception:  # anything unexpected: let the models decide
        return False


def _fits(cls: type, data: Any, loose: bool) -> bool:
    """`loose`: elements R4 does not define are let through here (the resource itself, not strict).
    Below it never: the models then drop the element holding one, reported as missing if required."""
    if type(data) is not dict:
        return False
    elements, groups, required = _TABLES.get(cls) or _table(cls)
    for key, value in data.items():
        spec = elements.get(key)
        if spec is None:
            if key == "resourceType":
                continue
            if key[:1] == "_" and key[1:] in elements and value is not None:
                continue  # a primitive's extensions: the models read no further
            if loose:
                continue
            return False
        kind, is_list, typ = spec
        if is_list:
            if type(value) is not list or not value:
                return False
            if not all(_value(kind, typ, item) for item in value):
                return False
        elif not _value(kind, typ, value):
            return False
    for name in required:
        members = groups.get(name)
        if members is None:
            if data.get(name) is None:
                return False
        elif not any(data.get(member) is not None for member in members):
            return False
    return True


def _value(kind: str, typ: Any, value: Any) -> bool:
    if kind == "str":
        return type(value) is str
    if kind == "object":
        return _fits(typ, value, False)
    if kind == "date":
        if type(value) is not str:
            return False
        matches, parse = typ
        if not matches(value):
            return False
        parse(value)  # the calendar (a ValueError: not fit)
        return True
    if kind == "num":
        return type(value) is int or type(value) is float
    if kind == "bool":
        return type(value) is bool
    return False


def _true(_: Any) -> bool:
    return True


def _walk(error: BaseException, prefix: str, found: list[tuple[str, str, str]], strict: bool) -> None:
    from fhirclient.models.fhirabstractbase import FHIRValidationError

    if isinstance(error, FHIRValidationError) and error.errors:
        path = f"{prefix}.{error.path}" if error.path else prefix
        for sub in error.errors:
            _walk(sub, path, found, strict)
        return
    message = str(error.args[0]) if error.args else str(error)
    path = _INDEX.sub(r"[\1]", prefix)
    named = _NAMED.search(message)
    if isinstance(error, KeyError):
        element = named.group(1) if named else "?"
        found.append(("required", f"{element} is required", f"{path}.{element}"))
    elif isinstance(error, AttributeError):
        if strict:
            element = named.group(1) if named else "?"
            found.append(("structure", f"{element} is not an element of this type in FHIR R4", f"{path}.{element}"))
    elif isinstance(error, TypeError):
        found.append(("value", _plain(message), path))
    else:
        found.append(("value", f"Invalid value: {message}", path))


def _plain(message: str) -> str:
    """fhirclient's TypeError text without Python's class reprs."""
    return re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", message).replace(" on Patient", "")
