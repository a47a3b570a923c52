"""`redox-emulator test`: the contract-test harness's command line (see emulator/harness/)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from emulator.errors import LoadError


@click.command("test")
@click.argument("names", nargs=-1, metavar="[SUITES_OR_SCENARIOS]...")
@click.option("--client", "client_file", type=click.Path(dir_okay=False),
              help="The client description (redox-client.yaml; docs/clients.md). Required unless --explain.")
@click.option("--explain", is_flag=True,
              help="Print what each contract asks of a client (what happens, what to do, the probe keys it reads) "
                   "and exit; runs nothing.")
@click.option("--markdown", is_flag=True, help="With --explain: as Markdown (the contracts part of docs/clients.md).")
@click.option("--junitxml", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Scenarios run at once, each with its own emulator.")
@click.option("--scenarios-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("scenarios"),
              show_default=True, help="Where scenario names are looked up.")
@click.option("--keep", is_flag=True, help="Keep every run's work directory (client output), not only failed ones.")
def test(names: tuple[str, ...], client_file: str | None, explain: bool, markdown: bool, junitxml: Path | None,
         json_file: Path | None, jobs: int, scenarios_dir: Path, keep: bool) -> None:
    """Run a client against contract suites or scenarios (default: every suite); exit 1 if any contract breaks.

    With --explain, print what the named suites or scenarios (default: all) ask of a client instead."""
    from emulator.harness import client as client_module
    from emulator.harness import report, suites
    from emulator.harness.runner import Harness, RunResult

    if explain:
        explain_contracts(names, scenarios_dir, markdown=markdown)
        return
    if client_file is None:
        raise click.UsageError("Missing option '--client' (a client description; see docs/clients.md), "
                               "or --explain to read what the contracts ask.")
    try:
        client = client_module.load(client_file)
        chosen = suites.resolve(list(names), scenarios_dir)
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    suite_of = {path.stem: suite for suite, path in chosen}
    click.echo(f"{len(chosen)} contract(s) against {client.name} ({client_file}), {jobs} at a time", err=True)

    def listener(event: str, scenario: str, result: RunResult | None) -> None:
        if event == "done" and result is not None:
            click.echo(report.progress(result, suite_of.get(scenario, "")))

    def terminate(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    started = time.monotonic()
    harness = Harness(client, jobs=jobs, listener=listener, keep=keep)
    try:
        results = harness.run([path for _, path in chosen])
    except KeyboardInterrupt:
        click.echo("interrupted: every client process stopped", err=True)
        sys.exit(130)
    seconds = time.monotonic() - started
    paired = [(suite, result) for (suite, _), result in zip(chosen, results, strict=True)]
    click.echo(report.summary(paired, seconds, client))
    if junitxml:
        report.write_junit(junitxml, paired, seconds, client)
    if json_file:
        report.write_json(json_file, paired, seconds, client)
    sys.exit(0 if all(r.ok for r in results) else 1)


def explain_contracts(names: tuple[str, ...], scenarios_dir: Path, *, markdown: bool = False) -> None:
    from emulator.harness import explain, suites
    from emulator.scenarios import checker

    try:
        chosen = suites.resolve(list(names), scenarios_dir)
        every = suites.load_all()
        home = {scenario: suite.name for suite in every.values() for scenario in suite.scenarios}
        contracts = [(suite or home.get(path.stem, ""), checker.load_file(path)) for suite, path in chosen]
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    draw = explain.markdown if markdown else explain.render
    click.echo(draw(contracts, {name: s.description for name, s in every.items()}), nl=False)
