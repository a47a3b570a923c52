"""Recording each exchange on the Redox surface into the log store, secrets redacted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response
from starlette.types import Scope

from emulator import redaction
from emulator.routing import Outcome
from emulator.sandbox import Sandbox
from emulator.store import Log, LogStore, exchange_row


class Journal:
    """Started when a request arrives; `finish()` hands the exchange to the store and returns the response."""

    __slots__ = ("at", "id", "sandbox", "scope", "started")

    def __init__(self, sandbox: Sandbox, scope: Scope) -> None:
        self.sandbox = sandbox
        self.scope = scope  # the ASGI scope (`request.scope`): /endpoint is served without a Request object
        self.id = sandbox.store.next_exchange_id()
        self.started = time.perf_counter()
        self.at = sandbox.clock.now()

    def finish(self, response: Response, request_body: bytes = b"", *, logs: Sequence[Log] = (),
               source_id: str | None = None, redact_response: bool = False,
               scenario: dict[str, Any] | None = None, keys: Sequence[str] = ()) -> Response:
        scope = self.scope
        response_body = bytes(response.body)
        if redact_response:
            response_body = redaction.json_body(response_body)
        client = scope.get("client")
        self.sandbox.store.record_row(exchange_row(
            self.id, self.at, "in", scope["method"], scope["path"], response.status_code,
            (time.perf_counter() - self.started) * 1000, client[0] if client else "", source_id,
            redaction.headers(scope["headers"]), request_body, response_body, scenario), logs, keys)
        return response


async def committed(store: LogStore) -> None:
    """Wait, without blocking the event loop, until everything recorded so far is committed."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    def wake() -> None:  # on the store's acknowledgement thread
        loop.call_soon_threadsafe(settle)

    store.on_commit(wake)
    await done


async def queue_deliveries(sandbox: Sandbox, outcome: Outcome) -> None:
    """Hand events for webhooks to delivery, once their logs are recorded (call after `finish`).

    A 200 promises delivery: the answer waits until the queue rows are committed, so they survive a
    kill -9 from then on.
    """
    if outcome.deliveries:
        sandbox.delivery.enqueue(outcome.deliveries)
        await committed(sandbox.store)
