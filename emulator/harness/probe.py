"""The probe's output: its JSON Schema (contracts/probe-output.schema.json), and words for what is missing.

A client learns the probe's vocabulary from docs/clients.md and `redox-emulator test --explain`;
when its output lacks a key an expectation reads, the report says which key, how far the path got,
and where the key is documented, so that "failed" never stands alone.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator

from emulator import resources
from emulator.scenarios import jsonpath
from emulator.scenarios.jsonpath import Step

log = logging.getLogger(__name__)

PROBE_SCHEMA = resources.CONTRACTS / "probe-output.schema.json"
DOCS = "docs/clients.md"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
SHOWN = 3  # schema problems named in a report


@functools.cache
def schema() -> dict[str, Any] | None:
    """The probe output's JSON Schema; None (and a warning) when the file is not where it is looked for.
    The one place that reads it: switch the lookup here."""
    try:
        loaded: dict[str, Any] = json.loads(PROBE_SCHEMA.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        log.warning("probe output schema not read, probe output not checked: %s", error)
        return None
    Draft202012Validator.check_schema(loaded)
    return loaded


@functools.cache
def _validator() -> Draft202012Validator | None:
    loaded = schema()
    return None if loaded is None else Draft202012Validator(loaded)


def problems(output: Any, near: str = "") -> list[str]:
    """Where the output breaks the schema: `$.results.ORD-1001.count: '1' is not of type 'integer'`;
    with `near` (a JSON path), only the problems on that path or above or below it."""
    validator = _validator()
    if validator is None:
        return []
    found = sorted(validator.iter_errors(output), key=lambda e: [str(p) for p in e.absolute_path])
    located = [(path_text(tuple(e.absolute_path)), e.message) for e in found]
    return [f"{path}: {message}" for path, message in located
            if not near or near.startswith(path) or path.startswith(near)]


def path_text(steps: Sequence[Step | str | int]) -> str:
    """Steps back as the JSON path a scenario would write: `$.results.ORD-1001.count`, `$.patients['0000009301']`."""
    out = "$"
    for step in steps:
        if step is None:
            out += "[*]"
        elif isinstance(step, int):
            out += f"[{step}]"
        elif _NAME.match(step):
            out += f".{step}"
        else:
            out += f"['{step}']"
    return out


def where_missing(document: Any, steps: Sequence[Step]) -> str:
    """How far a path gets in the output: `the output has $.results but no "ORD-1001" in it`."""
    for i, step in enumerate(steps):
        if jsonpath.values(document, tuple(steps[:i + 1])):
            continue
        if i == 0:
            kind = type(document).__name__ if not isinstance(document, dict) else ""
            return f"the output is not a JSON object (a {kind})" if kind else f"the output has no {step!r} key"
        current = jsonpath.values(document, tuple(steps[:i]))
        parent = path_text(steps[:i])
        if not any(isinstance(item, dict | list) for item in current):
            return f"the output's {parent} is {current[0]!r}, not an object"
        return f"the output has {parent} but no {step!r} in it"
    return "the output has it"


def documented(scenario: str) -> str:
    """Where a contract's probe keys are written down."""
    return f"{DOCS}#{scenario} and `redox-emulator test --explain {scenario}`"
