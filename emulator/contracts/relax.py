"""From a schema as published to the schema Redox actually enforces, and to its strict variant.

Real Redox payloads carry explicit nulls for every optional field (objects and arrays included),
`Meta.Message` / `Meta.Transmission`, and fields newer than a given schema version; Redox accepts
all of that. `relax` makes a schema say so; `strict` turns unknown fields back into errors.
Both work on any draft-04 object schema: the generated ones and a team's imported bundle.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

_NOISE = ("title", "default")  # pydantic's, meaningless to a validator


def _types(node: dict[str, Any]) -> list[str] | None:
    kind = node.get("type")
    if isinstance(kind, str):
        return [kind]
    return list(kind) if isinstance(kind, list) else None


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """`node` that also accepts null; pydantic's `anyOf: [X, {type: null}]` folded into one `type` list."""
    options = node.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1 and len(options) == 2:
            node = {**{k: v for k, v in node.items() if k != "anyOf"}, **rest[0]}
    kinds = _types(node)
    if kinds is None or not kinds:  # no type: anything goes already (e.g. Extensions)
        return node
    if "null" not in kinds:
        kinds.append("null")
    return {**node, "type": kinds}


def _not_null(node: dict[str, Any]) -> dict[str, Any]:
    """A required field: null counts as missing, as Redox reports it."""
    options = node.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            node = {**{k: v for k, v in node.items() if k != "anyOf"}, **rest[0]}
    kinds = _types(node)
    if kinds and "null" in kinds and len(kinds) > 1:
        kinds.remove("null")
        return {**node, "type": kinds[0] if len(kinds) == 1 else kinds}
    return node


def _walk(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in _NOISE}
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]  # unknown fields are `strict` mode's business
    properties = node.get("properties")
    if isinstance(properties, dict):
        required = set(node.get("required") or ())
        node["properties"] = {
            name: _walk(_not_null(sub) if name in required else _nullable(sub)) if isinstance(sub, dict) else sub
            for name, sub in properties.items()
        }
    kinds = _types(node)
    if kinds and "string" in kinds and "number" not in kinds:
        # Redox coerces numbers sent for strings (ZIP 53703, an order ID 123456), as the `redox` package does.
        kinds.insert(kinds.index("string") + 1, "number")
        node["type"] = kinds
    items = node.get("items")
    if isinstance(items, dict):
        node["items"] = _walk(items)
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(node.get(key), list):
            node[key] = [_walk(option) for option in node[key]]
    return node


def relax(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as Redox enforces it, with Meta completed (a new dict): see the module docstring."""
    relaxed: dict[str, Any] = _walk(copy.deepcopy(schema))
    meta = (relaxed.get("properties") or {}).get("Meta")
    if isinstance(meta, dict):
        relaxed["properties"]["Meta"] = complete_meta(meta)
    return relaxed


def _id() -> dict[str, Any]:
    return {"type": ["object", "null"], "properties": {"ID": {"type": ["string", "integer", "null"]}}}


def _logs() -> dict[str, Any]:
    entry = {"ID": {"type": ["string", "integer", "null"]}, "AttemptID": {"type": ["string", "integer", "null"]}}
    return {"type": ["array", "null"], "items": {"type": "object", "properties": entry}}


def _errors() -> dict[str, Any]:
    return {"type": ["array", "null"], "items": {"type": "object", "properties": {
        "ID": {"type": ["string", "integer", "null"]}, "Text": {"type": ["string", "null"]},
        "Type": {"type": ["string", "null"]}, "Module": {"type": ["string", "null"]}}}}


# The one list of fields real Redox puts in Meta beyond what a published model may list: every
# contract gets each one its Meta lacks (generated and imported alike, so `strict` accepts them too).
# contracts/README.md lists them for people; keep the two together.
REDOX_META_EXTRAS: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
    ("Logs", _logs),  # [{ID, AttemptID}] on every answer and delivery; SSO.Sign-On's model lacks it
    ("Message", _id),  # deprecated, still sent; Redox's IDs are integers
    ("Transmission", _id),  # the same
    ("Errors", _errors),  # [{ID, Text, Type, Module}] on an error answer, or a 200 that failed downstream
)


def meta_schema() -> dict[str, Any]:
    """Meta as every Redox event carries it (SPEC 5.2), for event types with no published model
    (`complete_meta` adds Logs, Message, Transmission and Errors)."""
    party = {"type": ["object", "null"], "properties": {"ID": {"type": ["string", "null"]},
                                                         "Name": {"type": ["string", "null"]}}}
    return {
        "type": "object",
        "required": ["DataModel", "EventType"],
        "properties": {
            "DataModel": {"type": "string"},
            "EventType": {"type": "string"},
            "EventDateTime": {"type": ["string", "null"]},
            "Test": {"type": ["boolean", "null"]},
            "Source": party,
            "Destinations": {"type": ["array", "null"], "items": party},
            "FacilityCode": {"type": ["string", "null"]},
        },
    }


def complete_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Meta plus what real payloads carry beyond the published models (`REDOX_META_EXTRAS`)."""
    properties = dict(meta.get("properties") or {})
    for name, schema in REDOX_META_EXTRAS:
        properties.setdefault(name, schema())
    return {**meta, "properties": properties}


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Unknown fields rejected wherever a schema lists its fields, strings only strings (a new dict)."""
    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        done = {key: walk(value) if key != "properties" else {k: walk(v) for k, v in value.items()}
                for key, value in node.items()}
        if isinstance(node.get("properties"), dict) and not node.get("x-permissive"):
            done["additionalProperties"] = False
        kinds = _types(node)
        if kinds and "string" in kinds and "number" in kinds:
            done["type"] = [k for k in kinds if k != "number"]
        return done
    return walk(schema)  # type: ignore[no-any-return]
