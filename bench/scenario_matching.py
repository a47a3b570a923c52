"""What the scenario engine adds to a request with 1,000 rules loaded: matching, in process.

    .venv/bin/python bench/scenario_matching.py   (also run, and printed, by `make bench`)

Times `Seen.of` + `ScenarioEngine.decide` (everything the engine does per request before carrying out
a rule's actions) for a request that the last of 1,000 rules matches, one that matches none (the
near-miss report included), and one whose DataModel no rule names. Target: under 1 ms each.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.sandbox import Sandbox
from emulator.scenarios.checker import load_text
from emulator.scenarios.matching import Seen
from emulator.settings import Settings

RULES = 1000
TARGET_US = 1000.0
HEADERS = {"authorization": "Bearer x", "content-type": "application/json", "x-request-id": "bench"}


def scenario_text(rules: int = RULES) -> str:
    """Rules spread over data models and event types, as a large library would be; JSON path and header
    matchers on each, so that the candidates the index returns still cost real work."""
    models = [("Order", "New"), ("Results", "New"), ("PatientAdmin", "NewPatient"), ("Scheduling", "New"),
              ("PatientSearch", "Query")]
    lines = ["description: bench", "rules:"]
    for i in range(rules):
        model, event = models[i % len(models)]
        lines.append(f"  - {{name: r{i}, when: {{path: /endpoint, data_model: {model}, event_type: {event}, "
                     f"json: {{\"$.Patient.Identifiers[0].ID\": \"{i}\"}}, headers: {{X-Request-Id: bench}}}}, "
                     f"then: {{delay: 1}}}}")
    return "\n".join(lines) + "\n"


def _payload(model: str, event: str, patient_id: str) -> dict[str, Any]:
    return {"Meta": {"DataModel": model, "EventType": event}, "Patient": {"Identifiers": [{"ID": patient_id}]}}


def measure(rules: int = RULES, rounds: int = 2000) -> dict[str, float]:
    """Microseconds per request for each case."""
    sandbox = Sandbox(Settings(db=":memory:"))
    try:
        started = time.perf_counter()
        scenario = load_text(scenario_text(rules), "bench.yaml", name="bench")
        load_ms = (time.perf_counter() - started) * 1000
        sandbox.scenarios.activate(scenario)
        last = rules - 1
        cases = {
            f"matched by rule {last + 1} of {rules}": _payload("PatientSearch", "Query", str(last)),
            "matched by none (near misses listed)": _payload("Order", "New", "no-such-id"),
            "a DataModel no rule names": _payload("Notes", "New", "1"),
        }
        figures = {"load_ms": load_ms}
        engine = sandbox.scenarios
        for name, payload in cases.items():
            started = time.perf_counter()
            for _ in range(rounds):
                engine.decide(Seen.of("POST", "/endpoint", HEADERS, payload, False))
            figures[name] = (time.perf_counter() - started) / rounds * 1e6
        return figures
    finally:
        sandbox.close()


def render(figures: dict[str, float]) -> str:
    out = [f"scenario matching, {RULES:,} rules loaded (checked and indexed in {figures['load_ms']:.0f} ms):"]
    for name, micros in figures.items():
        if name != "load_ms":
            verdict = "met" if micros < TARGET_US else "NOT MET"
            out.append(f"  {name:<42} {micros:8.1f} us per request (target {TARGET_US:.0f} us: {verdict})")
    return "\n".join(out)


def targets(figures: dict[str, float]) -> list[tuple[str, str, str, bool]]:
    """(what, value, goal, met) rows for `make bench`'s summary."""
    return [(f"matching, {name}"[:38], f"{micros:.1f} us", f"< {TARGET_US:.0f} us", micros < TARGET_US)
            for name, micros in figures.items() if name != "load_ms"]


def met(figures: dict[str, float]) -> bool:
    return all(v < TARGET_US for k, v in figures.items() if k != "load_ms")


if __name__ == "__main__":
    result = measure()
    print(render(result))
    sys.exit(0 if met(result) else 1)
