"""The log store's writer: a separate process that owns every write to the SQLite file.

Run as a script with only the standard library (`python -I store_writer.py FILE`), so it starts in
milliseconds. The emulator's process hands it batches of rows over stdin; SQLite's work then runs on
another core and never competes with the event loop for the GIL. Frames on stdin are a 4-byte
big-endian length and a `marshal`-ed list of items, each item itself `marshal`-ed bytes:

    ("rec", exchange_row | None, (log_row, ...), (attempt_row, ...)[, ((key, log_id), ...)])
                        the logs' patient identifiers are read here from the exchange's request body,
                        or given (FHIR exchanges: the identifiers of the patients in the answer)
    ("status", status, log_id)
    ("upload", id, at, source_id, filename, content_type, data)
    ("enqueue", seq, log_id, destination_id, body)    a message for a webhook destination
    ("dequeue", seq)                                   delivered (or purged)
    ("destination", id, config_json | None)           a destination registered at run time (None: removed)
    ("clear",)          delete everything
    ("flush", n)        answered with the line `ack n` once everything before it is committed

One frame is one transaction. End of input (the emulator stopped, even by kill -9) commits and exits.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import re
import sqlite3
import sys
from typing import Any, BinaryIO

SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY,  -- given by the emulator in arrival order: the rowid, no index of its own
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
    response_body BLOB NOT NULL,
    scenario TEXT  -- JSON: the scenario rule that answered, or the near misses when none did
);
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
CREATE INDEX IF NOT EXISTS logs_status ON logs (status);
CREATE INDEX IF NOT EXISTS logs_model ON logs (data_model);  -- with the rowid: newest first without a sort
CREATE INDEX IF NOT EXISTS logs_type ON logs (type);
CREATE TABLE IF NOT EXISTS log_keys (  -- patient identifiers (MRNs...) of each log, for search by MRN
    key TEXT NOT NULL,
    log_id TEXT NOT NULL,
    PRIMARY KEY (key, log_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    log_id TEXT NOT NULL,
    id TEXT NOT NULL,
    exchange_id INTEGER NOT NULL,
    at REAL NOT NULL,
    status INTEGER NOT NULL,
    PRIMARY KEY (log_id, id)
) WITHOUT ROWID;  -- one B-tree, read by log: each attempt costs one insert, not two
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY,  -- FIFO order within each destination
    log_id TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS destinations (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    source_id TEXT,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data BLOB NOT NULL
);
"""
EXCHANGE_COLUMNS = ("id, at, direction, method, path, status, latency_ms, client, source_id, request_headers, "
                    "request_body, response_body, scenario")
LOG_COLUMNS = ("id, created_at, type, status, data_model, event_type, source_id, source_name, "
               "destination_id, destination_name, test, errors")
ATTEMPT_COLUMNS = "id, log_id, exchange_id, at, status"
UPLOAD_COLUMNS = "id, at, source_id, filename, content_type, data"
QUEUE_COLUMNS = "seq, log_id, destination_id, body"
KEY_COLUMNS = "key, log_id"
_MAX_PARAMS = 30_000  # SQLite's default limit is 32,766 bound parameters per statement


SCHEMA_VERSION = 4
MAX_KEYS = 20  # identifiers kept per log: a query for many patients still costs a bounded write
_ID = re.compile(rb'"ID"\s*:\s*"([^"\\]{1,200})"')


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, cached_statements=512)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    has_tables = db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if has_tables and version != SCHEMA_VERSION:
        raise ValueError(f"{path} holds logs in another layout (version {version}, this emulator writes "
                         f"{SCHEMA_VERSION}): move it away, or serve with another --db")
    db.execute("PRAGMA journal_mode=WAL")
    # Logs are a debugging record: surviving a crash of the emulator is enough (the OS keeps the
    # writes); surviving a power cut is not worth a disk sync at every checkpoint.
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-65536")  # 64 MB: index pages stay in memory as the store grows
    db.execute("PRAGMA wal_autocheckpoint=20000")
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return db


class Writer:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.statuses: list[tuple[Any, ...]] = []
        self.dequeued: list[tuple[int]] = []
        self.destinations: list[tuple[str, str | None]] = []
        self.statements: dict[tuple[str, int], str] = {}  # (table, rows): the INSERT text for that many rows

    def apply(self, items: list[tuple[Any, ...]]) -> list[int]:
        """Write one frame in one transaction; returns the flush markers it carried."""
        acks: list[int] = []
        self.db.execute("BEGIN")
        try:
            for item in items:
                kind = item[0]
                if kind == "rec":
                    if item[1] is not None:
                        self.rows.setdefault("exchanges", []).append(exchange_row(item[1]))
                        if item[2]:
                            self.add_keys(item[1][10], [row[0] for row in item[2]])
                    self.rows.setdefault("logs", []).extend(log_row(row) for row in item[2])
                    self.rows.setdefault("attempts", []).extend(item[3])
                    if len(item) > 4:
                        self.rows.setdefault("log_keys", []).extend(item[4])
                elif kind == "status":
                    self.statuses.append(item[1:])
                elif kind == "upload":
                    self.rows.setdefault("uploads", []).append(item[1:])
                elif kind == "enqueue":
                    self.rows.setdefault("queue", []).append(item[1:])
                    self.add_keys(item[4], [item[2]])  # a pushed event: its log had no exchange to read
                elif kind == "dequeue":
                    self.write_pending()  # the message may have been enqueued in this same frame
                    self.dequeued.append((item[1],))
                elif kind == "destination":
                    self.write_pending()
                    self.destinations.append((item[1], item[2]))
                elif kind == "clear":
                    self.write_pending()
                    # One statement at a time: executescript() would commit the frame's open transaction.
                    for table in ("attempts", "logs", "log_keys", "exchanges", "uploads", "queue", "destinations"):
                        self.db.execute(f"DELETE FROM {table}")
                elif kind == "flush":
                    acks.append(item[1])
            self.write_pending()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return acks

    def add_keys(self, body: bytes, log_ids: list[str]) -> None:
        keys = patient_ids(body)
        if keys:
            self.rows.setdefault("log_keys", []).extend((key, log_id) for log_id in log_ids for key in keys)

    def write_pending(self) -> None:
        for table, columns in (("exchanges", EXCHANGE_COLUMNS), ("logs", LOG_COLUMNS),
                               ("attempts", ATTEMPT_COLUMNS), ("uploads", UPLOAD_COLUMNS),
                               ("queue", QUEUE_COLUMNS), ("log_keys", KEY_COLUMNS)):
            self.insert(table, columns, self.rows.pop(table, []))
        self.db.executemany("UPDATE logs SET status = ? WHERE id = ?", self.statuses)
        self.db.executemany("DELETE FROM queue WHERE seq = ?", self.dequeued)
        for id_, config in self.destinations:
            if config is None:
                self.db.execute("DELETE FROM destinations WHERE id = ?", (id_,))
            else:
                self.db.execute("INSERT OR REPLACE INTO destinations (id, config) VALUES (?, ?)", (id_, config))
        self.statuses, self.dequeued, self.destinations = [], [], []

    def insert(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        """Many rows per statement: far fewer round trips through the sqlite3 module than executemany.

        Chunks of a power of two rows: a handful of statement texts per table, each built once and kept
        prepared by sqlite3's statement cache, whatever the batch sizes.
        """
        if not rows:
            return
        width = len(rows[0])
        largest = 1 << max(0, (_MAX_PARAMS // width).bit_length() - 1)
        start = 0
        while start < len(rows):
            size = min(largest, 1 << ((len(rows) - start).bit_length() - 1))
            chunk = rows[start:start + size]
            self.db.execute(self.statement(table, columns, width, size), [value for row in chunk for value in row])
            start += size

    def statement(self, table: str, columns: str, width: int, rows: int) -> str:
        key = (table, rows)
        sql = self.statements.get(key)
        if sql is None:
            values = ",".join(["(" + ",".join("?" * width) + ")"] * rows)
            sql = self.statements[key] = f"INSERT OR REPLACE INTO {table} ({columns}) VALUES {values}"
        return sql


def exchange_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Raw header pairs and the scenario note to JSON: work done here, off the emulator's event loop."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in row[9]}
    return (*row[:9], json.dumps(headers), row[10], row[11], None if row[12] is None else json.dumps(row[12]))


def patient_ids(body: bytes) -> list[str]:
    """The IDs in every `Identifiers` list of a JSON body (Patient.Identifiers: MRNs and the rest).

    Byte searches and one small regular expression inside each list, not a JSON parse: this runs for
    every logged request. A body that is not JSON yields nothing; an ID with a JSON escape is skipped.
    """
    found: list[str] = []
    start = 0
    while len(found) < MAX_KEYS:
        at = body.find(b'"Identifiers"', start)
        if at < 0:
            break
        opening = body.find(b"[", at)
        closing = body.find(b"]", opening)
        if opening < 0 or closing < 0:
            break
        for raw in _ID.findall(body, opening, closing):
            try:
                key = raw.decode()
            except UnicodeDecodeError:
                continue
            if key not in found:
                found.append(key)
        start = closing
    return found[:MAX_KEYS]


def log_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row[:11], json.dumps(row[11]))


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def main(path: str) -> None:
    # Background work: when the cores are busy, the emulator's event loop answering clients goes first;
    # the writer catches up from its backlog (which makes callers wait only when it is full).
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    out = sys.stdout.buffer
    try:
        writer = Writer(open_db(path))
    except (ValueError, sqlite3.Error) as exc:  # the first line tells the emulator why
        out.write(b"error " + str(exc).replace("\n", " ").encode() + b"\n")
        out.flush()
        return
    out.write(b"ready\n")
    out.flush()
    source = sys.stdin.buffer
    while True:
        header = read_exactly(source, 4)
        if len(header) < 4:
            break
        items = [marshal.loads(item) for item in marshal.loads(read_exactly(source, int.from_bytes(header, "big")))]
        try:
            acks = writer.apply(items)
        except Exception as exc:  # a bad batch must not stop later ones; say so on stderr
            print(f"log store writer: a batch was not stored: {exc!r}", file=sys.stderr, flush=True)
            acks = [item[1] for item in items if item[0] == "flush"]
        for n in acks:
            out.write(b"ack %d\n" % n)
        if acks:
            out.flush()
    writer.db.close()


if __name__ == "__main__":
    main(sys.argv[1])
