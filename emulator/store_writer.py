"""The log store's writer: a separate process that owns every write to the SQLite file.

Run as a script with only the standard library (`python -I store_writer.py FILE [normal|full]`), so it
starts in milliseconds. The emulator's process hands it frames over stdin; SQLite's work then runs on
another core and never competes with the event loop for the GIL. A frame is a 12-byte header (the
body's length, 4 bytes, and the frame's number, 8 bytes, big-endian) and a `marshal`-ed list of
items, each item itself `marshal`-ed bytes:

    ("rec", exchange_row | None, (log_row, ...), (attempt_row, ...), (ehr_row, ...), ((key, log_id), ...))
                        a log's first attempt here is stored in the log's row, the others in attempts;
                        ehr_row: (kind, key, version, data | None), the synthetic EHR's changed records;
                        the logs' patient identifiers are read here from the exchange's request body,
                        or given as the last element (FHIR exchanges: the patients in the answer)
    ("status", status, log_id)
    ("answer", exchange_id, status, response_body)   the answer a request got in the end (a 503)
    ("upload", id, at, source_id, filename, content_type, data)
    ("enqueue", seq, log_id, destination_id, body)    a message for a webhook destination
    ("dequeue", seq)                                   delivered (or purged)
    ("destination", id, config_json | None)           a destination registered at run time (None: removed)
    ("ehr", (ehr_row, ...))                            EHR changes no request caused (a scenario's setup)
    ("clear",)          delete everything

Group commit: the writer reads every frame already waiting on stdin (up to `MAX_BATCH` bytes),
commits them all in one transaction, then writes one line `ack N`, N the highest frame number
committed. A frame that cannot be stored (a bug, a full disk) is retried alone and, failing again,
reported as `skip N reason` before the ack: the emulator answers its requests 503, never 200.
Every write is idempotent (rows keyed by IDs the emulator assigns), so frames the emulator resends to
a restarted writer, committed or not before the old one died, change nothing twice.
End of input (the emulator stopped, even by kill -9) commits and exits.
"""

from __future__ import annotations

import contextlib
import functools
import json
import marshal
import os
import re
import select
import signal
import sqlite3
import struct
import sys
import threading
import time
from typing import Any

EHR_TABLE = """
CREATE TABLE IF NOT EXISTS ehr_records (  -- the synthetic EHR's records changed since the seeded population
    kind TEXT NOT NULL,      -- "patient" (key: the EHR's patient key), "appointment" (key: VisitNumber);
                             -- chart items and FHIR's stamps are in ehr_appended
    key TEXT NOT NULL,
    version INTEGER NOT NULL,  -- the EHR's change counter: a replayed older version never wins
    data BLOB,               -- the record as JSON; NULL: gone (an appointment renumbered away)
    -- A rowid table, not WITHOUT ROWID: a patient's record (kilobytes) then fits its leaf page and is
    -- rewritten in place, where an index B-tree spilled it to overflow pages freed and taken anew on
    -- every write (writer CPU per FHIR writeback ~315 -> ~263 us).
    UNIQUE (kind, key)
);
"""
# EHR records written once (a chart item, then perhaps its tombstone; a FHIR version stamp), appended:
# every result filed and every writeback makes one, and kept in ehr_records each cost a page of its
# UNIQUE index at a random place (about 16 KB written per writeback for the stamp alone, a fifth of the
# writer's CPU). A record's newest row wins; older ones and tombstones go when a writer opens the store
# (compact_appended).
APPENDED_TABLE = """
CREATE TABLE IF NOT EXISTS ehr_appended (
    version INTEGER PRIMARY KEY,  -- the EHR's change counter: a frame replayed to a new writer rewrites its row
    kind TEXT NOT NULL,           -- "chart-item" (key: {patient key}/{number}), "fhir-version" (key: {Type}/{id})
    key TEXT NOT NULL,
    data BLOB                     -- NULL: gone
);
"""
APPENDED = ("chart-item", "fhir-version")  # emulator.ehr.state.CHART_ITEM, emulator.fhir.versions.STAMP
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
    errors TEXT NOT NULL,
    -- The attempt that came with the log (an /endpoint request's, a query's): in its row, not in attempts,
    -- so the commonest log costs no B-tree of its own (attempts is an index: its appends rebalance ~3
    -- pages a commit). Later attempts (redeliveries) and a layout-7 store's are in attempts.
    attempt_id TEXT,
    attempt_exchange INTEGER,
    attempt_at REAL,
    attempt_status INTEGER
);
CREATE INDEX IF NOT EXISTS logs_model_event ON logs (data_model, event_type);
CREATE INDEX IF NOT EXISTS logs_model ON logs (data_model);  -- with the rowid: newest first without a sort
-- Partial: a log of the commonest status or type costs no index page (log_filters.PARTIAL). A filter on
-- it scans newest first, and nearly every log it meets matches.
CREATE INDEX IF NOT EXISTS logs_status ON logs (status) WHERE status != 'SUCCEEDED';
CREATE INDEX IF NOT EXISTS logs_type ON logs (type) WHERE type != 'SEND';
CREATE TABLE IF NOT EXISTS log_keys (  -- patient identifiers (MRNs...) of each log, for search by MRN
    key TEXT NOT NULL,
    log_id TEXT NOT NULL,
    PRIMARY KEY (key, log_id)
) WITHOUT ROWID;
-- The newest logs' identifiers, one row a log (`keys`: a JSON array), appended (a rowid table: a commit
-- dirties its last page, not a page per identifier) and folded into log_keys every FOLD_KEYS identifiers,
-- in key order. Readers look in both.
CREATE TABLE IF NOT EXISTS log_keys_recent (
    log_id TEXT NOT NULL,
    keys TEXT NOT NULL
);
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
""" + EHR_TABLE + APPENDED_TABLE  # the first on its own too: a layout-5 store's table is rebuilt from it
EXCHANGE_COLUMNS = ("id, at, direction, method, path, status, latency_ms, client, source_id, request_headers, "
                    "request_body, response_body, scenario")
LOG_COLUMNS = ("id, created_at, type, status, data_model, event_type, source_id, source_name, "
               "destination_id, destination_name, test, errors")
# The logs columns of a log's first attempt, with their types: a layout-7 store gains them as they are here.
FIRST_ATTEMPT = (("attempt_id", "TEXT"), ("attempt_exchange", "INTEGER"), ("attempt_at", "REAL"),
                 ("attempt_status", "INTEGER"))
FIRST_ATTEMPT_COLUMNS = ", ".join(name for name, _ in FIRST_ATTEMPT)
_NO_ATTEMPT = (None, None, None, None)
ATTEMPT_COLUMNS = "id, log_id, exchange_id, at, status"
UPLOAD_COLUMNS = "id, at, source_id, filename, content_type, data"
QUEUE_COLUMNS = "seq, log_id, destination_id, body"
KEY_COLUMNS = "key, log_id"
RECENT_KEY_COLUMNS = "log_id, keys"
EHR_COLUMNS = "kind, key, version, data"
APPENDED_COLUMNS = "version, kind, key, data"
_MAX_PARAMS = 30_000  # SQLite's default limit is 32,766 bound parameters per statement


SCHEMA_VERSION = 8
# Layouts this one opens, adding tables (5: ehr_records, 6: log_keys_recent, 7: ehr_appended), rebuilding
# a layout-5 ehr_records and moving its records of APPENDED kinds to ehr_appended, adding logs' attempt
# columns (8) and folding an older log_keys_recent (a row an identifier) before it is made anew; their
# full logs_status and logs_type indexes stay (they answer the same filters).
UPGRADABLE = frozenset({4, 5, 6, 7})
SYNC_MODES = ("normal", "full")  # PRAGMA synchronous: see docs/config.md#what-survives-a-crash
FRAME_HEADER = struct.Struct(">IQ")  # body length, frame number
MAX_BATCH = 16 << 20  # bytes of frames in one transaction: a backlog is committed in steps
CHECKPOINT_AT = 16 << 20  # bytes of WAL that start a checkpoint
CHECKPOINT_POLL = 0.2  # seconds between looks at the WAL's size
MAX_KEYS = 20  # identifiers kept per log: a query for many patients still costs a bounded write
# Identifiers in log_keys_recent that start a fold into log_keys. Inserted a commit at a time, each identifier
# dirties a page of log_keys' B-tree (and its rebalancing, its parents): about a third of all the pages
# a commit of /endpoint requests wrote. Folded in key order, a page takes all its rows at once.
FOLD_KEYS = 2048
_ID = re.compile(rb'"ID"\s*:\s*"([^"\\]{1,200})"')


def open_db(path: str, sync: str = "normal") -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, cached_statements=512)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    has_tables = db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if has_tables and version != SCHEMA_VERSION and version not in UPGRADABLE:
        raise ValueError(f"{path} holds logs in another layout (version {version}, this emulator writes "
                         f"{SCHEMA_VERSION}): move it away, or serve with another --db")
    if sync not in SYNC_MODES:
        raise ValueError(f"unknown store sync mode {sync!r}; one of {', '.join(SYNC_MODES)}")
    db.execute("PRAGMA journal_mode=WAL")
    # A commit is acknowledged to clients, so it must survive a crash of either process: in WAL mode any
    # level does, the OS holding what was written. NORMAL syncs at checkpoints only (a power cut may
    # lose the last commits, never the file's consistency); FULL syncs the WAL at every commit.
    db.execute(f"PRAGMA synchronous={sync.upper()}")
    db.execute("PRAGMA cache_size=-65536")  # 64 MB: index pages stay in memory as the store grows
    db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run beside the commits: see Checkpointer
    _rebuild_ehr_records(db)
    _upgrade_logs(db)
    db.executescript(SCHEMA)
    compact_appended(db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return db


def compact_appended(db: sqlite3.Connection) -> None:
    """Keep each appended record's newest row, unless it says gone (and move an older layout's records of
    those kinds out of ehr_records)."""
    kinds = ", ".join(f"'{kind}'" for kind in APPENDED)
    db.execute("BEGIN")
    db.execute(f"INSERT OR REPLACE INTO ehr_appended ({APPENDED_COLUMNS}) "
               f"SELECT version, kind, key, data FROM ehr_records WHERE kind IN ({kinds})")
    db.execute(f"DELETE FROM ehr_records WHERE kind IN ({kinds})")
    db.execute("DELETE FROM ehr_appended WHERE version NOT IN "
               "(SELECT MAX(version) FROM ehr_appended GROUP BY kind, key)")
    db.execute("DELETE FROM ehr_appended WHERE data IS NULL")
    db.execute("COMMIT")


def _upgrade_logs(db: sqlite3.Connection) -> None:
    """A store of layout 7 or older: logs gain their attempt columns; its recent identifiers (a row each)
    are folded into log_keys, so log_keys_recent is made anew in this layout."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(logs)")}
    recent = {row[1] for row in db.execute("PRAGMA table_info(log_keys_recent)")}
    if (not columns or "attempt_id" in columns) and "key" not in recent:
        return
    db.execute("BEGIN")
    if columns and "attempt_id" not in columns:
        for column, kind in FIRST_ATTEMPT:
            db.execute(f"ALTER TABLE logs ADD COLUMN {column} {kind}")
    if "key" in recent:
        db.execute("INSERT OR IGNORE INTO log_keys (key, log_id) "
                   "SELECT key, log_id FROM log_keys_recent ORDER BY key, log_id")
        db.execute("DROP TABLE log_keys_recent")
    db.execute("COMMIT")


def _rebuild_ehr_records(db: sqlite3.Connection) -> None:
    """A store of layout 5 kept ehr_records WITHOUT ROWID: its rows move to this layout's table, once."""
    try:  # SQLite 3.37 and later; an older SQLite keeps the table as it is (it works, a little slower)
        row = db.execute("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = 'ehr_records'").fetchone()
    except sqlite3.OperationalError:
        return
    if row is None or not row[0]:
        return
    db.execute("BEGIN")
    db.execute("ALTER TABLE ehr_records RENAME TO ehr_records_v5")
    db.execute(EHR_TABLE)
    db.execute("INSERT INTO ehr_records (kind, key, version, data) SELECT kind, key, version, data FROM ehr_records_v5")
    db.execute("DROP TABLE ehr_records_v5")
    db.execute("COMMIT")


class Writer:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.statuses: list[tuple[Any, ...]] = []
        self.dequeued: list[tuple[int]] = []
        self.destinations: list[tuple[str, str | None]] = []
        self.answers: list[tuple[int, bytes, int]] = []
        self.statements: dict[tuple[str, int], str] = {}  # (table, rows): the INSERT text for that many rows
        self.recent_keys = self.count_recent_keys()

    def commit(self, frames: list[tuple[int, list[tuple[Any, ...]]]]) -> list[tuple[int, str]]:
        """Write frames in one transaction; returns (frame number, reason) of each one that could not be.

        When the group fails, each frame is tried alone, so one bad frame costs only its own rows.
        """
        try:
            self.transaction(frames)
            return []
        except Exception as exc:
            if len(frames) == 1:
                return [(frames[0][0], repr(exc))]
        skipped = []
        for frame in frames:
            try:
                self.transaction([frame])
            except Exception as exc:
                skipped.append((frame[0], repr(exc)))
        return skipped

    def transaction(self, frames: list[tuple[int, list[tuple[Any, ...]]]]) -> None:
        self.db.execute("BEGIN")
        try:
            for _, items in frames:
                self.apply(items)
            self.write_pending()
            if self.recent_keys >= FOLD_KEYS:
                self.fold_keys()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            self.rows, self.statuses, self.dequeued, self.destinations, self.answers = {}, [], [], [], []
            self.recent_keys = self.count_recent_keys()
            raise

    def count_recent_keys(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(json_array_length(keys)), 0) FROM log_keys_recent"
                                   ).fetchone()[0])

    def fold_keys(self) -> None:
        """Move log_keys_recent into log_keys (in the open transaction). A frame resent to a restarted
        writer may have added its rows twice: the primary key keeps one."""
        self.db.execute("INSERT OR IGNORE INTO log_keys (key, log_id) SELECT j.value, r.log_id "
                        "FROM log_keys_recent r, json_each(r.keys) j ORDER BY 1, 2")
        self.db.execute("DELETE FROM log_keys_recent")
        self.recent_keys = 0

    def apply(self, items: list[tuple[Any, ...]]) -> None:
        """One frame's items, inside the open transaction."""
        for item in items:
            kind = item[0]
            if kind == "rec":
                if item[1] is not None:
                    self.rows.setdefault("exchanges", []).append(exchange_row(item[1]))
                    if item[2]:
                        self.add_keys(item[1][10], [row[0] for row in item[2]])
                if item[2]:
                    self.add_logs(item[2], item[3])
                elif item[3]:
                    self.rows.setdefault("attempts", []).extend(item[3])
                if item[4]:
                    self.add_ehr(item[4])
                if item[5]:
                    self.add_key_rows(item[5])
            elif kind == "status":
                self.statuses.append(item[1:])
            elif kind == "answer":
                self.write_pending()  # its exchange may be in this same frame
                self.answers.append((item[2], item[3], item[1]))
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
            elif kind == "ehr":
                self.add_ehr(item[1])
            elif kind == "clear":
                self.write_pending()
                # One statement at a time: executescript() would commit the open transaction.
                for table in ("attempts", "logs", "log_keys", "log_keys_recent", "exchanges", "uploads", "queue",
                              "destinations", "ehr_records", "ehr_appended"):
                    self.db.execute(f"DELETE FROM {table}")
                self.recent_keys = 0

    def add_ehr(self, records: list[tuple[Any, ...]]) -> None:
        for record in records:
            if record[0] in APPENDED:
                self.rows.setdefault("ehr_appended", []).append((record[2], record[0], record[1], record[3]))
            else:
                self.rows.setdefault("ehr_records", []).append(record)

    def add_logs(self, rows: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]]) -> None:
        """Logs with the attempts that came with them, (id, log_id, exchange_id, at, status): each log's
        first in its own row, the rest to attempts."""
        logs = self.rows.setdefault("logs", [])
        if len(rows) == 1 == len(attempts) and attempts[0][1] == rows[0][0]:  # every /endpoint request's
            logs.append(log_row(rows[0], attempts[0]))
            return
        first: dict[str, tuple[Any, ...] | None] = {row[0]: None for row in rows}
        rest = []
        for attempt in attempts:
            if attempt[1] in first and first[attempt[1]] is None:
                first[attempt[1]] = attempt
            else:
                rest.append(attempt)
        logs.extend(log_row(row, first[row[0]]) for row in rows)
        self.rows.setdefault("attempts", []).extend(rest)

    def add_keys(self, body: bytes, log_ids: list[str]) -> None:
        keys = patient_ids(body)
        if keys:
            text = keys_json(keys)
            self.rows.setdefault("log_keys_recent", []).extend((log_id, text) for log_id in log_ids)
            self.recent_keys += len(keys) * len(log_ids)

    def add_key_rows(self, pairs: list[tuple[str, str]]) -> None:
        """Identifiers given with the logs, (key, log_id) pairs (a FHIR exchange's patients)."""
        by_log: dict[str, list[str]] = {}
        for key, log_id in pairs:
            by_log.setdefault(log_id, []).append(key)
        self.rows.setdefault("log_keys_recent", []).extend(
            (log_id, keys_json(keys)) for log_id, keys in by_log.items())
        self.recent_keys += len(pairs)

    def write_pending(self) -> None:
        for table, columns in (("exchanges", EXCHANGE_COLUMNS), ("logs", f"{LOG_COLUMNS}, {FIRST_ATTEMPT_COLUMNS}"),
                               ("attempts", ATTEMPT_COLUMNS), ("uploads", UPLOAD_COLUMNS),
                               ("queue", QUEUE_COLUMNS), ("log_keys_recent", RECENT_KEY_COLUMNS),
                               ("ehr_records", EHR_COLUMNS), ("ehr_appended", APPENDED_COLUMNS)):
            self.insert(table, columns, self.rows.pop(table, []))
        if self.statuses:  # most commits have none of these: no statement run for nothing
            self.db.executemany("UPDATE logs SET status = ? WHERE id = ?", self.statuses)
        if self.answers:
            self.db.executemany("UPDATE exchanges SET status = ?, response_body = ? WHERE id = ?", self.answers)
        if self.dequeued:
            self.db.executemany("DELETE FROM queue WHERE seq = ?", self.dequeued)
        for id_, config in self.destinations:
            if config is None:
                self.db.execute("DELETE FROM destinations WHERE id = ?", (id_,))
            else:
                self.db.execute("INSERT OR REPLACE INTO destinations (id, config) VALUES (?, ?)", (id_, config))
        self.statuses, self.dequeued, self.destinations, self.answers = [], [], [], []

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
            sql = self.statements[key] = f"{_INSERT.get(table, 'INSERT OR REPLACE INTO')} {table} ({columns}) " \
                                         f"VALUES {values}{_UPSERT.get(table, '')}"
        return sql


# A log resent to a restarted writer keeps its row (and its seq, which live views page by); its status
# changes travel as "status" items, resent in order too.
_INSERT = {"logs": "INSERT OR IGNORE INTO", "log_keys_recent": "INSERT INTO"}
# The newest version of an EHR record wins, whatever order frames are committed in.
_UPSERT = {"ehr_records": " ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version, data = excluded.data "
                          "WHERE excluded.version > ehr_records.version"}


def exchange_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Raw header pairs and the scenario note to JSON: work done here, off the emulator's event loop."""
    return (*row[:9], headers_json(tuple(row[9])), row[10], row[11],
            None if row[12] is None else json.dumps(row[12]))


@functools.lru_cache(maxsize=256)
def headers_json(pairs: tuple[tuple[bytes, bytes], ...]) -> str:
    """A client sends the same headers request after request: each set is made JSON once."""
    return json.dumps({k.decode("latin-1"): v.decode("latin-1") for k, v in pairs})


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


def keys_json(keys: list[str]) -> str:
    """Identifiers as a JSON array; those with nothing to escape (nearly all) joined by hand: json.dumps
    builds an encoder on every call, the larger part of the writer's cost for a log's identifiers.
    (Not printable: control characters, and a few more that JSON would not need escaped.)"""
    joined = "".join(keys)
    if keys and joined.isprintable() and '"' not in joined and "\\" not in joined:
        return '["' + '","'.join(keys) + '"]'
    return json.dumps(keys)


def log_row(row: tuple[Any, ...], attempt: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
    """A log as stored, with the attempt that came with it (id, log_id, exchange_id, at, status), if any."""
    first = _NO_ATTEMPT if attempt is None else (attempt[0], attempt[2], attempt[3], attempt[4])
    return (*row[:11], json.dumps(row[11]) if row[11] else "[]", *first)


class Checkpointer:
    """Copies the WAL into the database file on a thread of its own, so no commit waits for it.

    A checkpoint of a busy store copies tens of megabytes (and, with synchronous=NORMAL, syncs the file):
    run inside a commit, as SQLite's automatic checkpoints are, it would hold that commit's
    acknowledgement, and the answers waiting on it, for a hundred milliseconds. PASSIVE never blocks
    the writer; sqlite3 releases the GIL while it works.
    """

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.wal = path + "-wal"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="checkpoints", daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopping.wait(CHECKPOINT_POLL):
            try:
                if os.path.getsize(self.wal) >= CHECKPOINT_AT:
                    self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except (OSError, sqlite3.Error) as exc:  # the next look tries again
                print(f"log store writer: checkpoint failed: {exc!r}", file=sys.stderr, flush=True)
                time.sleep(1.0)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.db.close()


class Frames:
    """Frames from a file descriptor: `batch()` returns every complete frame already readable."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.buffer = bytearray()
        self.chunk = bytearray(1 << 20)  # read into, reused: no megabyte allocated per read
        self.poll = select.poll()
        self.poll.register(fd, select.POLLIN)
        self.ended = False

    def batch(self) -> list[tuple[int, list[tuple[Any, ...]]]] | None:
        """At least one frame (waiting for it), plus all that are complete with no more waiting; None at
        the end of input."""
        frames: list[tuple[int, bytes]] = []
        size = 0
        while True:
            size += self.split(frames)
            if size >= MAX_BATCH:
                break
            try:
                read = os.readv(self.fd, [self.chunk])
            except BlockingIOError:
                read = -1
            if read > 0:
                self.buffer += memoryview(self.chunk)[:read]
                continue
            if read == 0:
                self.ended = True
            if frames:
                break
            if self.ended:
                return None
            self.poll.poll()  # nothing whole yet: wait for more
        return [(n, [marshal.loads(item) for item in marshal.loads(body)]) for n, body in frames]

    def split(self, frames: list[tuple[int, bytes]]) -> int:
        """Move the complete frames at the head of the buffer to `frames`; returns their size."""
        buffer, start = self.buffer, 0
        while len(buffer) - start >= FRAME_HEADER.size:
            length, n = FRAME_HEADER.unpack_from(buffer, start)
            end = start + FRAME_HEADER.size + length
            if end > len(buffer):
                break
            frames.append((n, bytes(buffer[start + FRAME_HEADER.size:end])))
            start = end
        del buffer[:start]
        return start


def main(path: str, sync: str = "normal") -> None:
    # Ctrl-C in a terminal reaches the whole process group: the emulator stops on it, the writer on the
    # end of its input, having committed what the emulator sent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a whole process group stopped: same (kill -9 still works)
    # Woken by every frame, the writer must not take the CPU from the emulator's event loop that just
    # wrote it (the kernel's wake-up preemption would stop the loop mid-request): SCHED_BATCH runs it at
    # the same weight, but without that preemption. Linux; elsewhere the default policy.
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    out = sys.stdout.buffer
    try:
        writer = Writer(open_db(path, sync))
    except (ValueError, sqlite3.Error) as exc:  # the first line tells the emulator why
        out.write(b"error " + str(exc).replace("\n", " ").encode() + b"\n")
        out.flush()
        return
    checkpoints = Checkpointer(path)
    out.write(b"ready\n")
    out.flush()
    frames = Frames(sys.stdin.fileno())
    while (batch := frames.batch()) is not None:
        lines = []
        for n, reason in writer.commit(batch):
            print(f"log store writer: frame {n} was not stored: {reason}", file=sys.stderr, flush=True)
            lines.append(b"skip %d %s\n" % (n, reason.replace("\n", " ")[:200].encode(errors="replace")))
        lines.append(b"ack %d\n" % batch[-1][0])
        out.write(b"".join(lines))
        out.flush()
    checkpoints.stop()
    writer.db.close()  # the last connection: SQLite checkpoints the rest and removes the WAL


if __name__ == "__main__":
    main(*sys.argv[1:3])
