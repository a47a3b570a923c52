"""Crashes under load, as a user's machine has them: `serve` in a real process on a SQLite file, real
sockets, 16 client threads, then kill -9 of the emulator or of its log writer alone.

What an answer of 200 promises is checked from outside: every acknowledged log is in the store, and
every acknowledged NewPatient is found by a PatientSearch.Query after a restart on the same store.
Each test prints its counts (and `make test` lists them at the end: tests/conftest.py).
"""

from __future__ import annotations

import base64
import collections
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from emulator.server import Server
from emulator.settings import Settings
from tests.conftest import event
from tests.test_fhir_writeback import BASE, matches, message, observation, timothy, write, written
from tests.test_serve import output, start

THREADS = 16
LOAD_SECONDS = 20.0  # at most, whatever happens: every wait below is bounded
SAMPLE = 400  # acknowledged patients searched for after the restart (all of them when fewer)
SEARCH_THREADS = 8


@dataclass
class Load:
    """What the client threads sent and got back."""

    acked: dict[str, str] = field(default_factory=dict)  # MRN -> log ID of every 200
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    unavailable_without_retry_after: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)  # transport errors by kind
    lock: threading.Lock = field(default_factory=threading.Lock)


def new_patient(mrn: str) -> bytes:
    body = event("PatientAdmin", "NewPatient")
    patient = body["Patient"]
    assert isinstance(patient, dict)
    patient["Identifiers"] = [{"ID": mrn, "IDType": "MR"}]
    return orjson.dumps(body)


def token(url: str) -> str:
    r = httpx.post(f"{url}/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"})
    assert r.status_code == 200, r.text
    return str(r.json()["accessToken"])


def send_until(url: str, stop: threading.Event, load: Load, *, stop_on_error: bool) -> list[threading.Thread]:
    """THREADS threads sending NewPatients with distinct MRNs until `stop` (or, if told, a transport error)."""
    bearer = token(url)

    def run(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=15, headers={"Authorization": f"Bearer {bearer}",
                                                              "Content-Type": "application/json"}) as client:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                mrn = f"CR{worker:02d}{n:07d}"
                try:
                    r = client.post("/endpoint", content=new_patient(mrn))
                except httpx.TransportError as exc:
                    with load.lock:
                        load.errors[type(exc).__name__] += 1
                    if stop_on_error:
                        return
                    continue
                with load.lock:
                    load.statuses[r.status_code] += 1
                    if r.status_code == 200:
                        load.acked[mrn] = r.json()["Meta"]["Logs"][0]["ID"]
                    elif r.status_code == 503 and "retry-after" not in r.headers:
                        load.unavailable_without_retry_after += 1

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    return threads


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def writer_of(process: subprocess.Popen[str]) -> psutil.Process | None:
    """The emulator's running log writer process (store_writer.py, its child), if it has one."""
    for child in psutil.Process(process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any(p.endswith("store_writer.py") for p in child.cmdline()):
                return child
        except psutil.Error:  # it just ended
            continue
    return None


def logged(db_file: Path) -> set[str]:
    db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT id FROM logs")}
    finally:
        db.close()


def found_by_search(url: str, mrns: list[str]) -> set[str]:
    """The MRNs a PatientSearch.Query finds, searched from a few threads."""
    bearer, found, lock = token(url), set(), threading.Lock()
    chunks = [mrns[i::SEARCH_THREADS] for i in range(SEARCH_THREADS)]

    def run(chunk: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=15, headers={"Authorization": f"Bearer {bearer}"}) as client:
            for mrn in chunk:
                query = event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": mrn, "IDType": "MR"}]})
                r = client.post("/endpoint", json=query)
                assert r.status_code == 200, r.text
                ids = [i["ID"] for i in r.json()["Patient"].get("Identifiers", [])]
                if mrn in ids:
                    with lock:
                        found.add(mrn)

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return found


def sample(mrns: Iterator[str] | list[str]) -> list[str]:
    every = sorted(mrns)
    return every if len(every) <= SAMPLE else random.Random(17).sample(every, SAMPLE)


def report(record_property: Any, text: str) -> None:
    print(text)
    record_property("crash counts", text)


@pytest.fixture
def stopper() -> Iterator[threading.Event]:
    stop = threading.Event()
    yield stop
    stop.set()


def test_kill_9_of_the_emulator_under_load_loses_no_acknowledged_event(
        tmp_path: Path, stopper: threading.Event, record_property: Any) -> None:
    process, url = start(tmp_path, "--db", "store.db")
    writer = writer_of(process)
    assert writer is not None
    load = Load()
    threads = send_until(url, stopper, load, stop_on_error=True)
    try:
        wait_for(lambda: len(load.acked) >= 1500, LOAD_SECONDS, "1,500 acknowledged NewPatients")
    finally:
        os.kill(process.pid, signal.SIGKILL)  # mid-load: requests are in flight
        process.wait(10)
        stopper.set()
        for thread in threads:
            thread.join(20)
    with load.lock:
        acked = dict(load.acked)
    writer.wait(20)  # its input ended: it commits what it has and exits

    process, url = start(tmp_path, "--db", "store.db")  # the same store
    try:
        stored = logged(tmp_path / "store.db")
        mrns = sample(acked)
        found = found_by_search(url, mrns)
    finally:
        process.terminate()
        process.wait(20)
    kept = {mrn for mrn, log_id in acked.items() if log_id in stored}
    report(record_property, f"kill -9 of the emulator: acknowledged {len(acked)}, logged after restart {len(kept)}, "
                            f"found by the EHR {len(found)} of {len(mrns)} sampled")
    assert kept == set(acked)
    assert found == set(mrns)


def test_kill_9_of_the_log_writer_under_load_answers_no_200_that_is_not_stored(
        tmp_path: Path, stopper: threading.Event, record_property: Any) -> None:
    process, url = start(tmp_path, "--db", "store.db")
    try:
        load = Load()
        threads = send_until(url, stopper, load, stop_on_error=False)
        wait_for(lambda: len(load.acked) >= 800, LOAD_SECONDS, "800 acknowledged NewPatients")
        writer = writer_of(process)
        assert writer is not None
        writer.kill()  # the writer alone, mid-load
        killed_at = len(load.acked)
        wait_for(lambda: len(load.acked) >= killed_at + 800, LOAD_SECONDS, "800 more 200s after the kill")
        stopper.set()
        for thread in threads:
            thread.join(20)
        health = httpx.get(f"{url}/__emulator/health")
        stored = logged(tmp_path / "store.db")
        restarted = writer_of(process)
        with load.lock:
            acked = dict(load.acked)
        mrns = sample(acked)
        found = found_by_search(url, mrns)
    finally:
        process.terminate()
        process.wait(20)
    kept = {mrn for mrn, log_id in acked.items() if log_id in stored}
    others = {status: n for status, n in load.statuses.items() if status not in (200, 503)}
    report(record_property, f"kill -9 of the log writer: acknowledged {len(acked)}, logged {len(kept)}, "
                            f"found by the EHR {len(found)} of {len(mrns)} sampled, answered 503 "
                            f"{load.statuses[503]}, other statuses {others}")
    assert kept == set(acked), f"{len(acked) - len(kept)} answered 200 and not stored"
    assert restarted is not None and restarted.pid != writer.pid
    assert found == set(mrns)
    assert not others and not load.errors, (others, load.errors)
    assert load.unavailable_without_retry_after == 0
    assert health.status_code == 200 and health.json()["payload"]["status"] == "ok"
    said = output(tmp_path)
    assert "the log store writer exited (killed by signal 9); restarting it" in said
    assert "the log store writer is back" in said


# -- the EHR's state across restarts ------------------------------------------------------------------

def send(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/endpoint", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def patient(mrn: str, first: str, last: str, event_type: str = "NewPatient", **extra: Any) -> dict[str, Any]:
    return event("PatientAdmin", event_type, Patient={
        "Identifiers": [{"ID": mrn, "IDType": "MR"}],
        "Demographics": {"FirstName": first, "LastName": last, "DOB": "1979-04-02", "Sex": "Female"}, **extra})


def by_mrn(client: httpx.Client, mrn: str) -> dict[str, Any]:
    answer = send(client, event("PatientSearch", "Query", Patient={"Identifiers": [{"ID": mrn, "IDType": "MR"}]}))
    found: dict[str, Any] = answer["Patient"]
    return found


def authed(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=15, headers={"Authorization": f"Bearer {token(url)}"})


def restart(tmp_path: Path, process: subprocess.Popen[str], *args: str) -> tuple[subprocess.Popen[str], str]:
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    return start(tmp_path, *args)


VISIT_AT = "2031-06-02T15:00:00.000Z"  # a weekday afternoon well after any seeded appointment


def test_a_graceful_restart_keeps_what_events_changed_in_the_ehr(tmp_path: Path) -> None:
    process, url = start(tmp_path, "--db", "store.db")
    try:
        with authed(url) as client:
            send(client, patient("GR-1", "Ines", "Alder"))
            send(client, patient("GR-1", "Ines", "Birch", "PatientUpdate"))  # married: a new last name
            send(client, patient("GR-2", "Ines", "Birch"))  # a duplicate record, then merged into GR-1
            send(client, event("PatientAdmin", "PatientMerge", Patient={
                "Identifiers": [{"ID": "GR-1", "IDType": "MR"}],
                "PreviousIdentifiers": [{"ID": "GR-2", "IDType": "MR"}]}))
            send(client, event("Scheduling", "New", Patient={"Identifiers": [{"ID": "GR-1", "IDType": "MR"}]},
                               Visit={"VisitNumber": "GR-V1", "VisitDateTime": VISIT_AT, "Duration": 30,
                                      "Reason": "Follow up",
                                      "Location": {"Type": "Clinic", "Facility": "RES General Hospital",
                                                   "Department": "3N", "Room": "136"}}))
            results = event("Results", "New", Patient={"Identifiers": [{"ID": "GR-1", "IDType": "MR"}]})
            results["Orders"][0]["ID"] = "GR-O1"  # type: ignore[index]
            send(client, results)
        process, url = restart(tmp_path, process, "--db", "store.db")
        with authed(url) as client:
            survivor = by_mrn(client, "GR-1")
            assert survivor["Demographics"]["LastName"] == "Birch"  # the update
            assert by_mrn(client, "GR-2")["Identifiers"] == survivor["Identifiers"]  # the merge
            look_alikes = send(client, event("PatientSearch", "Query", Patient={"Demographics": {
                "FirstName": "Ines", "LastName": "Birch", "DOB": "1979-04-02"}}))
            assert look_alikes["Patient"]["Identifiers"] == survivor["Identifiers"]  # one patient, not two
            assert "PotentialMatches" not in look_alikes
            visits = send(client, event("Scheduling", "Booked", StartDateTime="2031-06-02T00:00:00.000Z",
                                        EndDateTime="2031-06-03T00:00:00.000Z"))["Visits"]
            assert [(v["VisitNumber"], v["Patient"]["Identifiers"][0]["ID"]) for v in visits] == [("GR-V1", "GR-1")]
            orders = send(client, event("Results", "Query", OrderIDs=["GR-O1"],
                                        Patients=[{"Identifiers": [{"ID": "GR-1", "IDType": "MR"}]}]))["Orders"]
            assert [o["ID"] for o in orders] == ["GR-O1"]
    finally:
        process.terminate()
        process.wait(20)


def test_reset_and_memory_stores_give_the_seeded_state(tmp_path: Path) -> None:
    process, url = start(tmp_path, "--db", "store.db")
    try:
        with authed(url) as client:
            send(client, patient("RS-1", "Otto", "Before"))
        assert httpx.post(f"{url}/__emulator/reset").status_code == 200
        with authed(url) as client:  # the reset forgot the token too
            assert by_mrn(client, "RS-1") == {}  # the seeded population again
            send(client, patient("RS-2", "Otto", "After"))
        process, url = restart(tmp_path, process, "--db", "store.db")
        with authed(url) as client:
            assert by_mrn(client, "RS-1") == {}  # the reset is kept: what came before it does not come back
            assert by_mrn(client, "RS-2")["Demographics"]["LastName"] == "After"  # what came after it does
        process, url = restart(tmp_path, process, "--db", ":memory:")
        with authed(url) as client:
            send(client, patient("MM-1", "Mem", "Ory"))
            assert by_mrn(client, "MM-1")["Demographics"]["LastName"] == "Ory"
        process, url = restart(tmp_path, process, "--db", ":memory:")
        with authed(url) as client:
            assert by_mrn(client, "MM-1") == {}  # :memory: keeps nothing
            assert by_mrn(client, "0000000001")["Demographics"]["LastName"] == "Bixby"  # the seeded population
    finally:
        process.terminate()
        process.wait(20)


def test_while_no_writer_can_run_the_emulator_answers_503_with_retry_after_and_health_says_why(
        tmp_path: Path) -> None:
    """The writer is killed and cannot come back (its file is not a database any more): /endpoint (and
    a FHIR writeback) say 503 in Redox's shape, with Retry-After, health names the reason; once it can,
    the writer comes back and what it acknowledges is stored."""
    db = tmp_path / "store.db"
    with Server(Settings(db=str(db), port=0)) as server, authed(server.url) as client:
        before = send(client, patient("UA-1", "Ada", "Before"))["Meta"]["Logs"][0]["ID"]
        store = server.sandbox.store
        db.rename(tmp_path / "away.db")
        db.mkdir()  # SQLite cannot open a directory: every restart fails
        os.kill(store.writer_pid, signal.SIGKILL)
        wait_for(lambda: client.post("/endpoint", json=patient("UA-2", "Ada", "During")).status_code == 503,
                 LOAD_SECONDS, "a 503")
        wait_for(lambda: "cannot be restarted" in client.get("/__emulator/health").json()["payload"].get("reason", ""),
                 LOAD_SECONDS, "a restart that failed")
        refused = client.post("/endpoint", json=patient("UA-3", "Ada", "During"))
        fhir_refused = client.post(f"{BASE}/Patient/$patient-create", json=message("PatientCreate", timothy()),
                                   headers={"Content-Type": "application/fhir+json"})
        health = client.get("/__emulator/health")
        db.rmdir()
        (tmp_path / "away.db").rename(db)
        wait_for(lambda: client.get("/__emulator/health").status_code == 200, LOAD_SECONDS, "the writer back")
        after = send(client, patient("UA-4", "Ada", "After"))["Meta"]["Logs"][0]["ID"]
        assert by_mrn(client, "UA-3") == {}  # refused: nothing was done
        assert matches(client, "Patient", identifier="urn:redox:redox-fhir-sandbox:MR|0000000099") == []
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    [error] = refused.json()["Meta"]["Errors"]
    assert error["Type"] == "transmission" and error["Module"] == "Emulator"
    assert "cannot be restarted" in error["Text"] and "Nothing was accepted" in error["Text"]
    assert fhir_refused.status_code == 503 and fhir_refused.headers["retry-after"] == "1"  # a FHIR writeback too
    assert health.status_code == 503 and health.headers["retry-after"] == "1"
    assert health.json()["payload"]["status"] == "unavailable"
    assert "cannot be restarted" in health.json()["payload"]["reason"]
    assert {before, after} <= logged(db)


def _nanos(version: str) -> int:
    return int(base64.b64decode(version + "=" * (-len(version) % 4)))


def test_a_fhir_writeback_answered_200_survives_kill_9_of_the_emulator(tmp_path: Path) -> None:
    """A writeback changes the EHR through its event handlers; the records they change travel with the
    writeback's log, so what a 200 acknowledged is there after kill -9 and a restart on the same store,
    with the meta.versionId the write answered, and the next write moves it forward."""
    process, url = start(tmp_path, "--db", "store.db")
    try:
        with authed(url) as client:
            id_, version = written(write(client, "Patient", "$patient-create", message("PatientCreate", timothy())))
            written(write(client, "Observation", "$observation-create",
                          message("ObservationCreate", observation(f"Patient/{id_}"))))
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    process, url = start(tmp_path, "--db", "store.db")
    try:
        with authed(url) as client:
            [found] = matches(client, "Patient", identifier="urn:redox:redox-fhir-sandbox:MR|0000000099")
            assert found["id"] == id_ and found["name"][0]["family"] == "Bixbee"
            read = client.get(f"{BASE}/Patient/{id_}")
            assert read.status_code == 200 and read.json()["meta"]["versionId"] == version
            assert found["meta"]["versionId"] == version
            assert by_mrn(client, "0000000099")["Demographics"]["LastName"] == "Bixbee"
            assert [o["code"]["coding"][0]["code"] for o in matches(client, "Observation", patient=id_)] == ["8867-4"]
            again = timothy(id=id_)
            _, newer = written(write(client, "Patient", "$patient-update", message("PatientUpdate", again)), "200 OK")
            assert _nanos(newer) > _nanos(version)
    finally:
        process.terminate()
        process.wait(20)


def test_fhir_notifications_answered_200_survive_kill_9_of_the_emulator(tmp_path: Path) -> None:
    """The delivery queue's promise holds for FHIR notifications: a destination with `format: fhir`
    registered at run time, events sent to it and pushed by FHIR name while its webhook is down, then
    kill -9; after a restart on the same store every one is delivered, in order, as the same Bundle."""
    from tests.receiver import Receiver
    from tests.test_delivery import eventually

    with Receiver() as hook:
        hook.default_status = 503  # the app is down: everything stays queued
        process, url = start(tmp_path, "--db", "store.db")
        writer = psutil.Process(process.pid).children()
        try:
            with authed(url) as client:
                r = client.post("/__emulator/destinations", json={
                    "id": "fhir-app", "name": "FHIR app", "url": hook.url, "format": "fhir"})
                assert r.status_code == 200, r.text
                ids = [send(client, event("PatientAdmin", "Arrival", destinations=["fhir-app"], Patient={
                    "Identifiers": [{"ID": f"K9-{i}", "IDType": "MR"}]}))["Meta"]["Logs"][0]["ID"]
                       for i in range(20)]
                r = client.post("/__emulator/push", json={"format": "fhir", "DataModel": "FHIR.Message.Result",
                                                          "EventType": "result-created", "count": 10})
                assert r.status_code == 200, r.text
                ids += [entry["ID"] for entry in r.json()["payload"]["logs"]]
        finally:
            process.kill()  # SIGKILL: no shutdown code runs
            process.communicate(timeout=20)
            psutil.wait_procs(writer, timeout=20)  # the store's writer commits what it was handed, then exits
        tried = {d.json()["id"]: d.body for d in hook.deliveries()}  # at most the head, refused
        assert len(tried) <= 1

        hook.default_status = 200
        process, url = start(tmp_path, "--db", "store.db")
        try:
            assert eventually(lambda: len([d for d in hook.deliveries() if d.status == 200]) >= len(ids), 30)
            delivered = [d for d in hook.deliveries() if d.status == 200]
            assert len(delivered) == len(ids)  # nothing lost, nothing twice
            uris = [d.json()["entry"][0]["resource"]["eventUri"].rsplit("/", 1)[1] for d in delivered]
            assert uris == ["PatientAdminPatientArrived"] * 20 + ["ResultCreated"] * 10
            mrns = [next(e["resource"]["identifier"][0]["value"] for e in d.json()["entry"]
                         if e["resource"]["resourceType"] == "Patient") for d in delivered[:20]]
            assert mrns == [f"K9-{i}" for i in range(20)]  # in the order they were accepted
            assert all(d.headers["content-type"] == "application/fhir+json" for d in delivered)
            for d in delivered:  # a Bundle tried before the crash is sent again unchanged
                assert tried.get(d.json()["id"], d.body) == d.body
            with httpx.Client(base_url=url) as client:
                assert eventually(lambda: all(client.get(f"/__emulator/logs/{i}").json()["payload"]["log"]["status"]
                                              == "SUCCEEDED" for i in ids[-3:]), 20)
                log = client.get(f"/__emulator/logs/{ids[0]}").json()["payload"]["log"]
                assert (log["dataModel"], log["eventType"]) == ("FHIR.Message.PatientAdmin", "patient-arrived")
        finally:
            process.terminate()
            process.communicate(timeout=20)
