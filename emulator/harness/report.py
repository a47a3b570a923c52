"""What a harness run tells people and machines: progress lines, the summary, JUnit XML, JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

from emulator.harness.client import ClientSpec
from emulator.harness.runner import RunResult


def progress(result: RunResult, suite: str = "") -> str:
    mark = "SKIP" if result.skipped else "PASS" if result.ok else ("ERROR" if result.error else "FAIL")
    where = f"{suite}/" if suite else ""
    said = [*result.notes, *([result.skipped] if result.skipped else [])]
    notes = f"  [{'; '.join(said)}]" if said else ""
    return f"{mark:5} {where}{result.scenario} ({result.seconds:.1f} s){notes}"


def summary(results: Sequence[tuple[str, RunResult]], seconds: float, client: ClientSpec | None = None) -> str:
    """One screen: each broken contract with the expectation, why, and the journal entries behind it."""
    lines: list[str] = []
    for suite, result in results:
        if result.ok:
            continue
        lines.append(f"\n{'ERROR' if result.error else 'FAIL'} contract {suite + '/' if suite else ''}"
                     f"{result.scenario}  ({result.source})")
        if result.error:
            lines.extend(f"  {line}" for line in result.error.splitlines()[:6])
        for verdict in result.failed:
            lines.append(f"  x {verdict.expectation}: {verdict.message}")
            lines.extend(f"      {line}" for line in [v for v in verdict.view()["entries"]][:5])
        if result.workdir:
            lines.append(f"  client output: {result.workdir}")
    skipped = sum(bool(r.skipped) for _, r in results)
    passed = sum(r.ok for _, r in results) - skipped
    by = f" by {client.name}" if client is not None else ""
    broken = len(results) - passed - skipped
    also = f", {skipped} skipped (an API the client does not use)" if skipped else ""
    lines.append(f"\n{passed} of {len(results) - skipped} contract(s) kept{by}, {broken} broken{also}, "
                 f"in {seconds:.1f} s")
    return "\n".join(lines).lstrip("\n")


def client_view(client: ClientSpec) -> dict[str, str]:
    return {"name": client.name, "description": client.description, "source": client.source}


def write_json(path: Path, results: Sequence[tuple[str, RunResult]], seconds: float,
               client: ClientSpec | None = None) -> None:
    data = {"ok": all(r.ok for _, r in results), "seconds": round(seconds, 3),
            **({"client": client_view(client)} if client is not None else {}),
            "contracts": [{"suite": suite, **r.view()} for suite, r in results]}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_junit(path: Path, results: Sequence[tuple[str, RunResult]], seconds: float,
                client: ClientSpec | None = None) -> None:
    """One testsuite per contract suite, one testcase per expectation (a broken run: one error case);
    the client's name, description and file as each testsuite's properties."""
    name = "redox-contracts" if client is None else f"redox-contracts: {client.name}"
    root = ET.Element("testsuites", name=name, time=f"{seconds:.3f}")
    by_suite: dict[str, list[RunResult]] = {}
    for suite, result in results:
        by_suite.setdefault(suite or "scenarios", []).append(result)
    for suite, runs in by_suite.items():
        element = ET.SubElement(root, "testsuite", name=suite)
        if client is not None:
            properties = ET.SubElement(element, "properties")
            for key, value in client_view(client).items():
                ET.SubElement(properties, "property", name=f"client.{key}", value=value)
        tests = failures = errors = 0
        for run in runs:
            if run.skipped:
                case = ET.SubElement(element, "testcase", classname=f"{suite}.{run.scenario}", name="run", time="0")
                ET.SubElement(case, "skipped", message=run.skipped)
                tests += 1
                continue
            if run.error:
                errors += tests_one(element, suite, run.scenario, "run", run.seconds, error=run.error)
                tests += 1
                continue
            for verdict in run.verdicts:
                tests += 1
                failure = None if verdict.ok else verdict.message + "\n" + "\n".join(verdict.view()["entries"])
                failures += tests_one(element, suite, run.scenario, verdict.expectation, 0.0, failure=failure)
        element.set("tests", str(tests))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def tests_one(parent: ET.Element, suite: str, scenario: str, name: str, seconds: float, *,
              failure: str | None = None, error: str | None = None) -> int:
    case = ET.SubElement(parent, "testcase", classname=f"{suite}.{scenario}", name=name, time=f"{seconds:.3f}")
    if failure is not None:
        ET.SubElement(case, "failure", message=failure.splitlines()[0]).text = failure
    if error is not None:
        ET.SubElement(case, "error", message=error.splitlines()[0]).text = error
    return int(failure is not None or error is not None)
