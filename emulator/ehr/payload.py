"""Reading a client's JSON defensively, and copying the EHR's own JSON cheaply.

Queries arrive as arbitrary JSON: every reader here either returns the value in the type the EHR
works with or raises `QueryRejected` naming the JSON path, so `SyntheticEHR.answer` can promise that
nothing but `QueryRejected` ever escapes. Async events use the same readers and drop what they cannot
read (Redox has already accepted the send by then).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from emulator.errors import RequestError

# (ID, IDType); IDType None when the client searched by ID alone.
Identifier = tuple[str, str | None]


class QueryRejected(RequestError):
    """A query the EHR refuses; rendered as 400 with Meta.Errors, Type "transmission", Module "Send"."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def obj(value: object, field: str) -> dict[str, Any]:
    """An object, or {} for null/absent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise QueryRejected(f"{field} must be an object, got {kind(value)}")
    return value


def array(value: object, field: str) -> list[Any]:
    """An array, or [] for null/absent."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise QueryRejected(f"{field} must be an array, got {kind(value)}")
    return value


def text(value: object, field: str) -> str | None:
    """A non-empty trimmed string, or None.

    Numbers are accepted and turned into strings: real Redox payloads carry integers where the
    schema says string (IDs, durations).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QueryRejected(f"{field} must be a string, got {kind(value)}")
    result = value.strip() if isinstance(value, str) else str(value)
    return result or None


def identifiers(value: object, field: str) -> list[Identifier]:
    """`[{ID, IDType}]` as (ID, IDType) pairs; entries without an ID are skipped."""
    found: list[Identifier] = []
    for i, entry in enumerate(array(value, field)):
        # Field names are built only for an error message: this runs on every event the EHR consumes.
        item = entry if isinstance(entry, dict) else obj(entry, f"{field}[{i}]")
        raw_id, raw_type = item.get("ID"), item.get("IDType")
        id_ = (raw_id.strip() or None) if isinstance(raw_id, str) else text(raw_id, f"{field}[{i}].ID")
        if id_ is not None:
            id_type = ((raw_type.strip() or None) if isinstance(raw_type, str)
                       else text(raw_type, f"{field}[{i}].IDType"))
            found.append((id_, id_type))
    return found


def timestamp(value: object, field: str) -> float | None:
    """An ISO-8601 date or date-time as epoch seconds (naive means UTC), or None when absent."""
    raw = text(value, field)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        raise QueryRejected(f"{field} must be an ISO-8601 date-time like "
                            f"2024-05-01T09:00:00.000Z, got {raw!r}") from None


def number(value: object, field: str) -> float | None:
    """A number (or a numeric string, as some EHRs send Duration), or None."""
    raw = text(value, field)
    if raw is None:
        return None
    try:
        result = float(raw)
    except ValueError:
        raise QueryRejected(f"{field} must be a number, got {raw!r}") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise QueryRejected(f"{field} must be a finite number, got {raw!r}")
    return result


def clone(value: Any) -> Any:
    """A deep copy of JSON data: orjson's round trip is several times faster than `copy.deepcopy`.

    It also keeps out of the EHR what the HTTP layer could not send back later (orjson renders the
    responses): a fragment nested deeper than 254 levels, or an integer beyond 64 bits, is refused.
    """
    try:
        return orjson.loads(orjson.dumps(value))
    except orjson.JSONEncodeError as error:
        raise QueryRejected(f"The synthetic EHR cannot keep or echo part of this payload ({error}): "
                            "nesting is limited to 254 levels and integers to 64 bits") from None
