"""The control plane under /__emulator/: health, reset, the journal, the clock, client keys (logs: log_routes).

Open on loopback; when the server is bound to another address every call needs the admin token
(`Authorization: Bearer <token>` or `X-Emulator-Admin-Token`).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import __version__, catalog
from emulator.clock import MAX_OFFSET
from emulator.errors import ControlError, RedoxError
from emulator.sandbox import Sandbox
from emulator.web.requests import parse_json, read_body
from emulator.web.responses import json_response, render

PREFIX = "/__emulator"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
Handler = Callable[[Request, Sandbox], Awaitable[Any]]


def _control(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Guard, run, and wrap the answer as {"meta": ..., "payload": ...} like Redox's Platform API."""

    async def endpoint(request: Request) -> Response:
        sandbox: Sandbox = request.app.state.sandbox
        store = sandbox.store
        try:
            _guard(request, sandbox)
            before = store.mark()
            result = await handler(request, sandbox)
            # What the call changed in the store (a destination, a queue, a scenario's patients) is
            # committed before it is answered, as on the Redox routes.
            if store.mark() > before and not await store.committed():
                raise ControlError(f"the change may not be stored: {store.problem or 'the log store failed'}",
                                   status=503)
        except ControlError as error:
            return render(error)
        except RedoxError as error:  # from the shared body readers: said in the control plane's shape
            return render(ControlError(error.errors[0][0], status=error.status))
        if isinstance(result, Response):
            return result
        meta, payload = result
        return json_response(200, {"meta": {"version": __version__, **meta}, "payload": payload})

    return endpoint


def _guard(request: Request, sandbox: Sandbox) -> None:
    token = request.app.state.admin_token
    if sandbox.settings.host in LOOPBACK_HOSTS and not token:
        return
    given = request.headers.get("x-emulator-admin-token") or ""
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = given or bearer.strip()
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise ControlError("the control plane needs the admin token: send it as "
                           "'Authorization: Bearer <token>' or 'X-Emulator-Admin-Token'", status=401)


async def health(request: Request, sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]] | Response:
    """200 {"status": "ok"} while requests can be logged; 503 {"status": "unavailable", "reason"} while
    not (the log store's writer is down or restarting), so a readiness probe sees it."""
    store = sandbox.store
    problem = store.problem
    body = {"status": "ok" if problem is None else "unavailable", **({"reason": problem} if problem else {}),
            "version": __version__, "now": sandbox.clock.isoformat(),
            "uptimeSeconds": round(time.monotonic() - request.app.state.started, 3),
            "store": {"available": store.available, "writerPid": store.writer_pid,
                      "file": None if store.path == ":memory:" else store.file}}
    if problem is None:
        return {}, body
    return json_response(503, {"meta": {"version": __version__}, "payload": body}, {"Retry-After": "1"})


async def reset(request: Request, sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.perf_counter()
    sandbox.reset()
    return {}, {"reset": True, "tookMs": round((time.perf_counter() - started) * 1000, 3)}


async def exchanges(request: Request, sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]]:
    limit = _integer("limit", request.query_params.get("limit", "1000"), 1, 100_000)
    items = sandbox.store.exchanges(limit)
    return {"count": len(items)}, {"exchanges": items}


async def clock(request: Request, sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]]:
    """GET reads the clock; POST {"advance": seconds} and/or {"mode": "real" | "accelerated" | "manual",
    "factor": n} moves it or changes how it runs."""
    if request.method == "POST":
        body = parse_json(await read_body(request, 64 * 1024))
        if not isinstance(body, dict) or not body or set(body) - {"advance", "mode", "factor"}:
            raise ControlError('expected {"advance": <seconds, a number >= 0>} and/or '
                               '{"mode": "real" | "accelerated" | "manual", "factor": <for accelerated>}')
        seconds, mode, factor = body.get("advance"), body.get("mode"), body.get("factor")
        for name in ("advance", "factor"):
            value = body.get(name)
            if name in body and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ControlError(f"{name} must be a number, found {value!r}")
        if "mode" in body and not isinstance(mode, str):
            raise ControlError(f"mode must be real, accelerated or manual, found {mode!r}")
        if mode is None and factor is not None:
            raise ControlError('a factor goes with {"mode": "accelerated"}')
        if mode is not None and mode not in ("real", "accelerated", "manual"):
            raise ControlError(f"mode must be real, accelerated or manual, found {mode!r}"
                               f"{catalog.did_you_mean(str(mode), ('real', 'accelerated', 'manual'))}")
        try:
            if mode is not None:
                sandbox.clock.set_mode(mode, None if factor is None else float(factor))
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        if seconds is not None:
            step = float(seconds)
            try:
                sandbox.clock.advance(step)
            except ValueError as exc:  # a valid step that meets a clock already moved far: its state conflicts
                raise ControlError(str(exc), status=409 if 0 <= step <= MAX_OFFSET else 400) from None
    return {}, {"now": sandbox.clock.isoformat(), "epoch": sandbox.clock.now(),
                "offsetSeconds": sandbox.clock.offset, "mode": sandbox.clock.mode.value,
                "factor": sandbox.clock.factor, "sleepers": sandbox.clock.sleepers}


async def client_jwks(request: Request, sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]]:
    client_id = request.path_params["client_id"]
    if sandbox.auth.source_for_client(client_id) is None:
        known = [s.client_id for s in sandbox.settings.sources if s.client_id]
        raise ControlError(f"unknown client_id {client_id!r}; configured: {', '.join(known) or 'none'}",
                           status=404)
    if request.method == "PUT":
        kids = sandbox.keys.set_jwks(client_id, parse_json(await read_body(request, 1024 * 1024)))
        return {}, {"client_id": client_id, "kids": kids}
    return {}, {"client_id": client_id, "jwks": sandbox.keys.jwks(client_id)}


def _integer(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ControlError(f"{name} must be an integer, found {raw!r}") from None
    if not low <= value <= high:
        raise ControlError(f"{name} must be between {low} and {high}, found {value}")
    return value


routes = [
    Route(f"{PREFIX}/health", _control(health), methods=["GET"]),
    Route(f"{PREFIX}/reset", _control(reset), methods=["POST"]),
    Route(f"{PREFIX}/exchanges", _control(exchanges), methods=["GET"]),
    Route(f"{PREFIX}/clock", _control(clock), methods=["GET", "POST"]),
    Route(f"{PREFIX}/clients/{{client_id}}/jwks", _control(client_jwks), methods=["GET", "PUT"]),
]
