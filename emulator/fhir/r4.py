"""A resource checked against FHIR R4: fhirclient's R4 models (types, formats, cardinality, required
elements, unknown elements), plus the required code bindings of the types a writeback writes.

    problems(resource, strict=False) -> [(HL7 issue code, text, path)]   path: ".birthDate", ".name[0].given"

fhirclient (SMART on FHIR's maintained Python client) is imported on the first writeback only: a fresh
emulator never loads its 300 model modules. Unknown elements are reported only when `strict` (the
live sandbox stored what it was given).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

MAX_ISSUES = 50
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


def _model(kind: str) -> Any:
    """fhirclient's R4 class for `kind`, or None for a type it does not know."""
    try:
        module = importlib.import_module(f"fhirclient.models.{kind.lower()}")
    except ImportError:
        return None
    return getattr(module, kind, None)


def problems(resource: dict[str, Any], *, strict: bool = False) -> list[tuple[str, str, str]]:
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return [("required", "resourceType is required", ".resourceType")]
    model = _model(kind)
    if model is None:
        return [("not-supported", f"{kind!r} is not a FHIR R4 resource type", ".resourceType")]
    from fhirclient.models.fhirabstractbase import FHIRValidationError

    found: list[tuple[str, str, str]] = []
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
