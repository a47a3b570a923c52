"""Real Redox payloads in ../shared/redox-reference keep their contracts (skipped when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator import catalog
from emulator.contracts import payloads
from emulator.contracts.validator import ContractValidator
from tests.conftest import SHARED

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/redox-reference is not here")
SAMPLES = sorted((SHARED / "samples").rglob("*.json")) if SHARED.is_dir() else []


@pytest.fixture(scope="module")
def validator() -> ContractValidator:
    return ContractValidator(payloads.bundled())


@pytest.mark.parametrize("path", SAMPLES, ids=[str(p.relative_to(SHARED / "samples")) for p in SAMPLES])
def test_every_real_sample_keeps_its_contract(validator: ContractValidator, path: Path) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    model, event = payload["Meta"]["DataModel"], payload["Meta"]["EventType"]
    assert catalog.is_known(model, event)
    assert validator.problems(payload, model, event) == []


def test_samples_are_all_there() -> None:
    assert len(SAMPLES) >= 180  # 111 docs samples, 58 sandbox samples, 12 real responses
