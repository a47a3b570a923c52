"""The log store: every HTTP exchange (the journal) and Redox's logs with their attempts, in SQLite.

One store, two views: an attempt points at the exchange that carried it, so request and response
bodies are kept once. Writes never touch the disk on the event loop: `record()` adds flat rows to a
frame that goes to the writer process (`store_writer.py`, which owns every write) through
`store_link.WriterLink`, and returns the frame's number; `await committed(n)` then waits for the
writer's acknowledgement, so an answer goes out only once its rows are committed. `flush()` waits
for everything recorded so far; reads and graceful shutdown call it. Reads use their own read-only
connection.
`":memory:"` is a temporary file (in /dev/shm where there is one), removed when the store closes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import marshal
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from emulator import log_filters, store_writer
from emulator.clock import iso as _iso
from emulator.store_link import WriterLink

log = logging.getLogger(__name__)


class LogType(StrEnum):
    SEND = "SEND"  # async, from a source
    RECEIVE = "RECEIVE"  # async, delivered to a destination
    REQUEST = "REQUEST"  # sync query, from a source
    RESPOND = "RESPOND"  # sync answer
    UNKNOWN = "UNKNOWN"  # failed before it could be typed


class LogStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # will not be retried
    FILTERED = "FILTERED"
    PENDING = "PENDING"


@dataclass(slots=True)
class Exchange:
    """One HTTP request and its answer, secrets already redacted."""

    id: int  # LogStore.next_exchange_id()
    at: float
    method: str
    path: str
    status: int
    latency_ms: float
    client: str = ""
    direction: str = "in"  # "in": a client called us; "out": we called a destination
    request_headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # raw, secrets redacted
    request_body: bytes = b""
    response_body: bytes = b""
    source_id: str | None = None
    scenario: dict[str, Any] | None = None  # with a scenario active: the rule that answered, or near misses


@dataclass(slots=True)
class Log:
    id: str
    created_at: float
    type: LogType
    status: LogStatus
    data_model: str | None
    event_type: str | None
    source_id: str | None = None
    source_name: str | None = None
    destination_id: str | None = None
    destination_name: str | None = None
    test: bool | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    # (AttemptID, exchange ID, time, HTTP status) for each attempt
    attempts: list[tuple[str, int, float, int]] = field(default_factory=list)


_MAX_PARAMS = 30_000  # SQLite's default limit is 32,766 bound parameters per statement
_LOG_COLUMNS = ("id, created_at, type, status, data_model, event_type, source_id, source_name, "
                "destination_id, destination_name, test, errors")
MAX_PAGE = 500
# A log's attempts: the one in its own row (see store_writer.SCHEMA), and those in attempts.
_ATTEMPT_COUNT = ("((logs.attempt_id IS NOT NULL) + "
                  "(SELECT COUNT(*) FROM attempts a WHERE a.log_id = logs.id))")
# Version 2 keeps no table of objects already written: for rows of small distinct values, faster than 4.
_MARSHAL_VERSION = 2


class LogStore:
    def __init__(self, path: str = ":memory:", *, sync: str = "normal") -> None:
        self._tempdir: str | None = None
        if path == ":memory:":
            shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            self._tempdir = tempfile.mkdtemp(prefix="redox-emulator-", dir=shm)
            file = os.path.join(self._tempdir, "logs.db")
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            file = path
        self.path = path
        self.file = file  # the SQLite file itself, for tools that read it directly
        try:
            self._link = WriterLink(file, sync)
        except BaseException:
            if self._tempdir:
                shutil.rmtree(self._tempdir, ignore_errors=True)
            raise
        self._db = sqlite3.connect(file, check_same_thread=False)
        self._db.execute("PRAGMA query_only=ON")
        # Exchange IDs continue from what the file holds: integers in arrival order, the table's rowid.
        first: int = self._db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM exchanges").fetchone()[0]
        self._exchange_ids = itertools.count(first)
        first = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM queue").fetchone()[0]
        self._queue_seqs = itertools.count(first)
        self._read_lock = threading.Lock()
        self._closed = False

    # ---- writing (any thread) -------------------------------------------------------------
    # Each call returns the number of the frame that carries it: `await committed(n)` before answering.
    def next_exchange_id(self) -> int:
        return next(self._exchange_ids)

    def record(self, exchange: Exchange | None, logs: Sequence[Log] = (),
               ehr: Sequence[tuple[str, str, int, bytes | None]] = ()) -> int:
        """Hand an exchange and its logs to the writer; returns at once unless the writer is far behind."""
        return self.record_row(None if exchange is None else _exchange_row(exchange), logs, ehr)

    def record_row(self, exchange_row: tuple[Any, ...] | None, logs: Sequence[Log] = (),
                   ehr: Sequence[tuple[str, str, int, bytes | None]] = (), keys: Sequence[str] = ()) -> int:
        """`record` given the exchange as `exchange_row(...)` built it: the journal's path, every request.

        `ehr`: the synthetic EHR's records the request changed, (kind, key, version, JSON or None),
        committed in the same transaction as its logs. `keys`: patient identifiers the logs are about,
        for search by MRN, when the request body does not list them (a FHIR exchange: they are in its
        URL or its answer). Both travel in the request's one item, so the writer's backlog grows by one
        item a request. Rows are flattened here into tuples of strings, bytes and numbers, and `_put`
        marshals them: a backlog is then bytes alone, which costs the garbage collector nothing.
        """
        attempts = [(a_id, entry.id, ex_id, at, status) for entry in logs for a_id, ex_id, at, status in entry.attempts]
        key_rows = tuple((key, entry.id) for key in keys[:store_writer.MAX_KEYS] for entry in logs)
        return self._put(("rec", exchange_row, [_log_row(entry) for entry in logs], attempts, tuple(ehr), key_rows))

    def update_status(self, log_id: str, status: LogStatus) -> int:
        return self._put(("status", status.value, log_id))

    def record_answer(self, exchange_id: int, status: int, body: bytes) -> int:
        """The answer a recorded exchange got in the end (a 503: its commit was not confirmed in time)."""
        return self._put(("answer", exchange_id, status, body))

    def record_attempt(self, exchange: Exchange, log_id: str, attempt_id: str, status: LogStatus | None = None
                       ) -> int:
        """One more attempt at a log (a delivery to a webhook), carried by `exchange`; maybe a new status."""
        n = self._put(("rec", _exchange_row(exchange), (),
                       ((attempt_id, log_id, exchange.id, exchange.at, exchange.status),), (), ()))
        if status is not None:
            n = self._put(("status", status.value, log_id))
        return n

    def put_ehr(self, records: Sequence[tuple[str, str, int, bytes | None]]) -> int:
        """EHR changes that no logged request carries (a scenario's setup patients)."""
        return self._put(("ehr", tuple(records))) if records else self.mark()

    def ehr_records(self) -> list[tuple[str, str, int, bytes | None]]:
        """The synthetic EHR's records kept in the store, (kind, key, version, JSON or None)."""
        self.flush()
        with self._read_lock:
            rows = self._db.execute("SELECT kind, key, version, data FROM ehr_records UNION ALL "
                                    "SELECT kind, key, version, data FROM ehr_appended ORDER BY version").fetchall()
        return [(r[0], r[1], r[2], None if r[3] is None else bytes(r[3])) for r in rows]

    # ---- the delivery queue and run-time destinations (durable across restarts) ---------------
    def next_queue_seq(self) -> int:
        return next(self._queue_seqs)

    def enqueue(self, seq: int, log_id: str, destination_id: str, body: bytes) -> int:
        return self._put(("enqueue", seq, log_id, destination_id, body))

    def dequeue(self, seq: int) -> int:
        return self._put(("dequeue", seq))

    def queued(self) -> list[tuple[int, str, str, bytes]]:
        """Every message not yet delivered, (seq, log ID, destination ID, body), oldest first."""
        self.flush()
        with self._read_lock:
            rows = self._db.execute("SELECT seq, log_id, destination_id, body FROM queue ORDER BY seq").fetchall()
        return [(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def put_destination(self, destination_id: str, config: dict[str, Any] | None) -> int:
        """Keep a run-time destination's config (None: forget it)."""
        return self._put(("destination", destination_id,
                          None if config is None else orjson.dumps(config).decode()))

    def saved_destinations(self) -> list[dict[str, Any]]:
        self.flush()
        with self._read_lock:
            rows = self._db.execute("SELECT config FROM destinations ORDER BY rowid").fetchall()
        return [orjson.loads(row[0]) for row in rows]

    def put_upload(self, upload_id: str, at: float, source_id: str, filename: str, content_type: str,
                   data: bytes) -> int:
        return self._put(("upload", upload_id, at, source_id, filename, content_type, data))

    def _put(self, item: tuple[Any, ...]) -> int:
        return self._link.put(marshal.dumps(item, _MARSHAL_VERSION))

    # ---- durability -----------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Whether a writer is running: False between its death and its restart."""
        return self._link.available

    @property
    def problem(self) -> str | None:
        """Why the store cannot take writes now (None: it can)."""
        return self._link.problem

    @property
    def writer_pid(self) -> int:
        return self._link.pid

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Settle the answers waiting on `loop` in its own poll (a server's loop; call on its thread)."""
        self._link.attach(loop)

    def detach(self) -> None:
        self._link.detach()

    def mark(self) -> int:
        """The frame number that covers everything recorded so far (by any thread)."""
        return self._link.mark()

    async def committed(self, n: int | None = None) -> bool:
        """Wait until frame `n` (default: everything recorded so far) is committed, without blocking the
        loop. False when it could not be: answer 503, never 200."""
        return await self._link.committed(self.mark() if n is None else n)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until everything recorded before this call is committed (reads call it first).

        While no writer runs it returns at once: reads then see what is committed, and a request
        reading logs on the event loop does not hold it.
        """
        n = self._link.cut_now()
        if not self._link.wait(n, timeout) and self._link.available:
            log.warning("log store flush timed out after %.1fs", timeout)

    def clear(self) -> None:
        self._put(("clear",))
        self.flush()

    def close(self) -> None:
        """Commit everything (however long the backlog takes: nothing answered may be lost), then stop."""
        if self._closed:
            return
        self._closed = True
        self._link.close()
        with self._read_lock:
            self._db.close()
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def get_upload(self, upload_id: str) -> tuple[str, str, bytes] | None:
        """(filename, content type, bytes) of an uploaded file."""
        self.flush()
        with self._read_lock:
            row = self._db.execute("SELECT filename, content_type, data FROM uploads WHERE id = ?",
                                   (upload_id,)).fetchone()
        return None if row is None else (row[0], row[1], bytes(row[2]))

    # ---- reading ----------------------------------------------------------------------------
    def list_logs(self, filters: dict[str, Any], limit: int = 50, cursor: int | None = None, *,
                  after: int | None = None, full: bool = False, fresh: bool = True
                  ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of logs, newest first, and the cursor of the next page (None at the end).

        `filters`: see `log_filters`. `after`: only logs newer than that seq (a live view's last one).
        `full`: each log with its attempts and their bodies, as `get_log` gives them. `fresh=False`
        skips the flush: what is committed is enough for a poller, which must not wait for the writer.
        """
        if fresh:
            self.flush()
        with self._read_lock:
            filters, window_end = self._resolve_search(filters, cursor)
            where, params = log_filters.where(filters)
            if cursor is not None:
                where.append("logs.seq < ?")
                params.append(cursor)
            if after is not None:
                where.append("logs.seq > ?")
                params.append(after)
            if window_end is not None:
                where.append("logs.seq >= ?")
                params.append(window_end)
            sql = (f"SELECT seq, {_LOG_COLUMNS}, {_ATTEMPT_COUNT} "
                   f"FROM logs {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq DESC LIMIT ?")
            rows = self._db.execute(sql, [*params, limit + 1]).fetchall()
            page = rows[:limit]
            attempts = self._attempts([row[1] for row in page]) if full else {}
            next_cursor = page[-1][0] if len(rows) > limit else None
            if next_cursor is None and window_end is not None and (after is None or window_end > after + 1) \
                    and self._db.execute("SELECT 1 FROM logs WHERE seq < ? LIMIT 1", (window_end,)).fetchone():
                next_cursor = window_end  # the window ended before the page filled: older logs remain
        views = [_log_view(row[1:-1], attempt_count=row[-1]) for row in page]
        if full:
            for view in views:
                view["attempts"] = attempts.get(view["id"], [])
        return views, next_cursor

    def _resolve_search(self, filters: dict[str, Any], cursor: int | None
                        ) -> tuple[dict[str, Any], int | None]:
        """`q` as a log ID or a patient identifier when it is one (indexed); else text, scanned in a window
        of log_filters.TEXT_WINDOW logs below `cursor`: returns the filters and the window's lowest seq."""
        term = filters.get("q")
        if term is None:
            return filters, None
        rest = {k: v for k, v in filters.items() if k != "q"}
        if self._db.execute("SELECT 1 FROM logs WHERE id = ?", (term,)).fetchone():
            return {**rest, "logId": term}, None
        if self._db.execute("SELECT 1 FROM log_keys WHERE key = ?1 UNION ALL SELECT 1 FROM log_keys_recent r, "
                            "json_each(r.keys) j WHERE j.value = ?1 LIMIT 1", (term,)).fetchone():
            return {**rest, "mrn": term}, None
        top = cursor if cursor is not None else self._db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM logs").fetchone()[0]
        return filters, max(1, top - log_filters.TEXT_WINDOW)

    def latest_seq(self) -> int:
        """The newest log's seq (0 when there is none), as committed: no flush, for pollers."""
        with self._read_lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM logs").fetchone()[0])

    def log_views(self, log_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The list views of these logs as committed (no flush): a live view refreshes its pending ones."""
        if not log_ids:
            return []
        marks = ",".join("?" * len(log_ids))
        with self._read_lock:
            rows = self._db.execute(
                f"SELECT {_LOG_COLUMNS}, {_ATTEMPT_COUNT} "
                f"FROM logs WHERE id IN ({marks})", list(log_ids)).fetchall()
        return [_log_view(row[:-1], attempt_count=row[-1]) for row in rows]

    def get_log(self, log_id: str) -> dict[str, Any] | None:
        self.flush()
        with self._read_lock:
            row = self._db.execute(f"SELECT {_LOG_COLUMNS} FROM logs WHERE id = ?", (log_id,)).fetchone()
            if row is None:
                return None
            attempts = self._attempts([log_id]).get(log_id, [])
        view = _log_view(row, attempt_count=len(attempts))
        view["attempts"] = attempts
        return view

    def _attempts(self, log_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Each log's attempts, oldest first, with the bodies of the exchanges that carried them."""
        found: dict[str, list[dict[str, Any]]] = {}
        if not log_ids:
            return found
        marks = ",".join("?" * len(log_ids))
        bodies = "e.method, e.path, e.latency_ms, e.request_body, e.response_body, e.scenario"
        rows = self._db.execute(
            f"SELECT l.id, l.attempt_id, l.attempt_at, l.attempt_status, {bodies} FROM logs l "
            f"LEFT JOIN exchanges e ON e.id = l.attempt_exchange WHERE l.id IN ({marks}) AND l.attempt_id IS NOT NULL "
            f"UNION ALL SELECT a.log_id, a.id, a.at, a.status, {bodies} FROM attempts a "
            f"LEFT JOIN exchanges e ON e.id = a.exchange_id WHERE a.log_id IN ({marks}) ORDER BY 3",
            [*log_ids, *log_ids]).fetchall()
        for a in rows:
            found.setdefault(a[0], []).append(
                {"id": a[1], "createdAt": _iso(a[2]), "httpStatus": a[3], "method": a[4], "url": a[5],
                 "latencyMs": a[6], "request": _body(a[7]), "response": _body(a[8]),
                 **({"scenario": orjson.loads(a[9])} if a[9] is not None else {})})
        return found

    def exchanges(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The journal, oldest first: what clients sent and what they got."""
        self.flush()
        with self._read_lock:
            rows = self._db.execute(
                "SELECT id, at, direction, method, path, status, latency_ms, client, source_id, "
                "request_headers, request_body, response_body, scenario FROM exchanges ORDER BY id LIMIT ?",
                (limit,)).fetchall()
        return [
            {"id": r[0], "createdAt": _iso(r[1]), "direction": r[2], "method": r[3], "path": r[4],
             "status": r[5], "latencyMs": r[6], "client": r[7], "sourceId": r[8],
             "requestHeaders": orjson.loads(r[9]), "request": _body(r[10]), "response": _body(r[11]),
             **({"scenario": orjson.loads(r[12])} if r[12] is not None else {})}
            for r in rows
        ]

    def count(self) -> int:
        self.flush()
        with self._read_lock:
            return int(self._db.execute("SELECT COUNT(*) FROM logs").fetchone()[0])


def _pack(item: tuple[Any, ...]) -> bytes:
    """An item for the writer as the pending deque holds it (see store_writer's frames)."""
    return marshal.dumps(item, _MARSHAL_VERSION)


def exchange_row(id_: int, at: float, direction: str, method: str, path: str, status: int, latency_ms: float,
                 client: str, source_id: str | None, request_headers: list[tuple[bytes, bytes]],
                 request_body: bytes, response_body: bytes, scenario: dict[str, Any] | None) -> tuple[Any, ...]:
    """An exchange as the writer takes it, from its fields in `Exchange`'s meaning (secrets already redacted)."""
    return (id_, at, direction, method, path, status, latency_ms, client, source_id, request_headers,
            request_body, response_body, scenario)  # the writer makes JSON of the headers and the scenario


def _exchange_row(e: Exchange) -> tuple[Any, ...]:
    return exchange_row(e.id, e.at, e.direction, e.method, e.path, e.status, e.latency_ms, e.client, e.source_id,
                        e.request_headers, e.request_body, e.response_body, e.scenario)


def _log_row(entry: Log) -> tuple[Any, ...]:
    # str() of a StrEnum member is its value, without the Enum property's Python-level lookup.
    return (entry.id, entry.created_at, str(entry.type), str(entry.status), entry.data_model,
            entry.event_type, entry.source_id, entry.source_name, entry.destination_id,
            entry.destination_name, None if entry.test is None else int(entry.test),
            entry.errors)  # the writer turns errors into JSON


def _log_view(row: Sequence[Any], *, attempt_count: int) -> dict[str, Any]:
    (id_, created, type_, status, model, event, src_id, src_name, dst_id, dst_name, test, errors) = row
    return {
        "id": id_, "createdAt": _iso(created), "type": type_, "status": status,
        "dataModel": model, "eventType": event,
        "source": {"ID": src_id, "Name": src_name} if src_id else None,
        "destination": {"ID": dst_id, "Name": dst_name} if dst_id else None,
        "test": None if test is None else bool(test),
        "errors": orjson.loads(errors), "attemptCount": attempt_count,
    }


def _body(raw: bytes | str | None) -> Any:
    """A stored body for display: parsed JSON when it is JSON, text otherwise."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode()
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
        orjson.dumps(value)  # what can be read but not written back (too deep) is shown as text
        return value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return raw.decode("utf-8", errors="replace")
