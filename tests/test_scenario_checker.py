"""Broken scenario files: each kind gives one line naming file, line and column, through `redox-emulator check`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.cli import main
from emulator.scenarios.checker import ScenarioError, load_text

OK_RULE = "  - name: r\n    when: {data_model: Order, event_type: New}\n    then: {delay: 1}\n"
BROKEN = {  # kind: (file text, line of the problem, words the message must hold)
    "yaml-syntax": ("description: x\nrules: [\n", 3, "YAML syntax error"),
    "unknown-top-key": ("description: x\nrulez: []\n", 2, "unknown key 'rulez'. Did you mean \"rules\"?"),
    "unknown-nested-key": ("description: x\nrules:\n  - name: r\n    when: {evnt_type: New}\n    then: {delay: 1}\n",
                           4, 'Did you mean "event_type"?'),
    "wrong-type": ("description: x\nrules:\n  - name: r\n    then: {respond: {status: \"200\"}}\n", 4,
                   "expected a whole number"),
    "unknown-data-model": ("description: x\nrules:\n  - name: r\n    when: {data_model: Patientadmin}\n"
                           "    then: {delay: 1}\n", 4, 'Did you mean "PatientAdmin"?'),
    "unknown-event-type": ("description: x\nrules:\n  - name: r\n    when: {data_model: Order, event_type: Nw}\n"
                           "    then: {delay: 1}\n", 4, 'unknown EventType \'Nw\' for Order. Did you mean "New"?'),
    "bad-json-path": ("description: x\nrules:\n  - name: r\n    when:\n      json: {Patient.ID: 1}\n"
                      "    then: {delay: 1}\n", 5, "bad JSON path"),
    "unknown-state": ("description: x\nstates: [open, closed]\nrules:\n  - name: r\n    then: {goto: clsed}\n", 5,
                      'unknown state \'clsed\'. Did you mean "closed"?'),
    "missing-description": ("rules: []\n", 1, "missing required key 'description'"),
    "duplicate-key": ("description: x\ndescription: y\n", 2, "duplicate key 'description'"),
    "duplicate-rule": ("description: x\nrules:\n" + OK_RULE + OK_RULE, 6, "used twice"),
    "two-answers": ("description: x\nrules:\n  - name: r\n    then:\n      respond: {status: 500}\n"
                    "      drop_connection: true\n", 6, "one answer"),
    "bad-regex": ("description: x\nrules:\n  - name: r\n    when: {headers: {X-A: {matches: '('}}}\n"
                  "    then: {delay: 1}\n", 4, "bad regular expression"),
    "unknown-push": ("description: x\nrules:\n  - name: r\n    then: {push: [lab]}\n", 4, "no push named 'lab'"),
    "negative-delay": ("description: x\nrules:\n  - name: r\n    then: {delay: -5}\n", 4, "at least 0"),
    "bad-clock-mode": ("description: x\nsetup: {clock: {mode: fast}}\n", 2, "expected one of real, accelerated"),
    "outage-ends-first": ("description: x\noutages: [{from: 60, until: 10}]\n", 2, "ends"),
    "empty-file": ("", 1, "empty"),
    "fhir-destination-data-model-name": (
        "description: x\nsetup:\n  destinations:\n    - id: a\n      name: A\n      url: '{receiver}'\n"
        "      format: fhir\n      subscriptions: {PatientAdmin: all}\n", 8,
        "unknown FHIR notification model 'PatientAdmin'"),
    "fhir-destination-unknown-notification": (
        "description: x\nsetup:\n  destinations:\n    - id: a\n      name: A\n      url: '{receiver}'\n"
        "      format: fhir\n      subscriptions: {FHIR.Message.PatientAdmin: [patient-arived]}\n", 8,
        'Did you mean "patient-arrived"?'),
    "fhir-destination-without-url": ("description: x\nsetup:\n  destinations:\n    - id: a\n      name: A\n"
                                     "      format: fhir\n", 6, "format: fhir is for a webhook destination"),
    "notifications-without-fhir": ("description: x\nsetup:\n  destinations:\n    - id: a\n      name: A\n"
                                   "      url: '{receiver}'\n      notifications: lightweight\n", 7,
                                   "notifications is for a destination with format: fhir"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_file_gives_one_line_naming_file_and_line(kind: str, tmp_path: Path) -> None:
    text, line, words = BROKEN[kind]
    file = tmp_path / f"{kind}.yaml"
    file.write_text(text)
    result = CliRunner().invoke(main, ["check", str(file)])
    assert result.exit_code == 1
    lines = [x for x in result.stdout.splitlines() if x.startswith(str(file))]
    assert lines, result.output
    first = re.match(rf"^{re.escape(str(file))}:(\d+):(\d+): (.*)$", lines[0])
    assert first is not None, lines[0]
    assert int(first.group(1)) == line, lines
    assert words in lines[0]


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = ("description: x\nstates: [a]\nrules:\n  - name: r\n    when: {data_model: Ordr}\n    then: {goto: b}\n"
            "  - name: r\n    then: {goto: a}\n")
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "f.yaml")
    assert [(p.line, p.path[-1]) for p in caught.value.problems] == [(5, "data_model"), (6, "goto"), (7, "name")]


def test_the_library_checks_clean() -> None:
    result = CliRunner().invoke(main, ["check", str(Path(__file__).resolve().parents[1] / "scenarios")])
    assert result.exit_code == 0, result.output
    assert "20 scenario file(s) OK" in result.output


def test_problems_carry_the_json_path() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_text("description: x\npushes:\n  - name: p\n    body: {Meta: {DataModel: Results, EventType: Neww}}\n",
                  "f.yaml")
    assert str(caught.value) == ("f.yaml:4:50: pushes[0].body.Meta.EventType: unknown EventType 'Neww' for Results. "
                                 'Did you mean "New"? Valid: New, NewUnsolicited, Query, QueryResponse')
