"""`redox-emulator`: a thin click CLI over the settings, the server and the key tools."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import click

from emulator import __version__, cli_delivery, cli_harness, cli_logs, cli_record
from emulator import settings as settings_module
from emulator.errors import LoadError
from emulator.keys import write_key_pair


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="redox-emulator")
def main() -> None:
    """A local Redox sandbox: auth, /endpoint, a synthetic EHR, logs, and a control plane."""


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the banner: with --port 0 the banner names the port the kernel
    chose, and a port in use is one clear line, not uvicorn's exit after a banner that promised it."""
    from emulator.server import listening_socket

    try:
        return listening_socket(host, port)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8787; 0 for a free one).")
@click.option("--db", help="SQLite log store path, or :memory: (default .emulator/emulator.db).")
@click.option("--seed", type=int, help="Seed of the synthetic EHR's population.")
@click.option("--admin-token", help="Token the control plane requires when bound beyond loopback.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Log level.")
@click.option("--webhook-url", help="Your app's webhook: registered as a destination subscribed to everything.")
@click.option("--scenario", "scenarios", multiple=True, metavar="NAME_OR_FILE",
              help="Activate a scenario (a name in scenarios/ or a file); repeatable.")
@click.option("--contract-mode", type=click.Choice(settings_module.CONTRACT_MODES),
              help="How payloads are held to their data model (default redox).")
@click.option("--contracts-dir", help="Where an imported Redox schema bundle lives (default .emulator/contracts).")
def serve(config: str | None, scenarios: tuple[str, ...], **flags: Any) -> None:
    """Serve the emulator until Ctrl-C (or SIGTERM)."""
    from emulator.server import serve as run

    if scenarios:
        flags["scenarios"] = list(scenarios)
    try:
        loaded = settings_module.load(config, None, **flags)
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    logging.basicConfig(level=loaded.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    source, destination = loaded.sources[0], loaded.destinations[0]
    sock = bind(loaded.host, loaded.port)
    base = f"http://{loaded.host}:{sock.getsockname()[1]}"
    click.echo(f"Redox emulator {__version__} on {base}  (logs: {loaded.db})")
    click.echo(f"  legacy:  POST {base}/auth/authenticate  apiKey={source.api_key} secret={source.api_secret}")
    click.echo(f"  OAuth:   POST {base}/v2/auth/token  client_id={source.client_id} "
               f"client_secret={source.client_secret}")
    click.echo(f"  send:    POST {base}/endpoint  Meta.Destinations[0].ID={destination.id} ({destination.name})")
    if loaded.webhook_url:
        click.echo(f"  webhook: {loaded.webhook_url}  destination ID {settings_module.WEBHOOK_ID} "
                   f"verification-token={destination.verification_token}")
    click.echo(f"  logs:    GET  {base}/__emulator/logs")
    # uvicorn re-raises SIGINT/SIGTERM once its graceful shutdown is over: that is a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        try:
            run(loaded, sock=sock)
        except LoadError as error:
            raise click.ClickException(str(error)) from None


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
def check(paths: tuple[str, ...]) -> None:
    """Check scenario files (default: every file in scenarios/, or the library when there is no such folder);
    each problem as file:line:column: message."""
    from emulator.scenarios import checker, library

    files: list[Path] = []
    for given in paths or ("scenarios" if Path("scenarios").is_dir() else str(library.LIBRARY),):
        path = Path(given)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in library.SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise click.ClickException(f"{given}: no such file or directory")
    problems = [problem for file in files for problem in checker.check_file(file)]
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) in {len({p.file for p in problems})} of {len(files)} file(s)", err=True)
        sys.exit(1)
    click.echo(f"{len(files)} scenario file(s) OK", err=True)


@main.group()
def scenarios() -> None:
    """The scenarios `serve --scenario NAME` and the control plane can activate by name."""


@scenarios.command("list")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML config file (for scenarios_dir).")
def scenarios_list(config: str | None) -> None:
    """Every scenario name: your scenarios_dir's files first (they win), then the library's; with each description."""
    from emulator.scenarios import checker, library

    try:
        directory = settings_module.load(config, None).scenarios_dir
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    for name in library.names(directory):
        path = library.resolve(name, directory)
        where = "library" if path.parent.resolve() == library.LIBRARY.resolve() else str(path)
        try:
            about = checker.load_file(path).description.strip().split(". ")[0].rstrip(".")  # its first sentence
        except LoadError:
            about = "(does not load: run `redox-emulator check`)"
        click.echo(f"{name:32} {where:10} {about}".rstrip())


@main.group()
def keys() -> None:
    """Key pairs for signed-JWT client assertions."""


@keys.command("new")
@click.option("--client-id", required=True, help="The OAuth client the key is for.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory.")
@click.option("--alg", type=click.Choice(["RS384", "ES384"]), default="RS384", show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing private key for this client.")
def keys_new(client_id: str, out: Path, alg: str, force: bool) -> None:
    """Write a private key PEM and the public JWK Set; print the kid."""
    try:
        kid, pem, jwks = write_key_pair(client_id, out, alg, force=force)
    except FileExistsError as error:
        raise click.ClickException(str(error)) from None
    click.echo(kid)
    click.echo(f"private key: {pem}\npublic JWK Set: {jwks}\nregister it: "
               f"curl -X PUT --data @{jwks} http://127.0.0.1:8787/__emulator/clients/{client_id}/jwks", err=True)


@main.group()
def contracts() -> None:
    """The data-model contracts (JSON Schemas) payloads are validated against."""


@contracts.command("import")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", type=click.Path(dir_okay=False), help="YAML config file (for contracts_dir).")
@click.option("--contracts-dir", help="Where to keep the bundle (default: the contracts_dir setting).")
def contracts_import(bundle: Path, config: str | None, contracts_dir: str | None) -> None:
    """Use a team's official Redox schema bundle (schemas.zip, JSON Schema draft-04) instead of the bundled one."""
    from emulator.contracts.bundle import import_zip

    try:
        loaded = settings_module.load(config, None, contracts_dir=contracts_dir)
        with click.progressbar(length=0, label="importing", file=sys.stderr) as bar:
            def tick(done: int, total: int) -> None:
                bar.length = total
                bar.update(1)

            report = import_zip(bundle, Path(loaded.contracts_dir), progress=tick)
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{len(report.imported)} event types imported into {loaded.contracts_dir}; "
               "`serve` uses them from now on")
    for name in report.unmatched:
        click.echo(f"  not a known DataModel.EventType, skipped: {name}", err=True)
    if report.missing:
        click.echo(f"  {len(report.missing)} event types not in the bundle keep the bundled contract: "
                   + ", ".join(f"{m}.{e}" for m, e in report.missing), err=True)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--contract-mode", type=click.Choice(["redox", "strict"]), default="redox", show_default=True)
@click.option("--config", type=click.Path(dir_okay=False), help="YAML config file (for contracts_dir).")
@click.option("--contracts-dir", help="An imported Redox schema bundle to validate against.")
def validate(files: tuple[Path, ...], contract_mode: str, config: str | None, contracts_dir: str | None) -> None:
    """Validate payload files against their data model's contract; exit 1 if any is invalid."""
    from emulator.contracts import schemas
    from emulator.contracts.check import check_file
    from emulator.contracts.validator import ContractValidator

    try:
        loaded = settings_module.load(config, None, contracts_dir=contracts_dir)
        validator = ContractValidator(schemas.load(loaded.contracts_dir), contract_mode)
    except LoadError as error:
        raise click.ClickException(str(error)) from None
    invalid = 0
    for path in files:
        problems = check_file(validator, path)
        invalid += bool(problems)
        for line in problems:
            click.echo(line)
    click.echo(f"{len(files)} files, {invalid} invalid", err=True)
    if invalid:
        sys.exit(1)


for _command in [*cli_delivery.COMMANDS, *cli_record.COMMANDS, cli_logs.logs]:
    main.add_command(_command)
main.add_command(cli_harness.test)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
