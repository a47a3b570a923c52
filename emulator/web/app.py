"""`create_app(settings)`: the Starlette application, no import-time side effects."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from emulator.errors import ControlError, RedoxError, RequestError
from emulator.sandbox import Sandbox
from emulator.settings import Settings
from emulator.web import (
    control_routes,
    delivery_routes,
    fhir_routes,
    log_routes,
    redox_routes,
    scenario_routes,
    ui_routes,
)
from emulator.web.responses import render

if TYPE_CHECKING:
    from emulator.web.record_routes import RecordRoom

log = logging.getLogger(__name__)


YOUNG_COLLECTION = 20_000  # allocations between young collections in a long-lived server (default 700)


def create_app(settings: Settings | None = None, *, sandbox: Sandbox | None = None,
               freeze_heap: bool = True, recording: RecordRoom | None = None) -> Starlette:
    """`recording`: a recording proxy (`redox-emulator record`): the Redox surface goes to its upstream."""
    sandbox = sandbox or Sandbox(settings or Settings())
    settings = sandbox.settings

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # What start-up built (modules, the EHR's population) lives as long as the server: keep it out
        # of the collector's way, or every full collection walks it again (about 15 ms, a p99 spike).
        # Not for short-lived emulators (the harness, the pytest plugin: one per test): frozen objects
        # are never freed, and the full collection costs a cold start tens of milliseconds.
        if freeze_heap:
            gc.collect()
            gc.freeze()
            # What the EHR files stays (a chart grows by every result): with the default 700 allocations
            # a young collection, request-scoped objects alive at one reach the old generation, whose
            # full collections then come every ~10% of growth and walk it all (0.25 s at 300,000
            # objects, 9% of a writeback load's time and its p99). Rarer young collections let them die
            # first: a writeback load's collector time ~0.9 -> ~0.1 s in 10 s, p99 ~250 -> ~20 ms.
            gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])
        sandbox.store.attach(asyncio.get_running_loop())  # acknowledgements read in this loop's poll
        yield
        if recording is not None:
            await recording.close()
        sandbox.store.detach()
        sandbox.close()  # flushes the log store: every answered request is kept

    routes = [*redox_routes.routes, *fhir_routes.routes, *control_routes.routes, *log_routes.routes,
              *delivery_routes.routes, *scenario_routes.routes, *ui_routes.routes]
    if recording is not None:  # the control plane's views of the journal stay; everything else is forwarded
        first, last = recording.routes()
        routes = [*first, *control_routes.routes, *log_routes.routes, *ui_routes.routes, *last]
    app = _App(
        routes=routes,
        exception_handlers={HTTPException: _http_error, RequestError: _request_error, Exception: _bug},
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    app.direct = recording is None
    app.sandbox = sandbox  # the same, as a plain attribute: State's __getattr__ costs on every request
    app.state.started = time.monotonic()
    app.state.admin_token = settings.admin_token
    if settings.host not in control_routes.LOOPBACK_HOSTS and not settings.admin_token:
        app.state.admin_token = secrets.token_urlsafe(24)
        log.warning("bound to %s: the control plane needs the admin token %s", settings.host,
                    app.state.admin_token)
    return app


# The hot path, served straight from here when no scenario is active (see redox_routes.exchange).
_DIRECT = frozenset({"/endpoint", "/query"})
_FHIR = fhir_routes.PREFIX + "/"  # the FHIR API: its own router (fhir_routes.direct); scenarios do not script it


class _App(Starlette):
    sandbox: Sandbox
    direct: bool = True  # /endpoint and /query served here (not while recording: they go upstream)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path") and self.direct:
            if scope["method"] == "POST" and scope["path"] in _DIRECT:
                sandbox = self.sandbox
                if not sandbox.scenarios.active:
                    await _direct(sandbox, scope, receive, send)
                    return
            elif scope["path"].startswith(_FHIR):
                if not self.sandbox.scenarios.active:
                    await _direct(self.sandbox, scope, receive, send, fhir_routes.direct)
                    return
                scope[scenario_routes.SERVER_SEND] = send  # a rule may drop the connection (see below)
                try:
                    await _direct(self.sandbox, scope, receive, send, fhir_routes.direct)
                finally:
                    del scope[scenario_routes.SERVER_SEND]
                return
        # The server's own send, before Starlette wraps it: a scenario that drops the connection needs it.
        # Taken out again afterwards: the server's request object holds the scope, so the pair would be a
        # reference cycle, every request's objects left for the garbage collector to find.
        scope[scenario_routes.SERVER_SEND] = send
        try:
            await super().__call__(scope, receive, send)
        finally:
            del scope[scenario_routes.SERVER_SEND]


async def _direct(sandbox: Sandbox, scope: Scope, receive: Receive, send: Send,
                  serve: Any = redox_routes.exchange) -> None:
    """POST /endpoint and /query (and the FHIR API) past Starlette's router and middleware, answered as
    they would answer: a RequestError rendered, anything else a logged 500 and then raised for the server
    to log too."""
    try:
        response = await serve(sandbox, scope, receive)
    except RequestError as error:
        response = render(error)
    except Exception as exc:
        response = await _bug(Request(scope), exc)
        await response(scope, receive, send)
        raise
    await response(scope, receive, send)


async def _http_error(request: Request, exc: Any) -> Response:
    """404 and 405 in the shape of the surface they hit."""
    path, method = request.url.path, request.method
    if exc.status_code == 405:
        text = f"Method {method} is not allowed on {path}"
    elif exc.status_code == 404:
        text = f"No route for {method} {path}"
    else:
        text = str(exc.detail)
    if path.startswith(control_routes.PREFIX):
        response = render(ControlError(text, status=exc.status_code))
    elif path.startswith(fhir_routes.PREFIX + "/"):
        response = fhir_routes.render(fhir_routes.fhir_error(RedoxError(text, status=exc.status_code))
                                      if exc.status_code != 404 else fhir_routes.no_module(
                                          path.split("/")[3] if path.count("/") >= 3 else "", text))
    else:
        response = render(RedoxError(text, module="Request", status=exc.status_code))
    response.headers.update(exc.headers or {})  # a 405's Allow (RFC 9110 15.5.6)
    return response


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return render(exc)


async def _bug(request: Request, exc: Exception) -> Response:
    """Our bug, not the client's: logged with its traceback, answered without one."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    text = "Internal emulator error; see the emulator's log"
    if request.url.path.startswith(control_routes.PREFIX):
        return render(ControlError(text, status=500))
    return render(RedoxError(text, type="transmission", module="Emulator", status=500))
