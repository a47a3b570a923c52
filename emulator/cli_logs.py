"""`redox-emulator logs`: a running emulator's logs in the terminal (a table, or JSON lines), followed
live over `/__emulator/logs/stream`, and exported as JSON lines or HAR."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from emulator import har
from emulator.remote import Remote, RemoteError

EXPORT_PAGE = 500  # the control plane's largest page
_STATUS_COLOURS = {"SUCCEEDED": "green", "FAILED": "red", "PENDING": "yellow", "FILTERED": "bright_black"}
_COLUMNS = (("TIME", 12), ("TYPE", 8), ("DATAMODEL.EVENTTYPE", 30), ("SOURCE → DESTINATION", 36),
            ("STATUS", 10), ("TRIES", 5))


def _filters(function: Any) -> Any:
    options = [
        click.option("--data-model", help="Only this DataModel, e.g. PatientAdmin."),
        click.option("--event-type", help="Only this EventType, e.g. NewPatient."),
        click.option("--status", type=click.Choice(["SUCCEEDED", "FAILED", "FILTERED", "PENDING"],
                                                   case_sensitive=False)),
        click.option("--type", "log_type", type=click.Choice(["SEND", "RECEIVE", "REQUEST", "RESPOND", "UNKNOWN"],
                                                             case_sensitive=False)),
        click.option("--mrn", help="Only logs about the patient with this identifier (MRN or other ID)."),
        click.option("-q", "--search", help="A log ID, a patient identifier, or text in the payload or errors."),
        click.option("--since", help="Only logs created at or after this time (ISO-8601 or epoch seconds)."),
        click.option("--url", envvar="REDOX_EMULATOR_URL", help="The running emulator (default http://127.0.0.1:8787)."),
        click.option("--admin-token", envvar="REDOX_EMULATOR_ADMIN_TOKEN", help="Its admin token, if it needs one."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _query(data_model: str | None, event_type: str | None, status: str | None, log_type: str | None,
           mrn: str | None, search: str | None, since: str | None) -> dict[str, str]:
    given = {"dataModel": data_model, "eventType": event_type, "status": status and status.upper(),
             "type": log_type and log_type.upper(), "mrn": mrn, "q": search, "createdAfter": since}
    return {k: v for k, v in given.items() if v}


def _page(remote: Remote, params: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    answer = remote.call_with_meta("GET", "/logs?" + urllib.parse.urlencode(params))
    return answer["payload"]["logs"], answer["meta"].get("nextCursor")


@click.group(invoke_without_command=True)
@_filters
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="How many logs.")
@click.option("-f", "--follow", is_flag=True, help="Then print new logs as they come, until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line instead of the table.")
@click.pass_context
def logs(ctx: click.Context, /, limit: int, follow: bool, as_json: bool, url: str | None, admin_token: str | None,
         **filters: str | None) -> None:
    """The emulator's logs, oldest of the newest LIMIT first; `logs export` writes them to a file."""
    if ctx.invoked_subcommand is not None:
        return
    remote = Remote(url, admin_token)
    query = _query(**filters)
    printer = _Printer(as_json)
    try:
        if not follow:
            page, _ = _page(remote, {**query, "limit": limit})
            printer.header()
            for entry in reversed(page):
                printer.row(entry)
            if not page and not as_json:
                click.echo("no logs match", err=True)
            return
        events = _stream(remote, query)
        name, hello = next(events)
        page, _ = _page(remote, {**query, "limit": limit, "cursor": hello["seq"] + 1})  # up to the stream's start
        printer.header()
        for entry in reversed(page):
            printer.row(entry)
        for name, data in events:
            if name in ("log", "update"):
                printer.row(data, updated=name == "update")
            elif name == "reset":
                click.echo("-- the emulator was reset --", err=True)
            elif name == "bye":
                click.echo("-- the emulator is stopping --", err=True)
                return
    except RemoteError as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        pass


@logs.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "har"]), default="jsonl", show_default=True,
              help="jsonl: one log a line, with its attempts and bodies; har: an HTTP Archive of every attempt.")
@_filters
def export(file: Path, fmt: str, url: str | None, admin_token: str | None, **filters: str | None) -> None:
    """Write every log matching the filters (newest first) to FILE, with attempts and bodies."""
    remote = Remote(url, admin_token)
    query = {**_query(**filters), "limit": EXPORT_PAGE, "full": "true"}
    count = 0
    collected: list[dict[str, Any]] = []
    try:
        with file.open("w", encoding="utf-8") as out:
            cursor: str | None = None
            while True:
                page, cursor = _page(remote, {**query, **({"cursor": cursor} if cursor else {})})
                for entry in page:
                    if fmt == "jsonl":
                        out.write(json.dumps(entry) + "\n")
                    else:
                        collected.append(entry)
                count += len(page)
                _progress(f"{count:,} logs read")
                if cursor is None:
                    break
            if fmt == "har":
                json.dump(har.document(collected, remote.url), out, indent=1)
    except RemoteError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"{file}: {error.strerror or error}") from None
    _progress(f"{count:,} logs exported to {file} ({fmt})\n")


def _progress(text: str) -> None:
    """A counter on one line of stderr (rewritten in place when it is a terminal)."""
    if sys.stderr.isatty():
        click.echo("\r\033[K" + text, err=True, nl=False)
    elif text.endswith("\n"):
        click.echo(text, err=True, nl=False)


def _stream(remote: Remote, query: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-Sent Events from /__emulator/logs/stream as (event name, data)."""
    request = urllib.request.Request(f"{remote.url}/__emulator/logs/stream?{urllib.parse.urlencode(query)}")
    if remote.admin_token:
        request.add_header("X-Emulator-Admin-Token", remote.admin_token)
    try:
        response = urllib.request.urlopen(request, timeout=max(remote.timeout, 60.0))  # pings every 15 s
    except urllib.error.HTTPError as error:
        raise RemoteError(f"GET /logs/stream: {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise RemoteError(f"no emulator at {remote.url} ({getattr(error, 'reason', error)}); start one with "
                          "`make emulate` or say where with --url") from None
    with response:
        name, data = "message", ""
        for raw in response:
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif not line:
                if data:
                    yield name, json.loads(data)
                name, data = "message", ""


class _Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.colour = sys.stdout.isatty()

    def header(self) -> None:
        if not self.as_json:
            click.echo("  ".join(title.ljust(width) for title, width in _COLUMNS) + "  LOG ID")

    def row(self, entry: dict[str, Any], *, updated: bool = False) -> None:
        if self.as_json:
            click.echo(json.dumps({**entry, **({"updated": True} if updated else {})}))
            return
        event = ".".join(p for p in (entry.get("dataModel"), entry.get("eventType")) if p) or "-"
        source, destination = entry.get("source") or {}, entry.get("destination") or {}
        route = (f"{source.get('Name') or source.get('ID') or '-'} → "
                 f"{destination.get('Name') or destination.get('ID') or '-'}")
        cells = [entry["createdAt"][11:23], entry["type"], event, route, entry["status"], str(entry["attemptCount"])]
        text = "  ".join(_fit(cell, width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True))
        if self.colour:
            status = _fit(entry["status"], 10)
            text = text.replace(status, click.style(status, fg=_STATUS_COLOURS.get(entry["status"])), 1)
        click.echo(text + "  " + entry["id"] + ("  (updated)" if updated else ""))


def _fit(text: str, width: int) -> str:
    return text[: width - 1] + "…" if len(text) > width else text.ljust(width)
