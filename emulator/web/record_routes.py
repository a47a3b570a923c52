"""The recording proxy: every request on the Redox surface forwarded to an upstream, answered with its
answer, journaled as usual and kept for the scenario file (`redox-emulator record`).

Thin on purpose: what a recorded exchange becomes (rules, pushes, redaction) is
`scenarios/recording.py`. The upstream client is httpx with timeouts; an upstream that fails is
answered 502, one that does not answer in time 504, each with a Redox `Meta.Errors` body, and
recorded as such. Webhook traffic: the upstream delivers to `/__emulator/record/webhook`, which
forwards to the client's receiver (`--webhook-url`) and keeps each delivery for the file's `pushes`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import redaction
from emulator.errors import ControlError, RedoxError
from emulator.sandbox import Sandbox
from emulator.scenarios import recording
from emulator.scenarios.checker import check_text
from emulator.web.control_routes import PREFIX, _control
from emulator.web.journal import Journal
from emulator.web.responses import render

log = logging.getLogger(__name__)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# Not passed on either way: hop-by-hop (RFC 9110 7.6.1), and what the forwarding hop sets itself.
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
                  "host", "content-length", "content-encoding", "date", "server"})


@dataclass(slots=True)
class Session:
    """What one `record` run saw, and where its scenario file goes. Thread-safe appends; written once."""

    upstream: str
    out: Path
    webhook_url: str | None = None
    timeout: float = 125.0  # past Redox's own 120 s sync timeout: the upstream's 504 comes first
    started: float = field(default_factory=time.monotonic)
    exchanges: list[recording.Recorded] = field(default_factory=list)
    pushes: list[recording.RecordedPush] = field(default_factory=list)
    written: recording.Conversion | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def finish(self) -> recording.Conversion:
        """Write the scenario file (the first call only); the file always passes `redox-emulator check`."""
        with self._lock:
            if self.written is not None:
                return self.written
            conversion = recording.convert(
                self.exchanges, self.pushes,
                description=f"Recorded from {self.upstream}: {len(self.exchanges)} exchange(s), "
                            f"{len(self.pushes)} webhook delivery(ies). Replay it with "
                            f"`redox-emulator serve --scenario {self.out}`.")
            text = conversion.yaml()
            _, problems = check_text(text, str(self.out))
            if problems:  # our bug, not the user's: say so rather than write a file that does not load
                raise RuntimeError("the recorded scenario does not check:\n" + "\n".join(map(str, problems)))
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(text, encoding="utf-8")
            self.written = conversion
            log.info("recorded %d exchange(s) into %s", len(self.exchanges), self.out)
            return conversion


class RecordRoom:
    """The routes of a recording emulator; `stop` is called by POST /__emulator/record/stop."""

    def __init__(self, session: Session, stop: Callable[[], None] = lambda: None) -> None:
        self.session = session
        self.stop = stop
        self._client: httpx.AsyncClient | None = None
        self._in_flight = 0  # exchanges forwarded whose record is not yet kept (the event loop's only)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made in the server's event loop, on first use
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.session.timeout,
                                                                   connect=min(self.session.timeout, 10.0)),
                                             limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def forward(self, request: Request) -> Response:
        """Any request outside the control plane: to the upstream and back, journaled and kept."""
        if request.url.path.startswith(PREFIX):
            return render(ControlError(f"No route for {request.method} {request.url.path}", status=404))
        sandbox: Sandbox = request.app.state.sandbox
        journal = Journal(sandbox, request.scope)
        at = self.session.elapsed()
        body = await request.body()
        path, query = request.url.path, request.url.query
        url = self.session.upstream.rstrip("/") + path + (f"?{query}" if query else "")
        sent = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
        self._in_flight += 1
        try:
            response = await self._send(request.method, url, sent, body, _meta(body))
            headers = tuple((k.lower(), v) for k, v in response.headers.items())
            self.session.exchanges.append(recording.Recorded(request.method, path, tuple(sent), body,
                                                             response.status_code, headers, bytes(response.body), at))
        finally:
            self._in_flight -= 1
        auth = path in recording.AUTH_PATHS
        stored = (redaction.auth_form(body) if b"=" in body and not body.lstrip().startswith(b"{")
                  else redaction.auth_json(body)) if auth else body
        return await journal.answer(response, stored, redact_response=auth)

    async def _send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes,
                    meta: dict[str, Any]) -> Response:
        try:
            answer = await self.client().request(method, url, content=body,
                                                 headers=[(k, v) for k, v in headers if k not in _HOP])
        except httpx.TimeoutException:
            return render(RedoxError(f"Upstream {url} did not answer within {self.session.timeout:g} seconds",
                                     type="transmission", module="Send", status=504, meta=meta))
        except httpx.HTTPError as exc:
            return render(RedoxError(f"Upstream {url} failed: {type(exc).__name__}: {exc or 'no answer'}",
                                     type="transmission", module="Send", status=502, meta=meta))
        kept = {k: v for k, v in answer.headers.multi_items() if k.lower() not in _HOP}
        return Response(answer.content, answer.status_code, kept)

    async def webhook(self, request: Request) -> Response:
        """The upstream's deliveries and handshakes, on to the client's receiver and back."""
        target = self.session.webhook_url
        if not target:
            return render(ControlError("recording without --webhook-url: no receiver to forward deliveries to",
                                       status=404))
        at = self.session.elapsed()
        body = await request.body()
        query = request.url.query
        sent = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
        self._in_flight += 1
        try:
            response = await self._send(request.method, target + (f"?{query}" if query else ""), sent, body, {})
            self.session.pushes.append(recording.RecordedPush(request.method, tuple(sent), body,
                                                              response.status_code, at))
        finally:
            self._in_flight -= 1
        return response

    async def status(self, request: Request, sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]]:
        s = self.session
        return {}, {"upstream": s.upstream, "out": str(s.out), "exchanges": len(s.exchanges),
                    "pushes": len(s.pushes), "webhook": f"{request.base_url}{PREFIX[1:]}/record/webhook",
                    "written": s.written is not None}

    async def finish(self, request: Request, sandbox: Sandbox) -> tuple[dict[str, Any], dict[str, Any]]:
        # A delivery the receiver has answered may not be kept yet (its answer is on its way back
        # upstream): let every exchange under way finish, up to the upstream timeout, then write.
        deadline = time.monotonic() + self.session.timeout
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        conversion = self.session.finish()
        self.stop()
        return {}, {"out": str(self.session.out), "rules": len(conversion.document.get("rules") or []),
                    "pushes": len(conversion.document.get("pushes") or []), "notes": conversion.notes}

    def routes(self) -> tuple[list[Route], list[Route]]:
        """(routes before the control plane's, the catch-all that goes last)."""
        return ([Route(f"{PREFIX}/record", _control(self.status), methods=["GET"]),
                 Route(f"{PREFIX}/record/stop", _control(self.finish), methods=["POST"]),
                 Route(f"{PREFIX}/record/webhook", self.webhook, methods=["GET", "POST"])],
                [Route("/{path:path}", self.forward, methods=METHODS)])


def _meta(body: bytes) -> dict[str, Any]:
    """The request's Meta, echoed in an error answer as Redox does."""
    data = recording.json_or_none(body)
    meta = data.get("Meta") if isinstance(data, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}
