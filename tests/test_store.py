"""The log store on its own: the writer process, flush and close semantics, what `:memory:` leaves behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator import log_filters, store_writer
from emulator.errors import LoadError
from emulator.store import Exchange, Log, LogStatus, LogStore, LogType


def entry(n: int, exchange_id: int = 0) -> Log:
    return Log(f"log-{n}", float(n), LogType.SEND, LogStatus.PENDING, "PatientAdmin", "NewPatient",
               attempts=[(f"attempt-{n}", exchange_id, float(n), 200)])


def exchange(n: int) -> Exchange:
    return Exchange(n, float(n), "POST", "/endpoint", 200, 1.0, "127.0.0.1",
                    request_headers=[(b"authorization", b"[REDACTED]"), (b"content-type", b"application/json")],
                    request_body=b'{"Meta": {}}', response_body=b'{"ok": true}')


def test_records_are_readable_after_flush_and_keep_their_order(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path / "logs.db"))
    try:
        for n in range(1200):
            store.record(exchange(n), [entry(n, n)])
        store.update_status("log-5", LogStatus.SUCCEEDED)
        page, cursor = store.list_logs({}, limit=1000)
        assert [p["id"] for p in page[:2]] == ["log-1199", "log-1198"] and cursor is not None
        rest, end = store.list_logs({}, limit=1000, cursor=cursor)
        assert len(rest) == 200 and end is None
        detail = store.get_log("log-5")
        assert detail is not None and detail["status"] == "SUCCEEDED"
        assert detail["attempts"][0]["request"] == {"Meta": {}}
        assert store.exchanges(limit=1)[0]["requestHeaders"] == {
            "authorization": "[REDACTED]", "content-type": "application/json"}
    finally:
        store.close()


def test_a_file_store_survives_close_and_memory_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    store = LogStore(str(path))
    store.record(exchange(1), [entry(1, 1)])
    store.close()  # no flush by hand: close commits everything recorded
    reopened = LogStore(str(path))  # exchange IDs go on from what the file holds
    assert reopened.next_exchange_id() == 2
    reopened.close()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM logs").fetchone()[0] == 1

    memory = LogStore(":memory:")
    memory.record(exchange(1), [entry(1)])
    assert memory.count() == 1
    file = Path(memory.file)
    memory.close()
    assert not file.exists() and not file.parent.exists()


def test_clear_forgets_everything(tmp_path: Path) -> None:
    store = LogStore(":memory:")
    try:
        store.record(exchange(1), [entry(1)])
        store.put_upload("u1", 1.0, "src", "a.txt", "text/plain", b"hi")
        store.clear()
        assert store.count() == 0 and store.get_upload("u1") is None and store.exchanges() == []
    finally:
        store.close()


def test_a_killed_writer_is_restarted_and_gets_every_frame_not_yet_acknowledged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = LogStore(str(tmp_path / "logs.db"))
    try:
        first = store.writer_pid
        os.kill(first, signal.SIGKILL)  # the writer dies (out of memory, killed by hand...)
        for n in range(50):
            store.record(exchange(n), [entry(n)])
        deadline = time.monotonic() + 30
        while store.writer_pid == first or not store.available:
            assert time.monotonic() < deadline, store.problem
            time.sleep(0.01)
        assert store.count() == 50 and store.problem is None
    finally:
        store.close()
    assert "the log store writer exited (killed by signal 9); restarting it" in caplog.text
    assert "the log store writer is back" in caplog.text


def test_frames_resent_to_a_new_writer_change_nothing_twice(tmp_path: Path) -> None:
    """What a dead writer may have committed before it could say so is sent again: rows keyed by the
    emulator's IDs, a log keeps its seq, and an older EHR record never wins over a newer one."""
    path = str(tmp_path / "logs.db")
    frames = [(1, [("rec", store_writer_row(1), [log_row(1)], [("a-1", "log-1", 1, 1.0, 200)],
                    [("patient", "k", 2, b'{"v": 2}')], [("MRN-1", "log-1")])]),
              (2, [("status", "SUCCEEDED", "log-1"), ("ehr", [("patient", "k", 1, b'{"v": 1}')])])]
    writer = store_writer.Writer(store_writer.open_db(path))
    assert writer.commit(frames) == [] and writer.commit(frames) == []  # the resend
    db = writer.db
    assert db.execute("SELECT seq, status FROM logs").fetchall() == [(1, "SUCCEEDED")]
    assert db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0] == 1
    # The attempt that came with its log is in the log's row: the attempts table holds later ones only.
    assert db.execute("SELECT attempt_id, attempt_exchange, attempt_at, attempt_status FROM logs").fetchall() == [
        ("a-1", 1, 1.0, 200)]
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
    assert db.execute("SELECT version, data FROM ehr_records").fetchall() == [(2, b'{"v": 2}')]
    writer.fold_keys()  # the resend appended the identifier twice to the recent rows; the fold keeps one
    assert db.execute("SELECT key, log_id FROM log_keys WHERE key = 'MRN-1'").fetchall() == [("MRN-1", "log-1")]
    assert db.execute("SELECT COUNT(*) FROM log_keys_recent").fetchone()[0] == 0
    db.close()


def test_search_by_identifier_finds_logs_before_and_after_their_keys_are_folded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Identifiers are appended to log_keys_recent and folded into log_keys every FOLD_KEYS rows: an MRN
    search sees a log at once, through the fold, and after a restart on the same file."""
    monkeypatch.setattr(store_writer, "FOLD_KEYS", 10)
    path = str(tmp_path / "logs.db")

    def rec(n: int, mrn: str) -> tuple[object, ...]:
        body = b'{"Patient": {"Identifiers": [{"ID": "%s", "IDType": "MR"}, {"ID": "E-%d"}]}}' % (mrn.encode(), n)
        row = (n, float(n), "in", "POST", "/endpoint", 200, 1.0, "127.0.0.1", None, [], body, b"{}", None)
        return ("rec", row, [log_row(n)], [], (), ())

    writer = store_writer.Writer(store_writer.open_db(path))
    db = writer.db

    def found(mrn: str) -> list[str]:
        clauses, params = log_filters.where({"mrn": mrn})
        return [r[0] for r in db.execute(f"SELECT id FROM logs WHERE {' AND '.join(clauses)} ORDER BY seq", params)]

    assert writer.commit([(1, [rec(1, "A"), rec(2, "B")])]) == []
    assert (found("A"), found("E-2")) == (["log-1"], ["log-2"])  # 4 recent rows: not folded yet
    assert db.execute("SELECT COUNT(*) FROM log_keys").fetchone()[0] == 0
    assert writer.commit([(2, [rec(n, "A") for n in range(3, 8)])]) == []  # 14 rows: folded in this commit
    assert db.execute("SELECT COUNT(*), (SELECT COUNT(*) FROM log_keys_recent) FROM log_keys").fetchone() == (14, 0)
    assert writer.commit([(3, [rec(8, "A")])]) == []
    assert found("A") == ["log-1", "log-3", "log-4", "log-5", "log-6", "log-7", "log-8"]
    db.close()
    writer = store_writer.Writer(store_writer.open_db(path))  # the count of recent rows is read back
    assert writer.recent_keys == 2
    writer.db.close()


def test_a_frame_the_writer_cannot_store_is_not_acknowledged_as_stored(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path / "logs.db"))
    try:
        good = store.record(exchange(1), [entry(1)])
        bad = store._put(("rec", None, [("not a log row",)], [], (), ()))  # a bug's frame: the writer refuses it
        after = store.record(exchange(2), [entry(2)])

        async def outcome(n: int) -> bool:
            return await store.committed(n)

        assert asyncio.run(outcome(good)) and not asyncio.run(outcome(bad)) and asyncio.run(outcome(after))
        assert store.count() == 2
    finally:
        store.close()


def store_writer_row(n: int) -> tuple[object, ...]:
    return (n, float(n), "in", "POST", "/endpoint", 200, 1.0, "127.0.0.1", None, [], b"{}", b"{}", None)


def log_row(n: int) -> tuple[object, ...]:
    return (f"log-{n}", float(n), "SEND", "PENDING", "PatientAdmin", "NewPatient", None, None, None, None, None, [])


def test_a_store_file_of_another_layout_is_refused_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("CREATE TABLE logs (seq INTEGER PRIMARY KEY)").connection.commit()
    with pytest.raises(LoadError, match=r"holds logs in another layout .* move it away, or serve with another --db"):
        LogStore(str(path))


def test_the_writer_inserts_a_batch_larger_than_one_statement_takes(tmp_path: Path) -> None:
    """Rows go in chunks of a power of two, the largest under SQLite's parameter limit: a batch of more
    rows than that (and not a power of two) is written whole, in order."""
    writer = store_writer.Writer(store_writer.open_db(str(tmp_path / "logs.db")))
    width = len(store_writer.ATTEMPT_COLUMNS.split(","))
    rows = [(f"attempt-{n:05}", f"log-{n}", n, float(n), 200) for n in range(store_writer._MAX_PARAMS // width + 777)]
    writer.db.execute("BEGIN")
    writer.insert("attempts", store_writer.ATTEMPT_COLUMNS, rows)
    writer.db.execute("COMMIT")
    stored = writer.db.execute(f"SELECT {store_writer.ATTEMPT_COLUMNS} FROM attempts ORDER BY exchange_id").fetchall()
    assert stored == rows
    writer.db.close()


def test_status_and_type_filters_answer_every_value_through_the_partial_indexes(tmp_path: Path) -> None:
    """logs_status and logs_type leave out SUCCEEDED and SEND (no index page for most logs): a filter on
    any value still finds exactly its logs, newest first, and one on another value is an index search."""
    writer = store_writer.Writer(store_writer.open_db(str(tmp_path / "logs.db")))
    statuses, types = [s.value for s in LogStatus], [t.value for t in LogType]
    rows = [(f"log-{n}", float(n), types[n % len(types)], statuses[n % len(statuses)],
             "PatientAdmin", "NewPatient", None, None, None, None, None, []) for n in range(1, 200)]
    assert writer.commit([(1, [("rec", None, rows, [], (), ())])]) == []
    db = writer.db
    for column, values in (("status", statuses), ("type", types)):
        for value in values:
            clauses, params = log_filters.where({column: value})
            sql = f"SELECT id FROM logs WHERE {' AND '.join(clauses)} ORDER BY seq DESC"
            expected = [r[0] for r in db.execute(f"SELECT id FROM logs WHERE {column} = ? ORDER BY seq DESC", (value,))]
            assert [r[0] for r in db.execute(sql, params)] == expected and expected, (column, value)
            plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert (f"USING INDEX logs_{column}" in plan) == (value != log_filters.PARTIAL[column]), plan
    assert db.execute("SELECT COUNT(*) FROM logs WHERE status = 'SUCCEEDED'").fetchone()[0] > 0
    db.close()


def test_a_layout_5_store_keeps_its_ehr_records_in_the_rowid_table(tmp_path: Path) -> None:
    """Layout 5 kept ehr_records WITHOUT ROWID; opened by this writer its rows move to the rowid table
    (a record rewritten in place), and the newest version still wins."""
    path = str(tmp_path / "logs.db")
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE ehr_records (kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, "
                      "data BLOB, PRIMARY KEY (kind, key)) WITHOUT ROWID; PRAGMA user_version = 5;")
    old.execute("INSERT INTO ehr_records VALUES ('patient', 'k', 3, x'7b7d'), ('appointment', 'v', 1, NULL)")
    old.commit()
    old.close()
    writer = store_writer.Writer(store_writer.open_db(path))
    db = writer.db
    assert db.execute("SELECT wr FROM pragma_table_list WHERE name = 'ehr_records'").fetchone() == (0,)
    assert db.execute("SELECT kind, key, version, data FROM ehr_records ORDER BY kind").fetchall() == [
        ("appointment", "v", 1, None), ("patient", "k", 3, b"{}")]
    frames = [(1, [("ehr", [("patient", "k", 2, b'{"old": 1}'), ("patient", "k", 4, b'{"new": 1}')])])]
    assert writer.commit(frames) == []
    assert db.execute("SELECT version, data FROM ehr_records WHERE key = 'k'").fetchall() == [(4, b'{"new": 1}')]
    assert db.execute("PRAGMA user_version").fetchone()[0] == store_writer.SCHEMA_VERSION
    db.close()


def test_chart_items_and_version_stamps_are_appended_and_the_newest_of_each_kept(tmp_path: Path) -> None:
    """A layout-6 store kept chart items and stamps in ehr_records; this writer moves them to ehr_appended,
    appends new ones there (a replayed frame rewrites its rows), and when it opens the store keeps each
    record's newest row, dropping the items whose newest says gone."""
    from emulator.ehr.state import CHART_ITEM
    from emulator.fhir.versions import STAMP

    assert set(store_writer.APPENDED) == {CHART_ITEM, STAMP}
    path = str(tmp_path / "logs.db")
    old = sqlite3.connect(path)
    old.executescript(store_writer.SCHEMA.replace(store_writer.APPENDED_TABLE, "") + "PRAGMA user_version = 6;")
    old.execute("INSERT INTO ehr_records VALUES ('fhir-version', 'Patient/a', 2, x'5b5d'), "
                "('patient', 'k', 3, x'7b7d'), ('chart-item', 'k/0', 4, x'7b7d')")
    old.commit()
    old.close()
    writer = store_writer.Writer(store_writer.open_db(path))
    db = writer.db
    assert db.execute("SELECT kind FROM ehr_records").fetchall() == [("patient",)]
    assert db.execute("SELECT version, kind, key FROM ehr_appended ORDER BY version").fetchall() == [
        (2, STAMP, "Patient/a"), (4, CHART_ITEM, "k/0")]
    changes = [(STAMP, "Patient/a", 5, b'["v5"]'), (STAMP, "Patient/b", 6, b'["v6"]'), (CHART_ITEM, "k/0", 7, None),
               (CHART_ITEM, "k/1", 8, b'{"n": 1}'), ("patient", "k", 9, b'{"new": 1}')]
    frame = (1, [("ehr", changes)])
    assert writer.commit([frame]) == [] and writer.commit([frame]) == []  # the second: a replay
    assert db.execute("SELECT version FROM ehr_appended ORDER BY version").fetchall() == [
        (2,), (4,), (5,), (6,), (7,), (8,)]
    db.close()
    store = LogStore(path)  # its writer compacts on opening the store: k/0 is gone, Patient/a's newest kept
    try:
        assert store.ehr_records() == [changes[0], changes[1], changes[3], changes[4]]
    finally:
        store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM ehr_appended ORDER BY version").fetchall() == [(5,), (6,), (8,)]
    assert db.execute("PRAGMA user_version").fetchone()[0] == store_writer.SCHEMA_VERSION == 8
    db.close()


def test_a_logs_first_attempt_in_its_row_and_later_ones_read_together(tmp_path: Path) -> None:
    """The attempt that comes with a log is kept in the log's row, later ones (redeliveries) in attempts:
    a reader sees them all, oldest first, counted, and text search looks in both bodies."""
    store = LogStore(str(tmp_path / "logs.db"))
    try:
        store.record(exchange(1), [entry(1, 1)])
        retry = Exchange(2, 5.0, "POST", "https://hook.example/in", 500, 2.0, "", direction="out",
                         request_body=b'{"retried": "Zebulon"}', response_body=b"busy")
        store.record_attempt(retry, "log-1", "attempt-again")
        detail = store.get_log("log-1")
        assert detail is not None and detail["attemptCount"] == 2
        assert [(a["id"], a["httpStatus"], a["request"]) for a in detail["attempts"]] == [
            ("attempt-1", 200, {"Meta": {}}), ("attempt-again", 500, {"retried": "Zebulon"})]
        assert [v["attemptCount"] for v in store.list_logs({})[0]] == [2]
        assert [v["id"] for v in store.list_logs({"q": "zebulon"})[0]] == ["log-1"]  # the later attempt's body
        assert [v["id"] for v in store.list_logs({"q": "Meta"})[0]] == ["log-1"]  # the first attempt's body
        assert store.list_logs({"q": "nowhere"})[0] == []
    finally:
        store.close()
    db = sqlite3.connect(tmp_path / "logs.db")
    assert db.execute("SELECT attempt_id FROM logs").fetchall() == [("attempt-1",)]
    assert db.execute("SELECT id FROM attempts").fetchall() == [("attempt-again",)]
    db.close()


def test_a_layout_7_store_keeps_its_attempts_and_identifiers_readable(tmp_path: Path) -> None:
    """Layout 7 kept every attempt in attempts and an identifier a row in log_keys_recent: opened here,
    logs gain their attempt columns, the recent identifiers are folded into log_keys, and old and new
    logs read the same way."""
    path = str(tmp_path / "logs.db")
    old = sqlite3.connect(path)
    layout_7 = ("CREATE TABLE logs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, "
                "type TEXT NOT NULL, status TEXT NOT NULL, data_model TEXT, event_type TEXT, source_id TEXT, "
                "source_name TEXT, destination_id TEXT, destination_name TEXT, test INTEGER, errors TEXT NOT NULL);"
                "CREATE TABLE log_keys_recent (key TEXT NOT NULL, log_id TEXT NOT NULL);"
                + store_writer.SCHEMA)  # the other tables as they are
    old.executescript(layout_7 + "PRAGMA user_version = 7;")
    old.execute("INSERT INTO exchanges (id, at, direction, method, path, status, latency_ms, client, "
                "request_headers, request_body, response_body) VALUES "
                "(1, 1.0, 'in', 'POST', '/endpoint', 200, 1.0, '', '{}', x'7b7d', x'7b7d')")
    old.execute(f"INSERT INTO logs ({store_writer.LOG_COLUMNS}) VALUES "
                "('log-old', 1.0, 'SEND', 'SUCCEEDED', 'PatientAdmin', 'NewPatient', NULL, NULL, NULL, NULL, 1, '[]')")
    old.execute("INSERT INTO attempts VALUES ('log-old', 'attempt-old', 1, 1.0, 200)")
    old.execute("INSERT INTO log_keys_recent VALUES ('MRN-OLD', 'log-old')")
    old.commit()
    old.close()
    store = LogStore(path)
    try:
        body = b'{"Patient": {"Identifiers": [{"ID": "MRN-NEW", "IDType": "MR"}]}}'
        new = Exchange(2, 2.0, "POST", "/endpoint", 200, 1.0, "127.0.0.1", request_body=body)
        store.record(new, [Log("log-new", 2.0, LogType.SEND, LogStatus.SUCCEEDED, "PatientAdmin", "NewPatient",
                               attempts=[("attempt-new", 2, 2.0, 200)])])
        for log_id, attempt_id, mrn in (("log-old", "attempt-old", "MRN-OLD"), ("log-new", "attempt-new", "MRN-NEW")):
            detail = store.get_log(log_id)
            assert detail is not None and [a["id"] for a in detail["attempts"]] == [attempt_id]
            assert detail["attemptCount"] == 1
            assert [v["id"] for v in store.list_logs({"mrn": mrn})[0]] == [log_id]
            assert [v["id"] for v in store.list_logs({"q": mrn})[0]] == [log_id]
    finally:
        store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT key, log_id FROM log_keys").fetchall() == [("MRN-OLD", "log-old")]
    assert db.execute("SELECT log_id, keys FROM log_keys_recent").fetchall() == [("log-new", '["MRN-NEW"]')]
    assert db.execute("PRAGMA user_version").fetchone()[0] == 8
    db.close()


@given(st.lists(st.text(st.characters(blacklist_characters="\x00"), max_size=12), max_size=5))
def test_identifiers_are_kept_as_the_json_array_they_were(keys: list[str]) -> None:
    """The writer joins plain identifiers by hand (json.dumps is slow to start): the text still reads back
    as the same list, and SQLite's json_each, which the MRN search runs on it, agrees (for any identifier
    but one holding NUL, which SQLite's JSON functions end the text at)."""
    text = store_writer.keys_json(keys)
    assert json.loads(text) == keys
    db = sqlite3.connect(":memory:")
    assert [row[0] for row in db.execute("SELECT value FROM json_each(?)", (text,))] == keys
    db.close()


def test_a_send_to_several_destinations_keeps_each_logs_first_attempt_in_its_row(tmp_path: Path) -> None:
    """One request, a log per destination: each log's first attempt goes in its row, any further attempt
    that came in the same item (and one for a log the item does not carry) goes to attempts."""
    writer = store_writer.Writer(store_writer.open_db(str(tmp_path / "logs.db")))
    attempts = [("a-1", "log-1", 1, 1.0, 200), ("a-2", "log-2", 1, 1.0, 200), ("a-2b", "log-2", 1, 1.5, 500),
                ("a-x", "log-elsewhere", 1, 1.0, 200)]
    assert writer.commit([(1, [("rec", store_writer_row(1), [log_row(1), log_row(2)], attempts, (), ())])]) == []
    db = writer.db
    assert db.execute("SELECT id, attempt_id FROM logs ORDER BY seq").fetchall() == [("log-1", "a-1"), ("log-2", "a-2")]
    assert db.execute("SELECT id, log_id FROM attempts ORDER BY id").fetchall() == [
        ("a-2b", "log-2"), ("a-x", "log-elsewhere")]
    db.close()
