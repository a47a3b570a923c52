"""The contract files: where they are, what they are called, and loading them.

Bundled contracts live in `contracts/schemas/` at the top of the repository, one file per event
type, `<DataModel without spaces>.<EventType>.json`. A team's imported bundle (see bundle.py) sits
in `contracts_dir` with the same names and wins over the bundled file of the same event type.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator import catalog
from emulator.contracts import relax
from emulator.errors import LoadError

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).resolve().parents[2] / "contracts" / "schemas"


class ContractError(LoadError):
    """A contract file that cannot be read or is not a JSON Schema object."""


@dataclass(frozen=True, slots=True)
class Contract:
    data_model: str
    event_type: str
    schema: dict[str, Any]  # as enforced in `redox` mode
    origin: Path

    @property
    def permissive(self) -> bool:
        return bool(self.schema.get("x-permissive"))


def file_name(data_model: str, event_type: str) -> str:
    return f"{data_model.replace(' ', '')}.{event_type}.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: cannot read the contract ({exc})") from exc
    if not isinstance(schema, dict):
        raise ContractError(f"{path}: a contract must be a JSON object, found {type(schema).__name__}")
    return schema


def load(contracts_dir: str | Path | None = None, bundled: Path = BUNDLED) -> dict[tuple[str, str], Contract]:
    """Every event type's contract: the imported bundle's where it has one, else the bundled one."""
    imported = Path(contracts_dir) if contracts_dir else None
    found: dict[tuple[str, str], Contract] = {}
    used = 0
    for model, events in catalog.DATA_MODELS.items():
        for event in events:
            name = file_name(model, event)
            if imported is not None and (imported / name).is_file():
                # A team's official files are used as Redox publishes them, relaxed like ours.
                path, schema = imported / name, relax.relax(_read(imported / name))
                used += 1
            elif (bundled / name).is_file():
                path, schema = bundled / name, _read(bundled / name)
            else:
                raise ContractError(f"{bundled / name}: missing; run `make contracts`")
            found[model, event] = Contract(model, event, schema, path)
    if used:
        log.info("contracts: %d event types from the imported bundle in %s", used, imported)
    return found
