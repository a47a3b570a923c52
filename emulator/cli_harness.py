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
@click.option("--client", "client_file", required=True, type=click.Path(dir_okay=False),
              help="The client description (redox-client.yaml).")
@click.option("--junitxml", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Scenarios run at once, each with its own emulator.")
@click.option("--scenarios-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("scenarios"),
              show_default=True, help="Where scenario names are looked up.")
@click.option("--keep", is_flag=True, help="Keep every run's work directory (client output), not only failed ones.")
def test(names: tuple[str, ...], client_file: str, junitxml: Path | None, json_file: Path | None, jobs: int,
         scenarios_dir: Path, keep: bool) -> None:
    """Run a client against contract suites or scenarios (default: every suite); exit 1 if any contract breaks."""
    from emulator.harness import client as client_module
    from emulator.harness import report, suites
    from emulator.harness.runner import Harness, RunResult

    try:
        client = client_module.load(client_file)
        chosen = suites.resolve(list(names), scenarios_dir)
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    suite_of = {path.stem: suite for suite, path in chosen}
    click.echo(f"{len(chosen)} contract(s) against {client_file}, {jobs} at a time", err=True)

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
    click.echo(report.summary(paired, seconds))
    if junitxml:
        report.write_junit(junitxml, paired, seconds)
    if json_file:
        report.write_json(json_file, paired, seconds)
    sys.exit(0 if all(r.ok for r in results) else 1)
