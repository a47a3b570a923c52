"""Scenarios over HTTP: /endpoint and /query while a scenario is active, and /__emulator/scenarios.

`endpoint()` takes over from `redox_routes.endpoint` only while some scenario is active, so the hot
path pays one attribute check when none is. It reads the request, asks the engine which rule
matches, carries out the rule's actions (the token, the state, the delay on the emulator's clock,
dropping the connection, a scripted answer) and journals the exchange with the engine's note:
the rule that answered, or the rules that came closest and the matcher that failed on each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from emulator.errors import ControlError, LoadError, RedoxError, RequestError
from emulator.sandbox import Sandbox
from emulator.scenarios import library
from emulator.scenarios.checker import ScenarioError, load_text
from emulator.scenarios.engine import is_sync
from emulator.scenarios.matching import Seen
from emulator.settings import Source
from emulator.tokens import Grant
from emulator.web.control_routes import PREFIX, _control
from emulator.web.journal import Journal
from emulator.web.requests import media_type, parse_json, read_body, require_json
from emulator.web.responses import json_response, render, unavailable

MAX_SCENARIO_BYTES = 1024 * 1024
SERVER_SEND = "emulator.server_send"  # the server's own `send`, kept in the scope by app.py


class DroppedConnection(Response):
    """No answer at all: the connection closes under the client, as when a proxy or the EHR goes away."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server_send = scope.get(SERVER_SEND)
        transport = getattr(getattr(server_send, "__self__", None), "transport", None)
        if transport is None:  # not uvicorn (an in-process test client): the nearest thing is an error
            raise ConnectionAbortedError("scenario dropped the connection")
        transport.close()
        for _ in range(3):  # let the server see the connection lost, so it sends nothing either
            await asyncio.sleep(0)


async def endpoint(request: Request, sandbox: Sandbox, admit: Callable[[Sandbox, Request], Grant],
                   source_of: Callable[[Sandbox, str], Source]) -> Response:
    """POST /endpoint and /query with scenarios active (see the module docstring)."""
    engine, clock = sandbox.scenarios, sandbox.clock
    if not sandbox.store.available:  # as redox_routes.exchange: nothing is done that cannot be logged
        return unavailable(sandbox.store.problem)
    journal = Journal(sandbox, request.scope)
    raw, payload, body_error, malformed = b"", None, None, False
    try:
        require_json(request)
        raw = await read_body(request, sandbox.settings.payload_limit)
    except RedoxError as error:
        body_error = error
    else:
        try:
            payload = parse_json(raw)
        except RedoxError as error:
            body_error, malformed = error, bool(raw.strip())
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}
    seen = Seen.of(request.method, request.url.path, headers, payload, malformed)
    decision = engine.decide(seen)
    actions = decision.actions
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    engine.before(decision, bearer.strip() if scheme.lower() == "bearer" else None, payload)

    try:  # the token is checked on arrival, as Redox does; a rule may just have killed it
        grant = admit(sandbox, request)
        source = source_of(sandbox, grant.source_id)
    except RequestError as error:
        return await journal.answer(render(error), raw, scenario=decision.note)
    timed_out = 0.0
    if actions.delay > 0:  # the EHR taking its time, on the emulator's clock
        started = clock.now()
        limit = sandbox.settings.sync_timeout if is_sync(seen) else None
        if limit is not None and actions.delay >= limit:
            await clock.sleep_until(started + limit)
            timed_out = limit
        else:
            await clock.sleep_until(started + actions.delay)
    if actions.drop_connection:
        journal.finish(DroppedConnection(), raw, scenario=decision.note)
        await sandbox.store.committed()  # no answer either way: the connection just closes
        return DroppedConnection()
    outcome = engine.timeout(payload, source, journal.id, timed_out) if timed_out else \
        engine.answer(decision, payload, source, journal.id)
    if outcome is None:
        if body_error is not None:
            outcome = sandbox.router.failure(body_error, {}, source, journal.id)
        else:
            outcome = sandbox.router.handle(payload, source, journal.id)
    response = json_response(outcome.status, outcome.body, outcome.headers)
    journal.finish(response, raw, logs=outcome.logs, source_id=source.id, scenario=decision.note, ehr=outcome.ehr)
    if outcome.deliveries:
        sandbox.delivery.enqueue(outcome.deliveries)
    return await journal.durable(response)


def upload_rule(request: Request, sandbox: Sandbox) -> tuple[Response, dict[str, Any]] | None:
    """POST /upload with scenarios active: a matching rule's error answer (a recorded 4xx/5xx), after its
    token actions; None (the upload as usual) when no rule matches or the rule answers 2xx without a body."""
    engine = sandbox.scenarios
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}
    decision = engine.decide(Seen.of(request.method, request.url.path, headers, None, False))
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    engine.before(decision, bearer.strip() if scheme.lower() == "bearer" else None, None)
    respond = decision.actions.respond
    if respond is None or respond.status < 400:
        return None
    if respond.body is not None:
        return json_response(respond.status, respond.body, dict(respond.headers)), decision.note
    error = RedoxError((respond.error.text if respond.error else f"Scripted answer (rule {decision.note['rule']})"),
                       type=respond.error.type if respond.error else "transmission",
                       module=respond.error.module if respond.error else "Upload", status=respond.status,
                       headers=dict(respond.headers))
    return render(error), decision.note


# ---- /__emulator/scenarios ------------------------------------------------------------------------

async def scenarios(request: Request, sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]]:
    """GET: the library and what is active. POST: load and activate. DELETE: deactivate (?name=, or all)."""
    engine = sandbox.scenarios
    if request.method == "POST":
        _activate(request, sandbox, await read_body(request, MAX_SCENARIO_BYTES))
    elif request.method == "DELETE":
        name = request.query_params.get("name")
        try:
            gone = engine.deactivate(name)
        except LoadError as error:
            raise ControlError(str(error), status=404) from None
        return {}, {"deactivated": gone, "active": [a.view() for a in engine.active]}
    directory = sandbox.base_settings.scenarios_dir
    return ({"count": len(engine.active)},
            {"active": [a.view() for a in engine.active], "library": library.names(directory),
             "directory": directory, "contractMode": engine.contract_mode})


def _activate(request: Request, sandbox: Sandbox, raw: bytes) -> None:
    """A body that is a scenario (YAML, or JSON which is YAML too), or JSON {"name": NAME_OR_FILE}."""
    engine = sandbox.scenarios
    kind = media_type(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ControlError("the scenario must be UTF-8 text") from None
    if kind == "application/json":  # {"name": ...} names a file; any other JSON is a scenario (JSON is YAML)
        body = parse_json(raw)
        if isinstance(body, dict) and set(body) == {"name"} and isinstance(body["name"], str):
            try:
                engine.activate_file(body["name"])
            except ScenarioError as error:
                raise ControlError(f"the scenario has problems:\n{error}", status=422) from None
            except LoadError as error:
                raise ControlError(str(error), status=404) from None
            return
    name = request.query_params.get("name")
    try:
        scenario = load_text(text, "<body>", name=name or "posted")
    except ScenarioError as error:
        raise ControlError(f"the scenario has problems:\n{error}", status=422) from None
    engine.activate(scenario)


routes = [Route(f"{PREFIX}/scenarios", _control(scenarios), methods=["GET", "POST", "DELETE"])]
