"""CLI commands that drive a running emulator's delivery: push, verify-destination, queue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from emulator import catalog
from emulator.delivery.push import parse_value
from emulator.remote import Remote, RemoteError

PUSH_BATCH = 200  # events per request of a bulk push: the progress bar moves, no request runs long
_url = click.option("--url", envvar="REDOX_EMULATOR_URL", help="The running emulator (default http://127.0.0.1:8787).")
_admin = click.option("--admin-token", envvar="REDOX_EMULATOR_ADMIN_TOKEN", help="Its admin token, if it needs one.")


def _call(url: str | None, admin_token: str | None, method: str, path: str, body: Any = None) -> dict[str, Any]:
    try:
        return Remote(url, admin_token).call(method, path, body)
    except RemoteError as error:
        raise click.ClickException(str(error)) from None


@click.command()
@click.argument("event")
@click.option("--patient", metavar="MRN", help="The EHR's patient the built event is about (default: one drawn).")
@click.option("--file", "payload_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The event to push (JSON) instead of one the EHR builds; Meta.DataModel and Meta.EventType "
                   "are set from EVENT.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Set a field, e.g. Patient.Demographics.FirstName=Ann (JSON values as JSON). Repeatable.")
@click.option("--count", type=click.IntRange(1, 100_000), default=1, show_default=True)
@click.option("--destination", "destinations", multiple=True, help="Only to this destination ID. Repeatable.")
@click.option("--format", "form", type=click.Choice(["json", "fhir"]), default="json", show_default=True,
              help="fhir: EVENT is a FHIR notification (FHIR.Message.PatientAdmin.patient-arrived, or just "
                   "patient-arrived), pushed as a message Bundle to the destinations with format: fhir.")
@_url
@_admin
def push(event: str, patient: str | None, payload_file: Path | None, overrides: tuple[str, ...], count: int,
         destinations: tuple[str, ...], form: str, url: str | None, admin_token: str | None) -> None:
    """Push EVENT (DataModel.EventType, e.g. PatientAdmin.Arrival) to the subscribed webhooks.

    The synthetic EHR builds a valid event (about --patient, or a patient it picks) unless --file gives one
    (with --format fhir: the data-model event the notification is made from, e.g. a PatientAdmin.Arrival).
    """
    if form == "fhir":
        model, dot, event_type = event.rpartition(".")
        if not dot:  # an EventType alone: each names one FHIR notification
            model = next((m for m, events in catalog.FHIR_MODELS.items() if event in events), "")
            if not model:
                raise click.BadParameter(f"unknown FHIR notification {event!r}; e.g. patient-arrived, "
                                         "FHIR.Event.Order.service-request-created", param_hint="EVENT")
    else:
        model, dot, event_type = event.partition(".")
        if not dot or not model or not event_type:
            raise click.BadParameter("expected DataModel.EventType, e.g. Results.New", param_hint="EVENT")
    body: dict[str, Any] = {"DataModel": model, "EventType": event_type, "count": count, "set": {}}
    if form == "fhir":
        body["format"] = "fhir"
    if patient is not None and payload_file is not None:
        raise click.BadParameter("give --patient for an event the EHR builds, or --file, not both")
    if patient is not None:
        body["patient"] = patient
    if payload_file is not None:
        try:
            body["payload"] = json.loads(payload_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise click.ClickException(f"{payload_file}: not a JSON event ({error})") from None
    for item in overrides:
        path, eq, value = item.partition("=")
        if not eq or not path:
            raise click.BadParameter(f"{item!r} is not PATH=VALUE", param_hint="--set")
        body["set"][path] = parse_value(value)
    if destinations:
        body["destinations"] = list(destinations)
    queued: list[dict[str, Any]] = []
    if count <= PUSH_BATCH:
        queued = _call(url, admin_token, "POST", "/push", body)["logs"]
    else:  # a bulk push goes in batches, with a progress bar on stderr
        with click.progressbar(length=count, label="pushing", file=sys.stderr) as bar:
            for start in range(0, count, PUSH_BATCH):
                size = min(PUSH_BATCH, count - start)
                queued += _call(url, admin_token, "POST", "/push", {**body, "count": size})["logs"]
                bar.update(size)
    for entry in queued:
        click.echo(f"{entry['ID']}  -> {entry['destination']}")
    click.echo(f"{len(queued)} message(s) queued", err=True)


@click.command("verify-destination")
@click.argument("destination_id")
@click.option("--form", type=click.Choice(["post", "get"]), help="Handshake form (default: the destination's).")
@_url
@_admin
def verify_destination(destination_id: str, form: str | None, url: str | None, admin_token: str | None) -> None:
    """Run Redox's verification handshake against a destination's webhook; exit 1 if it fails."""
    answer = _call(url, admin_token, "POST", f"/destinations/{destination_id}/verify", {"form": form} if form else {})
    verdict = answer["verification"]
    click.echo(f"{'verified' if verdict['verified'] else 'NOT verified'} ({verdict['form'].upper()}): "
               f"{verdict['explanation']}")
    if not verdict["verified"]:
        raise SystemExit(1)


@click.group()
def queue() -> None:
    """A destination's delivery queue: list, pause, resume, retry, purge."""


@queue.command("list")
@click.argument("destination_id", required=False)
@_url
@_admin
def queue_list(destination_id: str | None, url: str | None, admin_token: str | None) -> None:
    """Pending messages of one destination, or every destination's queue status."""
    if destination_id is None:
        for d in _call(url, admin_token, "GET", "/destinations")["destinations"]:
            q = d["queue"]
            state = "paused" if q["paused"] else ("retrying" if q["failures"] else "running")
            click.echo(f"{d['id']}  {d['name']:<20} {q['pending']:>6} pending  {state}"
                       + (f"  last error: {q['lastError']}" if q["lastError"] else ""))
        return
    answer = _call(url, admin_token, "GET", f"/destinations/{destination_id}/queue")
    for m in answer["pending"]:
        click.echo(f"{m['seq']:>8}  {m['logId']}  {m['dataModel']}.{m['eventType']}  attempts {m['attempts']}")
    click.echo(f"{len(answer['pending'])} pending", err=True)


def _action(name: str, doc: str) -> click.Command:
    @click.argument("destination_id")
    @_url
    @_admin
    def run(destination_id: str, url: str | None, admin_token: str | None) -> None:
        answer = _call(url, admin_token, "POST", f"/destinations/{destination_id}/queue/{name}")
        if "purged" in answer:
            click.echo(f"purged {answer['purged']} message(s)")
        click.echo(f"{answer['status']['pending']} pending, {'paused' if answer['status']['paused'] else 'running'}")

    run.__doc__ = doc
    return queue.command(name)(run)


for _name, _doc in (("pause", "Hold the queue: nothing is delivered until resume."),
                    ("resume", "Deliver again, from the oldest pending message."),
                    ("retry", "Try the head message now, whatever the back-off says."),
                    ("purge", "Drop every pending message (their logs become FAILED).")):
    _action(_name, _doc)

COMMANDS = [push, verify_destination, queue]
