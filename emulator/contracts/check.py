"""`redox-emulator validate`: one payload file in, readable `file: path: text` lines out."""

from __future__ import annotations

from pathlib import Path

import orjson

from emulator.contracts.validator import ContractValidator, identify
from emulator.errors import RedoxError


def check_file(validator: ContractValidator, path: Path) -> list[str]:
    """One line per problem of the payload in `path`; empty when it keeps its contract."""
    try:
        payload = orjson.loads(path.read_bytes())
    except OSError as exc:
        return [f"{path}: cannot read the file ({exc.strerror})"]
    except orjson.JSONDecodeError as exc:
        return [f"{path}: not JSON: {exc}"]
    if not isinstance(payload, dict):
        return [f"{path}: $: a Redox payload is a JSON object"]
    meta = payload.get("Meta")
    try:
        model, event = identify(payload, meta if isinstance(meta, dict) else {})
    except RedoxError as error:
        return [f"{path}: {p or '$'}: {text}" for (text, _, _), p in zip(error.errors, error.paths, strict=True)]
    return [f"{path}: {p.path}: {p.text}" for p in validator.problems(payload, model, event)]
