"""The control plane of delivery: destinations, their queues and scripted faults, pushes from the EHR.

    GET    /__emulator/destinations                 every destination, with its queue and verification
    POST   /__emulator/destinations                 register (or replace) one; a webhook is verified at once
    GET    /__emulator/destinations/{id}
    DELETE /__emulator/destinations/{id}            its queued messages are purged (logs FAILED)
    POST   /__emulator/destinations/{id}/verify     the handshake again: {"form": "post" | "get"}
    GET    /__emulator/destinations/{id}/queue      pending messages, oldest first
    POST   /__emulator/destinations/{id}/queue/{pause|resume|retry|purge}
    POST   /__emulator/destinations/{id}/faults     {"redeliver", "outOfOrder", "wrongToken", "outageSeconds"}
    POST   /__emulator/push        {"DataModel", "EventType", "payload" | "patient", "count", "set", "destinations",
                                    "format": "json" | "fhir"}  fhir: DataModel/EventType name a FHIR notification
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from emulator import catalog
from emulator.clock import MAX_OFFSET
from emulator.delivery import push as push_events
from emulator.errors import ConfigError, ControlError
from emulator.sandbox import Sandbox
from emulator.settings import FHIR, Destination, destination_config, parse_destination
from emulator.web.control_routes import PREFIX, _control
from emulator.web.requests import parse_json, read_body

Result = tuple[dict[str, Any], dict[str, Any]]
BODY_LIMIT = 10 * 1024 * 1024
QUEUE_ACTIONS = ("pause", "resume", "retry", "purge")


def _view(sandbox: Sandbox, destination: Destination) -> dict[str, Any]:
    return {**destination_config(destination), "queue": sandbox.delivery.status(destination.id)}


def _find(request: Request, sandbox: Sandbox) -> Destination:
    destination_id = request.path_params["destination_id"]
    found = sandbox.destinations.get(destination_id)
    if found is None:
        known = ", ".join(d.id for d in sandbox.destinations.all())
        raise ControlError(f"no destination with ID {destination_id}; known: {known or 'none'}", status=404)
    return found


async def _body(request: Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await read_body(request, BODY_LIMIT)
    if optional and not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body


async def _verify(sandbox: Sandbox, destination: Destination, form: str | None = None) -> dict[str, Any]:
    verdict = await asyncio.wrap_future(sandbox.delivery.verify(destination, form))
    return verdict.view()


async def list_destinations(request: Request, sandbox: Sandbox) -> Result:
    views = [_view(sandbox, d) for d in sandbox.destinations.all()]
    return {"count": len(views)}, {"destinations": views}


async def add_destination(request: Request, sandbox: Sandbox) -> Result:
    body = await _body(request)
    missing = [key for key in ("id", "name") if key not in body]
    if missing:
        raise ControlError(f"destination: {' and '.join(missing)} required; also url, verification_token, "
                           "subscriptions, handshake, format (json | fhir), notifications (detailed | lightweight)")
    try:
        destination = parse_destination(body, "destination")
    except ConfigError as error:
        raise ControlError(str(error)) from None
    except TypeError as error:  # a key of the wrong kind reached the dataclass
        raise ControlError(f"destination: {error}") from None
    created = sandbox.destinations.put(destination)
    verification = None
    if destination.url is not None and request.query_params.get("verify", "true") != "false":
        verification = await _verify(sandbox, destination)
    return {"created": created}, {"destination": _view(sandbox, destination), "verification": verification}


async def get_destination(request: Request, sandbox: Sandbox) -> Result:
    return {}, {"destination": _view(sandbox, _find(request, sandbox))}


async def delete_destination(request: Request, sandbox: Sandbox) -> Result:
    destination = _find(request, sandbox)
    purged = sandbox.delivery.purge(destination.id)
    sandbox.destinations.remove(destination.id)
    return {}, {"deleted": destination.id, "purged": purged}


async def verify_destination(request: Request, sandbox: Sandbox) -> Result:
    destination = _find(request, sandbox)
    if destination.url is None:
        raise ControlError(f"destination {destination.name} has no webhook URL to verify", status=409)
    body = await _body(request, optional=True)
    if set(body) - {"form"}:
        unknown = sorted(set(body) - {"form"})[0]
        raise ControlError(f'unknown key {unknown!r}; the body is {{"form": "post" | "get"}}')
    form = body.get("form", destination.handshake)
    if form not in ("post", "get"):
        raise ControlError(f'form must be "post" or "get", found {form!r}')
    return {}, {"verification": await _verify(sandbox, destination, form)}


async def queue(request: Request, sandbox: Sandbox) -> Result:
    destination = _find(request, sandbox)
    pending = sandbox.delivery.pending(destination.id)
    return {"count": len(pending)}, {"status": sandbox.delivery.status(destination.id), "pending": pending}


async def queue_action(request: Request, sandbox: Sandbox) -> Result:
    destination = _find(request, sandbox)
    action = request.path_params["action"]
    delivery = sandbox.delivery
    if action == "pause":
        delivery.pause(destination.id)
    elif action == "resume":
        delivery.resume(destination.id)
    elif action == "retry":
        delivery.retry_now(destination.id)
    elif action == "purge":
        return {}, {"purged": delivery.purge(destination.id), "status": delivery.status(destination.id)}
    else:
        raise ControlError(f"unknown queue action {action!r}; one of {', '.join(QUEUE_ACTIONS)}", status=404)
    return {}, {"status": delivery.status(destination.id)}


def _whole(value: int | float) -> bool:
    """JSON has one number type: 2.0 is the whole number 2 (JSON Schema's `integer` says so too)."""
    return isinstance(value, int) or value.is_integer()


_FAULTS = {"redeliver": "redeliver", "outOfOrder": "out_of_order", "wrongToken": "wrong_token",
           "outageSeconds": "outage_seconds"}
# An outage ends within the clock's range (a century); counts are of messages, which a run never nears.
FAULT_COUNT_MAX = 1_000_000
_FAULT_MAX = {"redeliver": FAULT_COUNT_MAX, "outOfOrder": FAULT_COUNT_MAX, "wrongToken": FAULT_COUNT_MAX,
              "outageSeconds": MAX_OFFSET}


async def faults(request: Request, sandbox: Sandbox) -> Result:
    destination = _find(request, sandbox)
    body = await _body(request)
    given: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _FAULTS:
            raise ControlError(f"unknown fault {key!r}; one of {', '.join(_FAULTS)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _FAULT_MAX[key] or (
                key != "outageSeconds" and not _whole(value)):
            what = "number of seconds" if key == "outageSeconds" else "whole number"
            raise ControlError(f"{key} must be a {what} from 0 to {_FAULT_MAX[key]:g}")
        given[_FAULTS[key]] = value if key == "outageSeconds" else int(value)
    sandbox.delivery.script(destination.id, **given)
    return {}, {"status": sandbox.delivery.status(destination.id)}


def _notification(model: str, event: str) -> tuple[str, str]:
    """The FHIR notification a push with format fhir names, or a 400 that lists the names."""
    if (model, event) in catalog.FHIR_NOTIFICATIONS:
        return model, event
    if model not in catalog.FHIR_MODELS:
        hint = catalog.did_you_mean(model, catalog.FHIR_MODELS)
        raise ControlError(f"unknown FHIR notification DataModel {model!r}.{hint} "
                           f"One of {', '.join(catalog.FHIR_MODELS)}")
    hint = catalog.did_you_mean(event, catalog.FHIR_MODELS[model])
    raise ControlError(f"unknown EventType {event!r} of {model}.{hint} One of {', '.join(catalog.FHIR_MODELS[model])}")


async def push(request: Request, sandbox: Sandbox) -> Result:
    body = await _body(request)
    model, event = body.get("DataModel"), body.get("EventType")
    if not isinstance(model, str) or not isinstance(event, str):
        raise ControlError('expected {"DataModel": ..., "EventType": ..., "payload": {...}}')
    form = body.get("format", "json")
    if form not in ("json", "fhir"):
        raise ControlError(f'format must be "json" (data-model events) or "fhir" (FHIR notifications), found {form!r}')
    notification = None
    if form == "fhir":  # the EHR builds the notification's source event, then the Bundle from it
        notification = _notification(model, event)
        model, event = catalog.FHIR_NOTIFICATIONS[notification][1]
    payload, mrn = body.get("payload"), body.get("patient")
    if payload is not None and not isinstance(payload, dict):
        raise ControlError("payload must be the event to push, a JSON object (or leave it out: the EHR builds one)")
    if mrn is not None and (not isinstance(mrn, str) or payload is not None):
        raise ControlError("patient must be an MRN (a string), for an event the EHR builds (no payload)")
    count, overrides, targets = body.get("count", 1), body.get("set", {}), body.get("destinations")
    if isinstance(count, bool) or not isinstance(count, int | float) or not _whole(count):
        raise ControlError("count must be a whole number")
    count = int(count)
    if not isinstance(overrides, dict):
        raise ControlError('set must be an object of path to value, e.g. {"Patient.Demographics.FirstName": "Ann"}')
    if targets is not None and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise ControlError("destinations must be a list of destination IDs")
    for target in targets or []:
        found = sandbox.destinations.get(target)
        if found is None:
            raise ControlError(f"no destination with ID {target}", status=404)
        if notification is not None and found.format != FHIR:
            raise ControlError(f"destination {found.name} ({found.id}) takes the data model's events, not FHIR "
                               "notifications (format: fhir, with a url, is a FHIR destination)")
    if payload is None:
        built = push_events.generate(sandbox.ehr, sandbox.clock, model, event, sandbox.push_rng, count, mrn, overrides)
    else:
        built = push_events.events(model, event, payload, count, overrides)
    logs = sandbox.delivery.push(built, targets, notification=notification)
    if not await sandbox.store.committed():  # answered means queued for good
        raise ControlError(f"the pushed events may not be queued: {sandbox.store.problem or 'the log store failed'}",
                           status=503)
    return {"count": len(logs)}, {"logs": [{"ID": entry.id, "destination": entry.destination_id} for entry in logs]}


routes = [
    Route(f"{PREFIX}/destinations", _control(list_destinations), methods=["GET"]),
    Route(f"{PREFIX}/destinations", _control(add_destination), methods=["POST"]),
    Route(f"{PREFIX}/destinations/{{destination_id}}", _control(get_destination), methods=["GET"]),
    Route(f"{PREFIX}/destinations/{{destination_id}}", _control(delete_destination), methods=["DELETE"]),
    Route(f"{PREFIX}/destinations/{{destination_id}}/verify", _control(verify_destination), methods=["POST"]),
    Route(f"{PREFIX}/destinations/{{destination_id}}/queue", _control(queue), methods=["GET"]),
    Route(f"{PREFIX}/destinations/{{destination_id}}/queue/{{action}}", _control(queue_action), methods=["POST"]),
    Route(f"{PREFIX}/destinations/{{destination_id}}/faults", _control(faults), methods=["POST"]),
    Route(f"{PREFIX}/push", _control(push), methods=["POST"]),
]
