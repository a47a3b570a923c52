"""The log store: every HTTP exchange (the journal) and Redox's logs with their attempts, in SQLite.

One store, two views: an attempt points at the exchange that carried it, so request and response
bodies are kept once. Writes never touch the disk on a request's path: `record()` hands rows to a
writer thread that commits them in batches; `flush()` waits until everything handed over so far is
committed, which reads and graceful shutdown call so that no answered request is missing.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from emulator.clock import iso as _iso

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

    id: str
    at: float
    method: str
    path: str
    status: int
    latency_ms: float
    client: str = ""
    direction: str = "in"  # "in": a client called us; "out": we called a destination
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: bytes = b""
    response_body: bytes = b""
    source_id: str | None = None


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
    attempts: list[tuple[str, str, float, int]] = field(default_factory=list)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    at REAL NOT NULL,
    direction TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    client TEXT NOT NULL,
    source_id TEXT,
    request_headers BLOB NOT NULL,
    request_body BLOB NOT NULL,
    response_body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS exchanges_at ON exchanges (at);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    data_model TEXT,
    event_type TEXT,
    source_id TEXT,
    source_name TEXT,
    destination_id TEXT,
    destination_name TEXT,
    test INTEGER,
    errors TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_model_event ON logs (data_model, event_type);
CREATE INDEX IF NOT EXISTS logs_created ON logs (created_at);
CREATE INDEX IF NOT EXISTS logs_status ON logs (status);
CREATE TABLE IF NOT EXISTS attempts (
    id TEXT PRIMARY KEY,
    log_id TEXT NOT NULL,
    exchange_id TEXT NOT NULL,
    at REAL NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_log ON attempts (log_id);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    source_id TEXT,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data BLOB NOT NULL
);
"""

_EXCHANGE_COLUMNS = ("id, at, direction, method, path, status, latency_ms, client, source_id, request_headers, "
                     "request_body, response_body")
_MAX_PARAMS = 30_000  # SQLite's default limit is 32,766 bound parameters per statement
_LOG_COLUMNS = ("id, created_at, type, status, data_model, event_type, source_id, source_name, "
                "destination_id, destination_name, test, errors")
_FILTERS = {
    "dataModel": "data_model = ?",
    "eventType": "event_type = ?",
    "status": "status = ?",
    "type": "type = ?",
    "createdAfter": "created_at >= ?",
    "createdBefore": "created_at < ?",
}
MAX_PAGE = 500
BACKLOG_LIMIT = 20_000  # queued writes before record() makes its caller wait


class LogStore:
    def __init__(self, path: str = ":memory:", *, batch: int = 512) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection shared under a lock: simple, and right for both a file and ":memory:".
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, cached_statements=512)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Logs are a debugging record: surviving a crash of the emulator is enough (the OS keeps the
        # writes); surviving a power cut is not worth a disk sync on every checkpoint.
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MB: index pages stay in memory as the store grows
        self._db.execute("PRAGMA wal_autocheckpoint=20000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._batch = batch
        self._writer = threading.Thread(target=self._write_loop, name="log-store-writer", daemon=True)
        self._writer.start()
        self.path = path

    # ---- writing (any thread) -------------------------------------------------------------
    def record(self, exchange: Exchange | None, logs: Sequence[Log] = ()) -> None:
        """Hand an exchange and its logs to the writer; returns at once unless the writer is far behind.

        Rows are flattened here into tuples of strings, bytes and numbers: a backlog of them costs the
        garbage collector nothing, where a backlog of dataclasses and dicts made every full collection slow.
        """
        attempts = tuple((a_id, entry.id, ex_id, at, status)
                         for entry in logs for a_id, ex_id, at, status in entry.attempts)
        self._put(("rec", None if exchange is None else _exchange_row(exchange),
                   tuple(_log_row(entry) for entry in logs), attempts))

    def update_status(self, log_id: str, status: LogStatus) -> None:
        self._put(("status", status.value, log_id))

    def put_upload(self, upload_id: str, at: float, source_id: str, filename: str, content_type: str,
                   data: bytes) -> None:
        self._put(("upload", upload_id, at, source_id, filename, content_type, data))

    def _put(self, item: tuple[Any, ...]) -> None:
        # Back-pressure: when the writer is this far behind, the caller waits rather than memory growing.
        if self._queue.qsize() > BACKLOG_LIMIT:
            while self._queue.qsize() > BACKLOG_LIMIT // 2 and self._writer.is_alive():
                time.sleep(0.001)
        self._queue.put(item)

    def get_upload(self, upload_id: str) -> tuple[str, str, bytes] | None:
        """(filename, content type, bytes) of an uploaded file."""
        self.flush()
        with self._lock:
            row = self._db.execute("SELECT filename, content_type, data FROM uploads WHERE id = ?",
                                   (upload_id,)).fetchone()
        return None if row is None else (row[0], row[1], bytes(row[2]))

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until everything recorded before this call is committed."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            log.warning("log store flush timed out after %.1fs", timeout)

    def close(self) -> None:
        self.flush(timeout=None)  # however long the backlog takes: nothing answered may be lost
        self._queue.put(None)
        self._writer.join()
        with self._lock:
            self._db.close()

    def clear(self) -> None:
        self.flush()
        with self._lock:
            self._db.executescript(
                "DELETE FROM attempts; DELETE FROM logs; DELETE FROM exchanges; DELETE FROM uploads;")

    def _write_loop(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < self._batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write([i for i in items if isinstance(i, tuple)])
            except Exception:  # a storage bug must never kill the writer and lose later logs
                log.exception("log store write failed")
            for i in items:
                if isinstance(i, threading.Event):
                    i.set()
            if None in items:
                return

    def _write(self, items: list[tuple[Any, ...]]) -> None:
        if not items:
            return
        exchanges: list[tuple[Any, ...]] = []
        logs: list[tuple[Any, ...]] = []
        attempts: list[tuple[Any, ...]] = []
        statuses: list[tuple[Any, ...]] = []
        uploads: list[tuple[Any, ...]] = []
        for item in items:
            kind = item[0]
            if kind == "rec":
                if item[1] is not None:
                    exchanges.append(item[1])
                logs.extend(item[2])
                attempts.extend(item[3])
            elif kind == "status":
                statuses.append(item[1:])
            elif kind == "upload":
                uploads.append(item[1:])
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._insert("exchanges", _EXCHANGE_COLUMNS, exchanges)
                self._insert("logs", _LOG_COLUMNS, logs)
                self._insert("attempts", "id, log_id, exchange_id, at, status", attempts)
                self._insert("uploads", "id, at, source_id, filename, content_type, data", uploads)
                self._db.executemany("UPDATE logs SET status = ? WHERE id = ?", statuses)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _insert(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        """Many rows per statement: sqlite3 releases the GIL once per statement, not once per row,
        so the writer thread stops taking the interpreter away from the event loop row by row."""
        if not rows:
            return
        width = len(rows[0])
        per_statement = max(1, _MAX_PARAMS // width)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            values = ",".join(["(" + ",".join("?" * width) + ")"] * len(chunk))
            self._db.execute(f"INSERT OR REPLACE INTO {table} ({columns}) VALUES {values}",
                             [value for row in chunk for value in row])

    # ---- reading ----------------------------------------------------------------------------
    def list_logs(self, filters: dict[str, Any], limit: int = 50, cursor: int | None = None
                  ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of logs, newest first, and the cursor of the next page (None at the end)."""
        self.flush()
        where, params = [], []
        for key, value in filters.items():
            where.append(_FILTERS[key])
            params.append(value)
        if cursor is not None:
            where.append("seq < ?")
            params.append(cursor)
        sql = (f"SELECT seq, {_LOG_COLUMNS}, (SELECT COUNT(*) FROM attempts a WHERE a.log_id = logs.id) "
               f"FROM logs {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq DESC LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, [*params, limit + 1]).fetchall()
        page = rows[:limit]
        next_cursor = page[-1][0] if len(rows) > limit else None
        return [_log_view(row[1:-1], attempt_count=row[-1]) for row in page], next_cursor

    def get_log(self, log_id: str) -> dict[str, Any] | None:
        self.flush()
        with self._lock:
            row = self._db.execute(f"SELECT {_LOG_COLUMNS} FROM logs WHERE id = ?", (log_id,)).fetchone()
            if row is None:
                return None
            attempts = self._db.execute(
                "SELECT a.id, a.at, a.status, e.method, e.path, e.latency_ms, e.request_body, e.response_body "
                "FROM attempts a LEFT JOIN exchanges e ON e.id = a.exchange_id WHERE a.log_id = ? ORDER BY a.at",
                (log_id,)).fetchall()
        view = _log_view(row, attempt_count=len(attempts))
        view["attempts"] = [
            {"id": a[0], "createdAt": _iso(a[1]), "httpStatus": a[2], "method": a[3], "url": a[4],
             "latencyMs": a[5], "request": _body(a[6]), "response": _body(a[7])}
            for a in attempts
        ]
        return view

    def exchanges(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The journal, oldest first: what clients sent and what they got."""
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, direction, method, path, status, latency_ms, client, source_id, "
                "request_headers, request_body, response_body FROM exchanges ORDER BY seq LIMIT ?",
                (limit,)).fetchall()
        return [
            {"id": r[0], "createdAt": _iso(r[1]), "direction": r[2], "method": r[3], "path": r[4],
             "status": r[5], "latencyMs": r[6], "client": r[7], "sourceId": r[8],
             "requestHeaders": orjson.loads(r[9]), "request": _body(r[10]), "response": _body(r[11])}
            for r in rows
        ]

    def count(self) -> int:
        self.flush()
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM logs").fetchone()[0])


def _exchange_row(e: Exchange) -> tuple[Any, ...]:
    return (e.id, e.at, e.direction, e.method, e.path, e.status, e.latency_ms, e.client, e.source_id,
            orjson.dumps(e.request_headers), e.request_body, e.response_body)


def _log_row(entry: Log) -> tuple[Any, ...]:
    return (entry.id, entry.created_at, entry.type.value, entry.status.value, entry.data_model,
            entry.event_type, entry.source_id, entry.source_name, entry.destination_id,
            entry.destination_name, None if entry.test is None else int(entry.test),
            orjson.dumps(entry.errors).decode())


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
