"""`redox-emulator record` (a recording proxy in front of an upstream) and `redox-emulator import`
(VCR cassettes and HAR files): both write a scenario file that `redox-emulator check` accepts."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from emulator import settings as settings_module
from emulator.errors import LoadError


@click.command()
@click.option("--upstream", required=True, help="Base URL requests are forwarded to (https://api.redoxengine.com).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Scenario file to write on stop (default scenarios/recorded-YYYYmmdd-HHMMSS.yaml).")
@click.option("--webhook-url", help="Your app's receiver: deliveries the upstream makes to "
                                    "/__emulator/record/webhook go on to it and become the file's pushes.")
@click.option("--timeout", type=float, default=125.0, show_default=True,
              help="Seconds to wait for the upstream before answering 504.")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8787; 0 for a free one).")
@click.option("--db", help="SQLite log store of the journal (default .emulator/emulator.db).")
@click.option("--admin-token", help="Token the control plane requires when bound beyond loopback.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Log level.")
def record(upstream: str, out: Path | None, webhook_url: str | None, timeout: float, config: str | None,
           **flags: Any) -> None:
    """Forward the Redox surface to UPSTREAM and record it; on Ctrl-C, SIGTERM or
    POST /__emulator/record/stop, write the scenario file that replays it."""
    from emulator.cli import bind
    from emulator.server import serve
    from emulator.web.record_routes import RecordRoom, Session

    if not upstream.startswith(("http://", "https://")):
        raise click.BadParameter("an http:// or https:// URL", param_hint="--upstream")
    try:
        loaded = settings_module.load(config, None, **flags)
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    logging.basicConfig(level=loaded.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = out or Path("scenarios") / time.strftime("recorded-%Y%m%d-%H%M%S.yaml")
    session = Session(upstream.rstrip("/"), out, webhook_url, timeout)
    sock = bind(loaded.host, loaded.port)
    base = f"http://{loaded.host}:{sock.getsockname()[1]}"
    click.echo(f"Recording {upstream} on {base} into {out}")
    click.echo(f"  point your client's Redox base URL at {base}; stop with Ctrl-C or "
               f"POST {base}/__emulator/record/stop")
    if webhook_url:
        click.echo(f"  set the upstream's destination URL to {base}/__emulator/record/webhook (forwarded to "
                   f"{webhook_url})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve(loaded, recording=RecordRoom(session), sock=sock)
    finally:
        _report(session.finish().notes, out, len(session.exchanges))


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Scenario file to write (default scenarios/imported-NAME.yaml).")
def import_(file: Path, out: Path | None) -> None:
    """Turn a VCR cassette (vcrpy, Ruby VCR) or a HAR 1.2 file into a scenario file."""
    from emulator.scenarios import cassettes, recording
    from emulator.scenarios.checker import check_text

    try:
        exchanges, skipped = cassettes.load(file)
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    out = out or Path("scenarios") / f"imported-{file.stem}.yaml"
    if out.resolve() == file.resolve():
        raise click.ClickException(f"{out}: that is the file being imported; name another with --out")
    conversion = recording.convert(exchanges, description=f"Imported from {file.name}: {len(exchanges)} Redox "
                                                          f"exchange(s), {len(skipped)} other request(s) skipped.")
    text = conversion.yaml()
    problems = check_text(text, str(out))[1]
    if problems:
        raise click.ClickException("the converted scenario does not check (a bug):\n" + "\n".join(map(str, problems)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    _report([*skipped, *conversion.notes], out, len(exchanges))


def _report(notes: list[str], out: Path, count: int) -> None:
    for note in notes:
        click.echo(f"  {note}", err=True)
    click.echo(f"wrote {out} ({count} exchange(s)); replay: redox-emulator serve --scenario {out}", err=True)


COMMANDS = [record, import_]
