"""`redox-emulator contracts import schemas.zip`: a team's official Redox schema bundle, kept for `serve`.

The bundle Redox's developer portal hands out is a zip of JSON Schema (draft-04) files, one per data
model and event type. Folder layout and file naming vary between downloads, so a file is matched to
an event type by its name: the file name, or its folder and file name together, with case and
punctuation ignored, must end with the DataModel and EventType (`PatientAdmin/NewPatient.json`,
`patientadmin-newpatient.json`, `ClinicalSummary.PatientQuery.json`). Each is stored in
`contracts_dir` under our own name (schemas.file_name), replacing any earlier import.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import jsonschema_rs

from emulator import catalog
from emulator.contracts import relax
from emulator.contracts.schemas import ContractError, file_name

MANIFEST = "bundle.json"
MAX_FILE = 20 * 1024 * 1024  # no single schema is this large; a bigger member is not a schema


@dataclass(slots=True)
class ImportReport:
    imported: dict[tuple[str, str], str] = field(default_factory=dict)  # event type -> member name
    unmatched: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_KEYS = sorted(((_squash(model + event), (model, event)) for model, events in catalog.DATA_MODELS.items()
                for event in events), key=lambda k: -len(k[0]))  # longest first: Order.QueryResponse before Query


def match(member: str) -> tuple[str, str] | None:
    """The event type a bundle member is the schema of, from its name; None if it names none."""
    path = PurePosixPath(member)
    candidates = [_squash(path.stem), _squash(path.parent.name + path.stem)]
    for squashed, key in _KEYS:
        if any(c.endswith(squashed) for c in candidates):
            return key
    return None


def _check_schema(member: str, schema: Any) -> None:
    if not isinstance(schema, dict):
        raise ContractError(f"{member}: a schema must be a JSON object, found {type(schema).__name__}")
    try:
        jsonschema.Draft4Validator.check_schema(schema)
        jsonschema_rs.Draft7Validator(relax.relax(schema))  # how ContractValidator compiles it
    except (jsonschema.SchemaError, ValueError) as exc:
        raise ContractError(f"{member}: not a usable JSON Schema: {exc}") from None


def import_zip(bundle: Path, contracts_dir: Path,
               progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Read, check and store every schema in `bundle`; nothing is written unless all of it is usable.

    `progress(done, total)` is told after each member of the zip (the CLI's progress bar)."""
    report = ImportReport()
    found: dict[tuple[str, str], Any] = {}
    try:
        with zipfile.ZipFile(bundle) as archive:
            members = archive.infolist()
            for done, info in enumerate(members, 1):
                if progress is not None:
                    progress(done, len(members))
                if info.is_dir() or not info.filename.lower().endswith(".json") or "__MACOSX" in info.filename:
                    continue
                key = match(info.filename)
                if key is None:
                    report.unmatched.append(info.filename)
                    continue
                if info.file_size > MAX_FILE:
                    raise ContractError(f"{bundle}: {info.filename} is {info.file_size} bytes: not a schema")
                try:
                    schema = json.loads(archive.read(info))
                except ValueError as exc:
                    raise ContractError(f"{bundle}: {info.filename}: not JSON ({exc})") from None
                _check_schema(f"{bundle}: {info.filename}", schema)
                if key in found:
                    raise ContractError(f"{bundle}: {info.filename} and {report.imported[key]} are both "
                                        f"{key[0]}.{key[1]}")
                found[key], report.imported[key] = schema, info.filename
    except (zipfile.BadZipFile, OSError) as exc:
        raise ContractError(f"{bundle}: not a readable zip file ({exc})") from None
    if not found:
        raise ContractError(f"{bundle}: no file in it is named after a Redox DataModel and EventType")
    contracts_dir.mkdir(parents=True, exist_ok=True)
    for old in contracts_dir.glob("*.json"):
        old.unlink()  # one bundle at a time: a file the new bundle lacks falls back to the bundled one
    for (model, event), schema in found.items():
        (contracts_dir / file_name(model, event)).write_text(json.dumps(schema, indent=1), encoding="utf-8")
    (contracts_dir / MANIFEST).write_text(json.dumps({"source": str(bundle), "files": {
        file_name(m, e): member for (m, e), member in sorted(report.imported.items())}}, indent=1), encoding="utf-8")
    report.missing = [(m, e) for m, events in catalog.DATA_MODELS.items() for e in events if (m, e) not in found]
    return report
