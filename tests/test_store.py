"""The log store on its own: the writer process, flush and close semantics, what `:memory:` leaves behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from emulator import store_writer
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


def test_a_dead_writer_does_not_hang_or_crash_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    store = LogStore(":memory:")
    try:
        store._writer.kill()  # the writer process dies (out of memory, killed by hand...)
        store._writer.wait()
        for n in range(50):
            store.record(exchange(n), [entry(n)])
        store.flush(timeout=5)  # returns: nobody is left to acknowledge
    finally:
        store.close()
    assert "the log store writer stopped; logs after this point are lost" in caplog.text


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
