"""Cutting JSON to what a schema lists: how data of outside origin is made to keep a contract.

`project(value, schema)` keeps the fields the schema names, in the types it allows, and drops the
rest (nulls included). Against a `strict` schema (relax.strict) a number where only a string is
allowed becomes that string, as Redox coerces it (a ZIP sent as 53703 is answered "53703").

The payload generator fits the EHR's records into the event it builds with it; the synthetic EHR
fits what clients sent it (a NewPatient's sections, a Results.New's orders) into the answers that
echo them (`section`), so an answer keeps its own contract whatever the events before it carried.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from emulator.contracts import relax, schemas

_CHECKS: dict[str, type | tuple[type, ...]] = {"string": str, "boolean": bool, "number": (int, float),
                                               "integer": int}


def _kinds(schema: Mapping[str, Any]) -> list[str]:
    kinds = schema.get("type")
    return [kinds] if isinstance(kinds, str) else list(kinds or [])


def project(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` cut to what `schema` lists, nulls and wrongly typed parts dropped (None if nothing fits)."""
    kinds = _kinds(schema)
    if value is None:
        return None
    if isinstance(value, Mapping):
        properties = schema.get("properties")
        if "object" not in kinds and properties is None:
            return None
        if properties is None:
            return dict(value)
        kept = {k: project(v, properties[k]) for k, v in value.items() if k in properties}
        return {k: v for k, v in kept.items() if v is not None}
    if isinstance(value, list):
        items = schema.get("items")
        if "array" not in kinds or not isinstance(items, Mapping):
            return None
        return [p for p in (project(v, items) for v in value) if p is not None]
    if not kinds or any(isinstance(value, _CHECKS[k]) and not (k != "boolean" and isinstance(value, bool))
                        for k in kinds if k in _CHECKS):
        return value
    if "string" in kinds and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


@functools.cache
def section(data_model: str, event_type: str, path: tuple[str, ...]) -> Mapping[str, Any]:
    """The `strict` sub-schema at `path` of a bundled contract (`"[]"` steps into array items).

    The bundled contract, not a team's imported one: what the EHR answers is its own business.
    KeyError for a path the schema does not have (a mistake in the caller, found by the tests).
    """
    node: Mapping[str, Any] = schemas.load()[data_model, event_type].schema
    for step in path:
        node = node["items"] if step == "[]" else node["properties"][step]
    return relax.strict(dict(node))


def fit(value: Any, data_model: str, event_type: str, *path: str) -> Any:
    """`value` as the bundled contract of `data_model`.`event_type` allows it at `path` (see `section`)."""
    return project(value, section(data_model, event_type, path))
