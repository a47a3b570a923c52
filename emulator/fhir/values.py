"""HL7 search value types: what a search value means and what an element of a resource matches.

token `[system]|[code]` (Identifier, CodeableConcept, Coding, ContactPoint, code, boolean); string
(case- and accent-insensitive prefix, `:exact`, `:contains`; HumanName and Address search all their
parts); date with prefixes `eq ne gt ge lt le` over ranges (a date is the day it names, a Period
its span); reference `Type/id`, a bare id, or an absolute URL ending in `Type/id`.
"""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from emulator.errors import FhirError

PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")
INFINITY = float("inf")


# -- token -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code in the system


def token(raw: str) -> Token:
    if "|" not in raw:
        return Token(None, raw)
    system, _, code = raw.partition("|")
    return Token(system, code or None)


def _digits(value: str) -> str:
    digits = "".join(c for c in value if c.isdigit())
    return digits[-10:] if len(digits) >= 10 else digits


def _pairs(value: Any) -> list[tuple[str | None, str, bool]]:
    """(system, code, is_phone) pairs an element offers to a token search."""
    if isinstance(value, bool):
        return [(None, "true" if value else "false", False)]
    if isinstance(value, str):
        return [(None, value, False)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [p for c in value.get("coding") or () for p in _pairs(c)]
    if "value" in value and isinstance(value["value"], str):  # Identifier, ContactPoint
        phone = value.get("system") == "phone"
        return [(None if phone else value.get("system"), value["value"], phone)]
    if isinstance(value.get("code"), str):  # Coding
        return [(value.get("system"), value["code"], False)]
    return []


def token_matches(value: Any, wanted: Token) -> bool:
    for system, code, phone in _pairs(value):
        if wanted.system is not None and not phone and (system or "") != wanted.system:
            continue
        if wanted.code is None:
            return True
        if code == wanted.code or (phone and _digits(code) != "" and _digits(code) == _digits(wanted.code)):
            return True
    return False


def token_text(value: Any) -> list[str]:
    """What `:text` searches: a CodeableConcept's text and its codings' displays, an Identifier's type text."""
    if not isinstance(value, dict):
        return []
    found = [value["text"]] if isinstance(value.get("text"), str) else []
    found += [c["display"] for c in value.get("coding") or ()
              if isinstance(c, dict) and isinstance(c.get("display"), str)]
    if isinstance(value.get("display"), str):
        found.append(value["display"])
    kind = value.get("type")
    if isinstance(kind, dict):
        found += token_text(kind)
    return found


# -- string ----------------------------------------------------------------------------------
def fold(text: str) -> str:
    """Case and accents folded (HL7: string search ignores both unless :exact)."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    found: list[str] = []
    for key in ("family", "text", "city", "district", "state", "postalCode", "country"):
        if isinstance(value.get(key), str):
            found.append(value[key])
    for key in ("given", "prefix", "suffix", "line"):
        found += [v for v in value.get(key) or () if isinstance(v, str)]
    return found


def string_matches(value: Any, wanted: str, modifier: str | None) -> bool:
    for text in strings(value):
        if modifier == "exact":
            if text == wanted:
                return True
        elif modifier == "contains":
            if fold(wanted) in fold(text):
                return True
        elif fold(text).startswith(fold(wanted)):
            return True
    return False


# -- date ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DateQuery:
    prefix: str
    low: float
    high: float  # exclusive
    text: str = ""  # the date as given, after the prefix


def interval(raw: str) -> tuple[float, float] | None:
    """[low, high) in epoch seconds for a FHIR date, dateTime or instant; None if it is not one."""
    m = _DATE.match(raw.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        tz = UTC
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            from datetime import timezone

            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        if month is None:
            start = datetime(int(year), 1, 1, tzinfo=tz)
            end = datetime(int(year) + 1, 1, 1, tzinfo=tz) if int(year) < 9999 else None
        elif day is None:
            start = datetime(int(year), int(month), 1, tzinfo=tz)
            end = start + timedelta(days=monthrange(int(year), int(month))[1])
        elif hour is None:
            start = datetime(int(year), int(month), int(day), tzinfo=tz)
            end = start + timedelta(days=1)
        else:
            start = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                             int(float(fraction) * 1_000_000) if fraction else 0, tzinfo=tz)
            end = start + (timedelta(minutes=1) if second is None else
                           timedelta(microseconds=1) if fraction else timedelta(seconds=1))
    except (ValueError, OverflowError):
        return None
    try:
        return start.timestamp(), end.timestamp() if end is not None else INFINITY
    except (ValueError, OverflowError):
        return None


def date_query(name: str, raw: str) -> DateQuery:
    prefix = "eq"
    if len(raw) > 2 and raw[:2].isalpha():
        prefix, raw = raw[:2], raw[2:]
        if prefix not in PREFIXES:
            raise FhirError(f"Unknown prefix {prefix!r} on the date parameter {name!r}: use one of "
                            f"{', '.join(PREFIXES)} (as in {name}=ge2024-01-01)", code="invalid")
    span = interval(raw)
    if span is None:
        raise FhirError(f"Invalid date {raw!r} for the parameter {name!r}: expected YYYY, YYYY-MM, YYYY-MM-DD or "
                        "YYYY-MM-DDThh:mm:ss with a zone, after an optional prefix (eq ne gt ge lt le)",
                        code="invalid")
    return DateQuery(prefix, *span, raw)


def element_interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, str):
        return interval(value)
    if isinstance(value, dict) and ("start" in value or "end" in value):
        start = interval(value["start"]) if isinstance(value.get("start"), str) else None
        end = interval(value["end"]) if isinstance(value.get("end"), str) else None
        return (start[0] if start else -INFINITY, end[1] if end else INFINITY)
    return None


def date_matches(value: Any, q: DateQuery) -> bool:
    span = element_interval(value)
    if span is None:
        return False
    low, high = span
    within = low >= q.low and high <= q.high
    if q.prefix == "eq":
        return within
    if q.prefix == "ne":
        return not within
    if q.prefix == "gt":
        return high > q.high
    if q.prefix == "lt":
        return low < q.low
    if q.prefix == "ge":
        return high > q.high or within or low >= q.low
    return low < q.low or within or high <= q.high  # le


# -- reference -------------------------------------------------------------------------------
def reference_of(value: Any) -> str | None:
    """`Type/id` of a Reference element (an absolute reference cut to its last two segments)."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    parts = value["reference"].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def reference_query(name: str, raw: str, targets: tuple[str, ...], kind: str | None) -> set[str]:
    """The `Type/id` strings a reference search value stands for."""
    parts = raw.strip().rstrip("/").split("/")
    if len(parts) >= 2:
        wanted_type, id_ = parts[-2], parts[-1]
        if wanted_type not in targets or (kind is not None and wanted_type != kind):
            raise FhirError(f"The parameter {name!r} refers to {', '.join(targets)}, not {wanted_type}: "
                            f"use {name}={targets[0]}/<id>", code="invalid")
        return {f"{wanted_type}/{id_}"}
    types = (kind,) if kind is not None else targets
    return {f"{t}/{parts[0]}" for t in types}
