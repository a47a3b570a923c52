"""The contract files: where they are, what they are called, and loading them.

Bundled contracts live in `contracts/schemas/` at the top of the repository, one file per event
type, `<DataModel without spaces>.<EventType>.json`. A team's imported bundle (see bundle.py) sits
in `contracts_dir` with the same names and wins over the bundled file of the same event type.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from emulator import catalog, resources
from emulator.contracts import relax
from emulator.errors import LoadError

log = logging.getLogger(__name__)

BUNDLED = resources.CONTRACTS / "schemas"


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
        schema = orjson.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: cannot read the contract ({exc})") from exc
    if not isinstance(schema, dict):
        raise ContractError(f"{path}: a contract must be a JSON object, found {type(schema).__name__}")
    return schema


def load(contracts_dir: str | Path | None = None, bundled: Path = BUNDLED) -> Contracts:
    """Every event type's contract: the imported bundle's where it has one, else the bundled one.

    Shared by the whole process for the same files (a fresh sandbox costs no parsing); an import
    that changes the bundle's files is seen by the next call."""
    imported = Path(contracts_dir) if contracts_dir else None
    key = (str(imported), str(bundled), _fingerprint(imported))
    with _LOCK:
        found = _LOADED.get(key)
        if found is None:
            found = _LOADED[key] = _load(imported, bundled)
        return found


class Contracts(Mapping[tuple[str, str], Contract]):
    """(DataModel, EventType) -> Contract, each bundled file parsed on first use and then kept.

    Parsed, the 111 bundled schemas hold about 14 MB; a fresh emulator (one per test) needs the few
    event types its test sends, so the rest are never read. Read-only, and shared by every sandbox
    of the process: the validators compiled from a schema are shared by its identity."""

    def __init__(self, files: dict[tuple[str, str], Path], ready: dict[tuple[str, str], Contract]) -> None:
        self._files = files  # every event type's file, checked to exist
        self._ready = ready  # those parsed so far (an imported bundle's: all, at load)
        self._lock = threading.Lock()

    def __getitem__(self, key: tuple[str, str]) -> Contract:
        found = self._ready.get(key)
        if found is None:
            path = self._files[key]  # KeyError: not an event type
            with self._lock:
                found = self._ready.get(key)
                if found is None:
                    found = self._ready[key] = Contract(key[0], key[1], _read(path), path)
        return found

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


_LOADED: dict[tuple[str, str, tuple[tuple[str, int], ...]], Contracts] = {}
_LOCK = threading.Lock()


def _fingerprint(imported: Path | None) -> tuple[tuple[str, int], ...]:
    if imported is None or not imported.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in imported.glob("*.json")))


def _load(imported: Path | None, bundled: Path) -> Contracts:
    files: dict[tuple[str, str], Path] = {}
    ready: dict[tuple[str, str], Contract] = {}
    for model, events in catalog.DATA_MODELS.items():
        for event in events:
            name = file_name(model, event)
            if imported is not None and (imported / name).is_file():
                # A team's official files are used as Redox publishes them, relaxed like ours; read
                # now, so that a broken one stops the start rather than a request.
                path = files[model, event] = imported / name
                ready[model, event] = Contract(model, event, relax.relax(_read(path)), path)
            elif (bundled / name).is_file():
                files[model, event] = bundled / name  # ours, generated: read on first use
            else:
                raise ContractError(f"{bundled / name}: missing; run `make contracts`")
    if ready:
        log.info("contracts: %d event types from the imported bundle in %s", len(ready), imported)
    return Contracts(files, ready)
