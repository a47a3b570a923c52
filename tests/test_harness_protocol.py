"""The client protocol as a stranger meets it: client.yaml's keys, `test --explain`, the probe schema,
and what the report says when a probe lacks a key (docs/clients.md)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml
from click.testing import CliRunner

from emulator.cli import main
from emulator.harness import client as client_module
from emulator.harness import explain, probe, suites
from emulator.harness.expectations import Evidence, evaluate_all
from emulator.scenarios import checker, jsonpath

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "clients.md"
PYTHON_CLIENT = ROOT / "tests" / "clients" / "redox_client.py"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # contracts/suites and the probe schema are found from the clone's top


def every_contract() -> list[tuple[str, Path]]:
    return suites.resolve([], ROOT / "scenarios", ROOT / "contracts" / "suites")


def probe_paths_as_written(path: Path) -> set[str]:
    """The probe keys read straight from the YAML, apart from the model and from explain."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {key for e in raw.get("expectations") or [] for key in (e.get("probe") or {})}


def explain_output(*names: str) -> str:
    result = CliRunner().invoke(main, ["test", "--explain", *names])
    assert result.exit_code == 0, result.output
    return result.output


def printed_keys(text: str) -> dict[str, set[str]]:
    """contract -> the probe keys `--explain` lists under it."""
    keys: dict[str, set[str]] = {}
    contract = None
    for line in text.splitlines():
        found = re.match(r"  contract (\S+) ", line)
        if found:
            contract = found.group(1)
            keys[contract] = set()
        elif contract and re.match(r"      \$", line):
            keys[contract].add(line.split(" = ")[0].strip())
    return keys


# ---- client.yaml ---------------------------------------------------------------------------------
def test_client_yaml_takes_a_name_and_a_description(tmp_path: Path) -> None:
    file = tmp_path / "billing.yaml"
    file.write_text("name: billing (node)\ndescription: The billing team's integration\nsend: node app.js send\n")
    spec = client_module.load(file)
    assert (spec.name, spec.description) == ("billing (node)", "The billing team's integration")
    (tmp_path / "plain.yaml").write_text("send: ./app send\n")
    assert client_module.load(tmp_path / "plain.yaml").name == "plain"


def test_an_unknown_client_key_is_named_with_a_did_you_mean(tmp_path: Path) -> None:
    file = tmp_path / "client.yaml"
    file.write_text("nmae: billing\nsend: ./app send\nprobes: ./app probe\n")
    with pytest.raises(client_module.ClientError) as error:
        client_module.load(file)
    text = str(error.value)
    assert "client.yaml:1:1: nmae: unknown key 'nmae'. Did you mean \"name\"?" in text
    assert "client.yaml:3:1: probes: unknown key 'probes'. Did you mean \"probe\"?" in text
    assert "docs/clients.md#clientyaml" in text


def test_a_description_must_be_text(tmp_path: Path) -> None:
    file = tmp_path / "client.yaml"
    file.write_text("description: [a, list]\nsend: ./app send\n")
    with pytest.raises(client_module.ClientError, match="description: expected text"):
        client_module.load(file)


def test_apis_names_redox_apis(tmp_path: Path) -> None:
    file = tmp_path / "client.yaml"
    file.write_text("send: ./app send\napis: [data-model, fihr]\n")
    with pytest.raises(client_module.ClientError, match=r"client.yaml:2:\d+: apis\[1\]: unknown API 'fihr'. "
                                                        r"Did you mean \"fhir\"\?"):
        client_module.load(file)
    file.write_text("send: ./app send\napis: fhir\n")
    with pytest.raises(client_module.ClientError, match="apis: expected a list of Redox APIs"):
        client_module.load(file)
    file.write_text("send: ./app send\n")
    assert client_module.load(file).apis == ("data-model",)


def test_a_contract_of_another_api_is_skipped_in_every_report(tmp_path: Path) -> None:
    """A data-model client and the fhir suite: skipped, exit 0, SKIP lines, JUnit <skipped>, JSON `skipped`."""
    client = tmp_path / "client.yaml"
    client.write_text(f"send: {sys.executable} {PYTHON_CLIENT} send\ntimeout: 5\n")
    result = CliRunner().invoke(main, ["test", "--client", str(client), "fhir-paging", "send-basics", "--json",
                                       str(tmp_path / "r.json"), "--junitxml", str(tmp_path / "r.xml")])
    assert result.exit_code == 0, result.output
    assert "SKIP  fhir-paging" in result.output and "PASS  send-basics" in result.output
    assert "1 of 1 contract(s) kept by client, 0 broken, 1 skipped" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    skipped = [c for c in report["contracts"] if c.get("skipped")]
    assert [c["scenario"] for c in skipped] == ["fhir-paging"] and "client.yaml `apis`" in skipped[0]["skipped"]
    cases = list(ET.parse(tmp_path / "r.xml").getroot().iter("testcase"))
    assert [c.get("classname") for c in cases if c.find("skipped") is not None] == ["scenarios.fhir-paging"]


def test_test_without_a_client_points_to_explain() -> None:
    result = CliRunner().invoke(main, ["test", "redelivery"])
    assert result.exit_code == 2
    assert "--client" in result.output and "--explain" in result.output


# ---- --explain -----------------------------------------------------------------------------------
def test_explain_lists_exactly_the_probe_keys_each_contract_reads() -> None:
    listed = printed_keys(explain_output())
    contracts = every_contract()
    assert set(listed) == {checker.load_file(p).name for _, p in contracts}
    for _, path in contracts:
        assert listed[checker.load_file(path).name] == probe_paths_as_written(path), path
    assert listed["redelivery"] == {"$.results.ORD-1001.count"}  # the key the Node author could not find


def test_explain_of_one_suite_shows_only_its_contracts_with_what_to_do() -> None:
    text = explain_output("receive")
    assert set(printed_keys(text)) == set(suites.load_all(ROOT / "contracts" / "suites")["receive"].scenarios)
    section = text.split("contract redelivery ")[1].split("\n  contract ")[0]
    assert "answer push lab-result (Results.New) with 2xx" in section
    assert "same Meta.Logs[0].ID" in section
    assert 'Example probe output: {"results": {"ORD-1001": {"count": 1}}}' in section


def test_explain_of_a_scenario_names_its_suite_and_an_unknown_name_gets_a_did_you_mean() -> None:
    assert "suite resilience:" in explain_output("rate-limiting")
    result = CliRunner().invoke(main, ["test", "--explain", "redelivry"])
    assert result.exit_code == 1
    assert 'Did you mean "redelivery"?' in result.output


@pytest.mark.parametrize("path", [p for _, p in every_contract()], ids=lambda p: p.stem)
def test_the_example_output_keeps_the_contracts_probe_expectations_and_the_schema(path: Path) -> None:
    scenario = checker.load_file(path)
    keys = explain.probe_keys(scenario)
    example = explain.example_output(keys)
    evidence = Evidence(scenario, [], None, probe=example)  # type: ignore[arg-type]  # probe verdicts need no validator
    assert all(v.ok for v in evaluate_all(evidence) if v.kind == "probe")
    assert probe.problems(example) == []


# ---- the schema ------------------------------------------------------------------------------------
def schema_at(schema: dict[str, Any], steps: tuple[jsonpath.Step, ...]) -> dict[str, Any] | None:
    """The subschema a path reaches by named properties or additionalProperties; None if it says nothing."""
    here: dict[str, Any] | None = schema
    for step in steps:
        if here is None:
            return None
        named = here.get("properties") or {}
        extra = here.get("additionalProperties")
        here = named.get(step) if step in named else extra if isinstance(extra, dict) else None
    return here


@pytest.mark.parametrize("key", [k for _, p in every_contract() for k in explain.probe_keys(checker.load_file(p))],
                         ids=lambda k: k.path)
def test_the_schema_describes_every_key_an_expectation_reads(key: explain.ProbeKey) -> None:
    loaded = probe.schema()
    assert loaded is not None
    described = schema_at(loaded, key.steps)
    assert described is not None and described.get("description"), key.path
    wrong = {"integer": "1", "string": 1, "boolean": "true"}[described["type"]]
    document = explain.example_output([key])
    container = jsonpath.values(document, key.steps[:-1])[0]
    container[key.steps[-1]] = wrong
    assert probe.problems(document) == [f"{key.path}: {wrong!r} is not of type '{described['type']}'"]


def test_the_schema_allows_keys_of_a_clients_own() -> None:
    assert probe.problems({"sent": [["PatientAdmin.NewPatient", 200]], "results": {"ORD-1": {"count": 2}}}) == []
    assert probe.problems([1, 2]) == ["$: [1, 2] is not of type 'object'"]


# ---- a probe that lacks a key ------------------------------------------------------------------------
@pytest.mark.parametrize(("output", "where"), [
    ({}, "the output has no 'results' key"),
    ({"results": {"ORD-9": {"count": 1}}}, "the output has $.results but no 'ORD-1001' in it"),
    ({"results": {"ORD-1001": {"filed": 1}}}, "the output has $.results.ORD-1001 but no 'count' in it"),
    ([], "the output is not a JSON object (a list)"),
])
def test_a_missing_key_is_named_with_the_contract_and_the_docs(output: Any, where: str) -> None:
    scenario = checker.load_file(ROOT / "scenarios" / "redelivery.yaml")
    evidence = Evidence(scenario, [], None, probe=output)  # type: ignore[arg-type]
    (verdict,) = [v for v in evaluate_all(evidence) if v.kind == "probe"]
    assert not verdict.ok
    assert verdict.message.startswith(f"missing key $.results.ORD-1001.count ({where}); contract redelivery reads it, "
                                      "expecting 1; see docs/clients.md#redelivery and "
                                      "`redox-emulator test --explain redelivery`")


def test_the_report_of_a_run_names_the_missing_key_and_the_client(tmp_path: Path) -> None:
    """End to end: the reference Python client with a probe that prints {}, through the real command."""
    run = f"{sys.executable} {PYTHON_CLIENT}"
    client = tmp_path / "client.yaml"
    client.write_text(f"name: empty probe\ndescription: prints nothing it processed\nsend: {run} send\n"
                      f"serve: {run} serve --port {{port}}\nwebhook_url: http://127.0.0.1:{{port}}/redox\n"
                      f"ready_url: http://127.0.0.1:{{port}}/health\nprobe: echo '{{}}'\ntimeout: 5\n")
    result = CliRunner().invoke(main, ["test", "--client", str(client), "redelivery", "--json",
                                       str(tmp_path / "r.json"), "--junitxml", str(tmp_path / "r.xml")])
    assert result.exit_code == 1, result.output
    assert "x files-once: missing key $.results.ORD-1001.count (the output has no 'results' key); contract " \
           "redelivery reads it" in result.output
    assert "see docs/clients.md#redelivery and `redox-emulator test --explain redelivery`" in result.output
    assert "0 of 1 contract(s) kept by empty probe" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["client"] == {"name": "empty probe", "description": "prints nothing it processed",
                                "source": str(client)}
    (failed,) = [e for e in report["contracts"][0]["expectations"] if not e["ok"]]
    assert "missing key $.results.ORD-1001.count" in failed["message"]
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["client.name"] == "empty probe"


GENERATED = "<!-- generated: redox-emulator test --explain --markdown -->"


def test_docs_clients_md_holds_exactly_what_explain_generates() -> None:
    """The per-contract part of the document is the harness's own reading of the scenarios, not prose
    that can drift: regenerate it with `redox-emulator test --explain --markdown` after changing one."""
    text = DOCS.read_text(encoding="utf-8")
    assert GENERATED in text
    result = CliRunner().invoke(main, ["test", "--explain", "--markdown"])
    assert result.exit_code == 0, result.output
    assert text.split(GENERATED, 1)[1].strip() == result.output.strip(), \
        "docs/clients.md is out of date: rerun `redox-emulator test --explain --markdown` into it"


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in text.splitlines() if line.startswith("#")}


def test_every_link_a_report_gives_lands_on_a_section() -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = anchors(text)
    assert {"clientyaml", "the-probe"} <= found
    for _, path in every_contract():
        name = checker.load_file(path).name
        assert name in found, name  # probe.documented(name) links to docs/clients.md#<name>
        assert f"{probe.DOCS}#{name} " in probe.documented(name)


@pytest.mark.parametrize("path", [p for _, p in every_contract()], ids=lambda p: p.stem)
def test_each_contracts_section_lists_every_probe_key_it_reads(path: Path) -> None:
    section = DOCS.read_text(encoding="utf-8").split(f"\n#### {path.stem}\n", 1)[1].split("\n#### ", 1)[0]
    for key in probe_paths_as_written(path):
        assert f"`{key}`" in section, key
    if not probe_paths_as_written(path):
        assert "Probe keys: none" in section


def test_every_client_yaml_key_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("## client.yaml", 1)[1].split("```", 2)[1]
    assert {line.split(":", 1)[0] for line in block.splitlines() if ":" in line} >= set(client_module.KEYS)
