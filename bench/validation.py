"""Contract validation time per event: what `POST /endpoint` pays on top of routing (issue 3).

    .venv/bin/python bench/validation.py      (bench/run.py prints the same section)

Times `ContractValidator.problems()` (the call Router.check makes) on bench/new_patient.json (a
typical PatientAdmin.NewPatient, target under 200 us), on the largest payloads the generator makes,
and on the largest real Redox samples when ../shared/redox-reference is there; then one invalid
payload, which also pays for the detailed errors.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator import catalog  # noqa: E402
from emulator.contracts import payloads  # noqa: E402
from emulator.contracts.validator import ContractValidator  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "redox-reference" / "samples"
TARGET_US = 200.0


def per_call_us(validator: ContractValidator, payload: dict[str, Any], runs: int = 2000) -> float:
    model, event = payload["Meta"]["DataModel"], payload["Meta"]["EventType"]
    best = float("inf")
    for _ in range(5):  # best of five: the machine is shared
        start = time.perf_counter()
        for _ in range(runs):
            validator.problems(payload, model, event)
        best = min(best, (time.perf_counter() - start) / runs * 1e6)
    return best


def cases() -> list[tuple[str, dict[str, Any]]]:
    found = [("bench/new_patient.json (typical)", json.loads((ROOT / "bench" / "new_patient.json").read_text()))]
    generated = sorted(((len(json.dumps(p)), f"generated {m}.{e}", p) for m, events in catalog.DATA_MODELS.items()
                        for e in events for p in [payloads.build(m, e, seed=1)]), key=lambda c: -c[0])
    found += [(name, p) for _, name, p in generated[:3]]
    if SAMPLES.is_dir():
        real = sorted(((path.stat().st_size, path) for path in SAMPLES.rglob("*.json")), reverse=True)
        found += [(f"sample {path.parent.name}/{path.name}", json.loads(path.read_text())) for _, path in real[:3]]
    return found


def measure() -> dict[str, Any]:
    validator = ContractValidator(payloads.bundled())
    rows = [{"payload": name, "bytes": len(json.dumps(p)), "us": per_call_us(validator, p)} for name, p in cases()]
    broken = payloads.build("PatientAdmin", "NewPatient", seed=1)
    del broken["Patient"]["Identifiers"]
    rows.append({"payload": "invalid NewPatient (detailed errors)", "bytes": len(json.dumps(broken)),
                 "us": per_call_us(validator, broken, runs=200)})
    return {"rows": rows, "typical_us": rows[0]["us"], "target_us": TARGET_US, "met": rows[0]["us"] < TARGET_US}


def render(result: dict[str, Any]) -> str:
    lines = ["", "", "contract validation per event (redox mode, best of 5):",
             f"  {'payload':72}{'bytes':>9}{'us':>10}"]
    lines += [f"  {r['payload'][:72]:72}{r['bytes']:9,}{r['us']:10.1f}" for r in result["rows"]]
    verdict = "PASS" if result["met"] else "FAIL"
    lines.append(f"  typical PatientAdmin event: {result['typical_us']:.1f} us (goal < {TARGET_US:.0f} us) {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(measure()))
