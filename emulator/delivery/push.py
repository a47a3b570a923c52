"""Events for `POST /__emulator/push` and `redox-emulator push`: a given payload, or one the EHR builds.

`generate` builds valid, realistic events (the contracts' payload generator) about a patient of the
live synthetic EHR: the one named by MRN, or one drawn by the seeded generator.

`--set Patient.Demographics.FirstName=Ann` style overrides go through `set_path`; a value that
parses as JSON is used as JSON (`Meta.Test=false`, `Patient.Identifiers[0].ID="123"`).
"""

from __future__ import annotations

import copy
import random
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from emulator import catalog
from emulator.clock import Clock
from emulator.contracts import payloads
from emulator.ehr import SyntheticEHR
from emulator.errors import ControlError

MAX_COUNT = 100_000
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def events(data_model: str, event_type: str, payload: dict[str, Any], count: int = 1,
           overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`count` copies of `payload` as a `data_model`.`event_type` event, each with the overrides applied."""
    _check(data_model, event_type, count)
    base = copy.deepcopy(payload)
    meta = base.get("Meta")
    base["Meta"] = {**(meta if isinstance(meta, dict) else {}), "DataModel": data_model, "EventType": event_type}
    for path, value in (overrides or {}).items():
        set_path(base, path, value)
    return [copy.deepcopy(base) for _ in range(count)]


def generate(ehr: SyntheticEHR, clock: Clock, data_model: str, event_type: str, rng: random.Random,
             count: int = 1, mrn: str | None = None, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`count` generated events about the EHR's patient `mrn` (or one drawn from the EHR by `rng`)."""
    _check(data_model, event_type, count)
    patients = ehr.state.patients
    if mrn is not None:
        found = patients.find([(mrn, None)])
        if not found:
            raise ControlError(f"no patient with identifier {mrn!r} in the synthetic EHR", status=404)
        patient = found[0]
    else:
        patient = rng.choice(list(patients.active()))
    now = datetime.fromtimestamp(clock.now(), UTC)
    built = []
    for _ in range(count):
        event = payloads.build(data_model, event_type, patient=patient, rng=rng, now=now)
        for path, value in (overrides or {}).items():
            set_path(event, path, value)
        built.append(event)
    return built


def _check(data_model: str, event_type: str, count: int) -> None:
    if not catalog.is_known(data_model, event_type):
        raise ControlError(f"unknown event type {data_model}.{event_type}."
                           f"{catalog.did_you_mean(event_type, catalog.DATA_MODELS.get(data_model, ()))}"
                           if catalog.is_model(data_model) else
                           f"unknown DataModel {data_model!r}.{catalog.did_you_mean(data_model, catalog.DATA_MODELS)}")
    if not 1 <= count <= MAX_COUNT:
        raise ControlError(f"count must be between 1 and {MAX_COUNT}, found {count}")


def parse_value(text: str) -> Any:
    """A `--set` value: JSON when it is JSON, else the text itself."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def set_path(document: dict[str, Any], path: str, value: Any) -> None:
    """Set `A.B[0].C` in a JSON document, creating objects on the way (lists must exist)."""
    steps = _steps(path)
    node: Any = document
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise ControlError(f"set {path}: no element [{step}] there")
            if last:
                node[step] = value
            else:
                node = node[step]
            continue
        if not isinstance(node, dict):
            raise ControlError(f"set {path}: {step!r} is inside something that is not an object")
        if last:
            node[step] = value
        else:
            if not isinstance(node.get(step), dict | list):
                node[step] = {}
            node = node[step]


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    position = 0
    for match in _STEP.finditer(path):
        if match.start() != position and path[position:match.start()] != ".":
            break
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not steps or position != len(path):
        raise ControlError(f"set: {path!r} is not a path like Patient.Identifiers[0].ID")
    return steps
