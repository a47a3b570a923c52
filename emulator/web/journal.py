"""Recording each exchange on the Redox surface into the log store, secrets redacted; durable answers.

An answer goes out only once what its request recorded is committed (`Journal.durable`): a 200 is
never sent for a request whose log a crash could lose. When the store cannot confirm it (no writer for
too long, or the writer could not store the frame), the client gets Redox's 503 with Retry-After
instead, and the exchange's record is corrected to say so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response
from starlette.types import Scope

from emulator import redaction
from emulator.sandbox import Sandbox
from emulator.store import Log, exchange_row
from emulator.web.responses import unavailable


class Journal:
    """Started when a request arrives; `finish()` hands the exchange to the store and returns the response;
    `durable()` returns it once committed; `answer()` does both."""

    __slots__ = ("at", "id", "sandbox", "scope", "started")

    def __init__(self, sandbox: Sandbox, scope: Scope) -> None:
        self.sandbox = sandbox
        self.scope = scope  # the ASGI scope (`request.scope`): /endpoint is served without a Request object
        self.id = sandbox.store.next_exchange_id()
        self.started = time.perf_counter()
        self.at = sandbox.clock.now()

    def finish(self, response: Response, request_body: bytes = b"", *, logs: Sequence[Log] = (),
               source_id: str | None = None, redact_response: bool = False,
               scenario: dict[str, Any] | None = None,
               ehr: Sequence[tuple[str, str, int, bytes | None]] = (), keys: Sequence[str] = ()) -> Response:
        scope = self.scope
        response_body = bytes(response.body)
        if redact_response:
            response_body = redaction.json_body(response_body)
        client = scope.get("client")
        self.sandbox.store.record_row(exchange_row(
            self.id, self.at, "in", scope["method"], scope["path"], response.status_code,
            (time.perf_counter() - self.started) * 1000, client[0] if client else "", source_id,
            redaction.headers(scope["headers"]), request_body, response_body, scenario), logs, ehr, keys)
        return response

    async def durable(self, response: Response) -> Response:
        """`response` once everything recorded so far (this exchange, its deliveries) is committed;
        Redox's 503 when the store cannot confirm it."""
        store = self.sandbox.store
        if await store.committed():
            return response
        failed = unavailable(store.problem, accepted=None)
        store.record_answer(self.id, failed.status_code, bytes(failed.body))
        return failed

    async def answer(self, response: Response, request_body: bytes = b"", **fields: Any) -> Response:
        self.finish(response, request_body, **fields)
        return await self.durable(response)
