"""Redox's logs for people: the list with filters and search, one log, and a live stream of new ones.

    GET /__emulator/logs            newest first; filters (`log_filters.NAMES`), limit, cursor, full
    GET /__emulator/logs/stream     Server-Sent Events: `log` for each new log, `update` when a
                                    pending one changes, `reset` when the store was emptied
    GET /__emulator/logs/{id}       one log with its attempts and their bodies
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from emulator import catalog, log_filters
from emulator.errors import ControlError
from emulator.sandbox import Sandbox
from emulator.store import MAX_PAGE, LogStatus, LogStore, LogType
from emulator.web.control_routes import PREFIX, _control, _integer

Result = tuple[dict[str, Any], dict[str, Any]]
PAGE_PARAMS = ("limit", "cursor", "full")
STREAM_PARAMS = ("after", "seconds")
MAX_SEARCH = 200  # characters of a search term
MAX_CURSOR = 2**62  # a log seq: SQLite integers stop at 2**63
POLL_SECONDS = 0.4  # how often a stream looks for new logs: live to a person, nothing to the store
PING_SECONDS = 15.0  # a comment line now and then, so proxies and clients see the stream is alive
STREAM_BATCH = 200  # at most this many new logs per poll: a flood shows its newest
WATCHED = 500  # pending logs a stream keeps refreshing


def parse_filters(params: QueryParams, extra: tuple[str, ...]) -> dict[str, Any]:
    """The filters of a query string, checked; ControlError naming the bad one otherwise."""
    allowed = (*log_filters.NAMES, *extra)
    for key in params:
        if key not in allowed:
            raise ControlError(f"unknown filter {key!r}.{catalog.did_you_mean(key, allowed)} "
                               f"Filters: {', '.join(allowed)}")
    filters: dict[str, Any] = {}
    for key in ("logId", "dataModel", "eventType", "sourceId", "destinationId", "mrn", "q"):
        if key in params:
            if len(params[key]) > MAX_SEARCH:
                raise ControlError(f"{key} must be at most {MAX_SEARCH} characters, found {len(params[key])}")
            value = params[key].strip()
            if not value:
                raise ControlError(f"{key} must not be empty")
            filters[key] = value
    for key, enum in (("status", LogStatus), ("type", LogType)):
        if key in params:
            value = params[key].upper()
            if value not in enum.__members__:
                raise ControlError(f"{key} must be one of {', '.join(enum.__members__)}, found {params[key]!r}")
            filters[key] = value
    for key in ("createdAfter", "createdBefore"):
        if key in params:
            filters[key] = _instant(key, params[key])
    return filters


async def list_logs(request: Request, sandbox: Sandbox) -> Result:
    params = request.query_params
    filters = parse_filters(params, PAGE_PARAMS)
    limit = _integer("limit", params.get("limit", "50"), 1, MAX_PAGE)
    cursor = _integer("cursor", params["cursor"], 0, MAX_CURSOR) if "cursor" in params else None
    full = _flag("full", params.get("full", "false"))
    logs, next_cursor = sandbox.store.list_logs(filters, limit, cursor, full=full)
    return ({"count": len(logs), "limit": limit, "nextCursor": None if next_cursor is None else str(next_cursor)},
            {"logs": logs})


async def get_log(request: Request, sandbox: Sandbox) -> Result:
    found = sandbox.store.get_log(request.path_params["log_id"])
    if found is None:
        raise ControlError(f"no log with ID {request.path_params['log_id']}", status=404)
    return {}, {"log": found}


async def stream(request: Request, sandbox: Sandbox) -> StreamingResponse:
    """New logs as they are stored (oldest first), and the changes of pending ones, until the client goes."""
    params = request.query_params
    filters = parse_filters(params, STREAM_PARAMS)
    after = _integer("after", params["after"], 0, 2**62) if "after" in params else None
    seconds = float(_integer("seconds", params["seconds"], 1, 86_400)) if "seconds" in params else None
    stopping: Callable[[], bool] = getattr(request.app.state, "stopping", lambda: False)
    events = _events(sandbox.store, filters, after, seconds, stopping)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def _events(store: LogStore, filters: dict[str, Any], after: int | None, seconds: float | None,
                  stopping: Callable[[], bool]) -> AsyncIterator[bytes]:
    # Reads run in a worker thread: a poller must never hold the event loop that serves /endpoint.
    last = await asyncio.to_thread(store.latest_seq) if after is None else after
    yield _event("hello", {"seq": last})
    pending: dict[str, tuple[str, int]] = {}  # log ID -> (status, attempt count) last sent
    recent, _ = await asyncio.to_thread(store.list_logs, {**filters, "status": "PENDING"}, WATCHED, None,
                                        fresh=False)
    pending.update((v["id"], (v["status"], v["attemptCount"])) for v in recent)
    deadline = None if seconds is None else time.monotonic() + seconds
    quiet_since = time.monotonic()
    while not stopping() and (deadline is None or time.monotonic() < deadline):
        await asyncio.sleep(POLL_SECONDS)
        sent: list[bytes] = []
        top = await asyncio.to_thread(store.latest_seq)
        if top < last:  # the store was reset: the page should start over
            sent.append(_event("reset", {"seq": top}))
            pending.clear()
        elif top > last:
            fresh, _ = await asyncio.to_thread(store.list_logs, filters, STREAM_BATCH, top + 1, after=last,
                                               fresh=False)
            for view in reversed(fresh):
                sent.append(_event("log", view))
                if view["status"] == LogStatus.PENDING:
                    pending[view["id"]] = (view["status"], view["attemptCount"])
        last = top
        if pending:
            for view in await asyncio.to_thread(store.log_views, list(pending)[-WATCHED:]):
                state = (view["status"], view["attemptCount"])
                if state != pending.get(view["id"]):
                    sent.append(_event("update", view))
                    pending[view["id"]] = state
                if view["status"] != LogStatus.PENDING:
                    pending.pop(view["id"], None)
        if not sent and time.monotonic() - quiet_since >= PING_SECONDS:
            sent.append(b": ping\n\n")
        if sent:
            quiet_since = time.monotonic()
            yield b"".join(sent)
    yield _event("bye", {"seq": last})


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _flag(name: str, raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ControlError(f"{name} must be true or false, found {raw!r}")


def _instant(name: str, raw: str) -> float:
    """An ISO-8601 time (with a zone, or UTC) or epoch seconds."""
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ControlError(f"{name} must be an ISO-8601 time or epoch seconds, found {raw!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if value != value or value in (float("inf"), float("-inf")):
        raise ControlError(f"{name} must be a finite time, found {raw!r}")
    return value


routes = [
    Route(f"{PREFIX}/logs", _control(list_logs), methods=["GET"]),
    Route(f"{PREFIX}/logs/stream", _control(stream), methods=["GET"]),
    Route(f"{PREFIX}/logs/{{log_id}}", _control(get_log), methods=["GET"]),
]
