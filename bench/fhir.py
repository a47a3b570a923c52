"""`make bench` part `fhir`: the FHIR API's `Patient/_search` by identifier, `Patient/{id}` read and an
`Observation/$observation-create` writeback, against the bare Starlette app of the same run; a search's
latency on a 10,000-patient population; FHIR notifications delivered to one webhook per second.

Throughput: bare Starlette (a fixed body, POST and GET) and the emulator (`redox-emulator serve` on a
SQLite file, every exchange journaled and logged) up side by side, loaded in turn round after round
with wrk, each figure the median round's, the ratio the emulator's median over bare's (as run.py does
for /endpoint). Latency on a large population: a second emulator with `--fhir-population` patients,
one connection, so each request's time is the server's alone; its p50 and p99. The emulator keeps a
searchset it answered until the EHR changes, so wrk's repeated search measures that; a last row sends
searches that are each new (family initial and birth date varied), timed one by one, so the scan of
the population is measured too. Notifications: as bench/delivery.py measures the data model's
deliveries (the bare app as the receiver, its own process; the messages queued with the destination
paused, then timed from resume until its queue is empty), with one destination of `format: fhir` and
`patient-arrived` Bundles pushed by FHIR name.
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
import urllib.parse
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from run import (
    EMULATOR_ENV,
    Round,
    Side,
    child,
    cpu_use,
    emulator_command,
    fetch_token,
    free_port,
    say,
    start_bare,
    wait_until_up,
    wrk,
)

TARGET_RATIO = 0.3
TARGET_WRITEBACK_RATIO = 0.15
TARGET_NOTIFICATIONS = 1000.0  # FHIR notifications/s to one webhook, at least
FHIR_JSON = "application/fhir+json"
TARGET_P99_MS = 20.0
TARGET_LARGE_P50_MS = 10.0
FORM = "application/x-www-form-urlencoded"
FHIR = "/fhir/R4/redox-fhir-sandbox/Development"
BIXBY_ID = "3b8f2c4e-71d0-4a6b-9e15-c2d4f6a8b0e1"
BY_IDENTIFIER = {"identifier": "urn:redox:health-one:MR|0000000001"}
BY_NAME = {"family": "Bixby", "given": "Timothy", "birthdate": "2008-01-06"}


@dataclass
class Load:
    """One request shape: how wrk sends it to the emulator, and the bare app's same-method baseline."""

    name: str
    method: str
    path: str
    body: dict[str, str] | None = None
    bundle: dict[str, Any] | None = None  # a writeback's message Bundle (sent as application/fhir+json)
    target: float = TARGET_RATIO
    p99: bool = True  # held to TARGET_P99_MS


def _observation_bundle(patient_id: str = BIXBY_ID) -> dict[str, Any]:
    """An $observation-create message Bundle about a patient, as FHIR.md 4 shows the request."""
    return {"resourceType": "Bundle", "type": "message", "entry": [
        {"resource": {"resourceType": "MessageHeader", "id": "bench-header",
                      "eventUri": "https://fhir.redoxengine.com/EventDefinition/ObservationCreate",
                      "source": {"name": "bench", "endpoint": "urn:uuid:05107c08-fe2f-4740-8c1d-c7107d18ebe5"},
                      "focus": [{"reference": "Observation/bench-observation"}]}},
        {"resource": {"resourceType": "Observation", "id": "bench-observation", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                      "subject": {"reference": f"Patient/{patient_id}"},
                      "effectiveDateTime": "2031-06-02T15:00:00Z",
                      "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org",
                                        "code": "/min"}}}]}


WRITEBACK = Load("Observation/$observation-create writeback", "POST", f"{FHIR}/Observation/$observation-create",
                 bundle=_observation_bundle(), target=TARGET_WRITEBACK_RATIO, p99=False)
LOADS = (Load("Patient/_search by identifier", "POST", f"{FHIR}/Patient/_search", BY_IDENTIFIER),
         Load("Patient/{id} read", "GET", f"{FHIR}/Patient/{BIXBY_ID}"))


@dataclass
class Pair:
    load: str
    bare: Side
    emulator: Side

    @property
    def ratio(self) -> float:
        return self.emulator.rps / self.bare.rps


@dataclass
class Latency:
    search: str
    p50_ms: float
    p99_ms: float
    requests: int
    total: int  # what the search found: the check that it searched


@dataclass
class Notifications:
    events: int
    seconds: float
    cpu: float  # CPU seconds of the emulator and its store writer while delivering
    delivered_logs: int  # RECEIVE logs SUCCEEDED under the notification's name afterwards (every round's)
    json_seconds: float  # context: the same number of PatientAdmin.Arrival events as data-model JSON, same run
    json_cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass
class FhirReport:
    pairs: list[Pair]
    population: int
    large: list[Latency]
    settings: dict[str, Any]
    notifications: Notifications | None = None

    def targets(self) -> list[tuple[str, str, str, bool]]:
        found = []
        by_name = {load.name: load for load in (*LOADS, WRITEBACK)}
        for pair in self.pairs:
            load = by_name[pair.load]
            short = pair.load.split(" ")[0]
            found.append((f"FHIR {short} ratio", f"{pair.ratio:.3f}", f">= {load.target}", pair.ratio >= load.target))
            if load.p99:
                found.append((f"FHIR {short} p99", f"{pair.emulator.p99_ms:.2f} ms", f"<= {TARGET_P99_MS:g} ms",
                              pair.emulator.p99_ms <= TARGET_P99_MS))
        found += [(f"FHIR search, {self.population:,} patients, p50 ({lat.search})", f"{lat.p50_ms:.2f} ms",
                   f"<= {TARGET_LARGE_P50_MS:g} ms", lat.p50_ms <= TARGET_LARGE_P50_MS) for lat in self.large]
        if self.notifications is not None:
            n = self.notifications
            found.append(("FHIR notifications to one webhook", f"{n.rate:,.0f}/s", f">= {TARGET_NOTIFICATIONS:,.0f}/s",
                          n.rate >= TARGET_NOTIFICATIONS))
        return found

    def render(self) -> str:
        s = self.settings
        lines = ["", f"FHIR API: {s['connections']} connections, {s['threads']} wrk threads, {s['rounds']} rounds of "
                     f"{s['duration']:g} s per load after {s['warmup']:g} s warm-up; emulator journaling and logging "
                     "to a SQLite file", f"  {'':44}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'worst p99':>11}"]
        for pair in self.pairs:
            for side in (pair.bare, pair.emulator):
                lines.append(f"  {f'{pair.load}: {side.name}':44}{side.rps:12,.0f}{side.p50_ms:10.2f}"
                             f"{side.p99_ms:10.2f}{side.p99_worst_ms:11.2f}")
            rounds = ", ".join(f"{e.rps / b.rps:.3f}" for e, b in zip(pair.emulator.rounds, pair.bare.rounds,
                                                                       strict=True))
            lines.append(f"  ratio emulator/bare: {pair.ratio:.3f} (each round's: {rounds})")
        lines.append(f"  on {self.population:,} patients, one connection:")
        for lat in self.large:
            lines.append(f"  {lat.search:44}p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms over "
                         f"{lat.requests:,} requests (found {lat.total})")
        n = self.notifications
        if n is not None:
            lines.append("  FHIR notifications (patient-arrived, detailed) to one webhook (bare Starlette, own "
                         f"process): "
                         f"{n.events:,} in {n.seconds:.2f} s = {n.rate:,.0f}/s (emulator + store writer CPU "
                         f"{n.cpu / n.events * 1e6:,.0f} us/notification; median of {NOTIFY_ROUNDS} rounds; "
                         f"{n.delivered_logs:,} logs SUCCEEDED of {n.events * NOTIFY_ROUNDS:,} pushed)")
            lines.append("  the same as data-model JSON (PatientAdmin.Arrival), same run: "
                         f"{n.events / n.json_seconds:,.0f}/s "
                         f"(CPU {n.json_cpu / n.events * 1e6:,.0f} us/event; context only)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratios": {p.load: p.ratio for p in self.pairs}}


def _body_file(work: Path, load: Load) -> Path:
    if load.bundle is not None:
        path = work / "fhir-writeback.json"
        path.write_bytes(json.dumps(load.bundle, separators=(",", ":")).encode())
        return path
    path = work / f"fhir-{load.method.lower()}.form"
    path.write_bytes(urllib.parse.urlencode(load.body or {}).encode())
    return path


def _content_type(load: Load) -> str:
    return FHIR_JSON if load.bundle is not None else FORM


def _timed(url: str, pid: int, args: argparse.Namespace, body: Path, load: Load, token: str, seconds: float,
           connections: int | None = None, threads: int | None = None, lines: bool = False) -> Round:
    with cpu_use(pid) as cpus:
        r = wrk(url, body=body, seconds=seconds, connections=connections or args.connections,
                threads=threads or args.threads, token=token, method=load.method, content_type=_content_type(load),
                lines=lines)
    return Round(r.rps, r.p50_ms, r.p99_ms, r.requests, *cpus)


def _check(base: str, token: str, load: Load) -> None:
    """The emulator answers the load with a 200 that found Bixby (wrk counts statuses, not answers)."""
    import urllib.request

    if load.bundle is not None:
        data: bytes | None = json.dumps(load.bundle).encode()
    else:
        data = urllib.parse.urlencode(load.body).encode() if load.body else None
    request = urllib.request.Request(base + load.path, data=data, method=load.method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": _content_type(load)})
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = json.loads(answer.read())
    if load.bundle is not None:  # the writeback's transaction-response: one entry created
        status = str(body.get("entry", [{}])[0].get("response", {}).get("status"))
        if body.get("type") != "transaction-response" or status != "201 Created":
            from run import BenchError

            raise BenchError(f"the writeback was not created: {str(body)[:300]}")
        return
    found = body.get("total", 1 if body.get("id") == BIXBY_ID else 0)
    if found != 1:
        from run import BenchError

        raise BenchError(f"{load.method} {load.path} found {found} patients, not Bixby alone: {str(body)[:300]}")


def bench_fhir(args: argparse.Namespace, work: Path) -> FhirReport:
    pairs: list[Pair] = []
    with ExitStack() as stack:
        bare = start_bare(stack, work)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = work / "fhir-emulator.log"
        proc = stack.enter_context(child(emulator_command(port, work / "fhir.db"), log, EMULATOR_ENV))
        wait_until_up(f"{base}/__emulator/health", proc, log)
        token = fetch_token(base)
        say(f"FHIR: bare Starlette and the emulator, {len(LOADS)} loads, warm-up {args.warmup:g} s each, then "
            f"{args.fhir_rounds} rounds of {args.duration:g} s")
        bodies = {load.name: _body_file(work, load) for load in LOADS}
        for load in LOADS:
            _check(base, token, load)
            for url, tok in ((bare.url, ""), (base + load.path, token)):
                wrk(url, body=bodies[load.name], seconds=args.warmup, connections=args.connections,
                    threads=args.threads, token=tok, method=load.method, content_type=_content_type(load))
        rounds: dict[tuple[str, str], list[Round]] = {}
        for number in range(1, args.fhir_rounds + 1):
            for load in LOADS:
                for name, url, pid, tok in (("bare Starlette", bare.url, bare.proc.pid, ""),
                                            ("emulator", base + load.path, proc.pid, token)):
                    rounds.setdefault((load.name, name), []).append(
                        _timed(url, pid, args, bodies[load.name], load, tok, args.duration))
            say(f"FHIR round {number}: " + ", ".join(
                f"{load.name} {rounds[load.name, 'emulator'][-1].rps / rounds[load.name, 'bare Starlette'][-1].rps:.3f}"
                for load in LOADS))
        for load in LOADS:
            pairs.append(Pair(load.name, Side.of("bare Starlette", rounds[load.name, "bare Starlette"]),
                              Side.of("emulator", rounds[load.name, "emulator"])))
        pairs.append(_writeback(args, work, stack, bare))
    return FhirReport(pairs, args.fhir_population, _large(args, work), {
        "connections": args.connections, "threads": args.threads, "rounds": args.fhir_rounds,
        "duration": args.duration, "warmup": args.warmup}, bench_notifications(work, args.events))


NOTIFIED = "fhir-bench"
NOTIFY_ROUNDS = 3
PLAIN = "json-bench"


def bench_notifications(work: Path, events: int) -> Notifications:
    """FHIR notifications/s to one webhook answering 200 at once: delivery alone, each one recorded."""
    import sqlite3
    import sys

    receiver_port, port = free_port(), free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}/endpoint"
    config = work / "notifications.yaml"
    config.write_text(json.dumps({"destinations": [  # JSON is YAML
        {"id": NOTIFIED, "name": NOTIFIED, "url": receiver_url, "format": "fhir"},
        {"id": PLAIN, "name": PLAIN, "url": receiver_url}]}))
    db = work / "notifications.db"
    receiver_cmd = [sys.executable, str(Path(__file__).parent / "bare_app.py"), "--port", str(receiver_port)]
    with ExitStack() as stack:
        receiver = stack.enter_context(child(receiver_cmd, work / "notify-receiver.log"))
        wait_until_up(receiver_url, receiver, work / "notify-receiver.log", method="POST")
        base = f"http://127.0.0.1:{port}"
        log = work / "notifications.log"
        proc = stack.enter_context(child([*emulator_command(port, db), "--config", str(config)], log, EMULATOR_ENV))
        wait_until_up(f"{base}/__emulator/health", proc, log)
        say(f"FHIR notifications: {NOTIFY_ROUNDS} rounds of {events:,} patient-arrived Bundles to one webhook, "
            "each followed by as many data-model arrivals")
        _drain(base, min(events, 500), proc.pid)  # warm-up
        _drain(base, min(events, 500), proc.pid, fhir=False)
        fhir_rounds, json_rounds = [], []
        for _ in range(NOTIFY_ROUNDS):  # interleaved, so that a loaded machine weighs on both alike
            fhir_rounds.append(_drain(base, events, proc.pid))
            json_rounds.append(_drain(base, events, proc.pid, fhir=False))
        (seconds, cpu), (json_seconds, json_cpu) = _median(fhir_rounds), _median(json_rounds)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        delivered = int(conn.execute("SELECT COUNT(*) FROM logs WHERE type = 'RECEIVE' AND status = 'SUCCEEDED' AND "
                                     "data_model = 'FHIR.Message.PatientAdmin' AND event_type = 'patient-arrived'")
                        .fetchone()[0])
    return Notifications(events, seconds, cpu, delivered - min(events, 500), json_seconds, json_cpu)


def _median(rounds: list[tuple[float, float]]) -> tuple[float, float]:
    """The median round by time, with its CPU seconds."""
    return sorted(rounds)[len(rounds) // 2]


def _drain(base: str, events: int, pid: int, fhir: bool = True) -> tuple[float, float]:
    """Queue `events` notifications (`fhir` False: the same arrivals as data-model JSON, to the JSON
    destination) while the destination is paused, resume, time until all are delivered."""
    import time

    import delivery  # bench/delivery.py: its control-plane calls and CPU readings
    from run import BenchError

    target = NOTIFIED if fhir else PLAIN
    what = ({"format": "fhir", "DataModel": "FHIR.Message.PatientAdmin", "EventType": "patient-arrived"} if fhir
            else {"DataModel": "PatientAdmin", "EventType": "Arrival"})
    delivery.control(base, "POST", f"/destinations/{target}/queue/pause")
    for start in range(0, events, 2000):  # the EHR builds each event (and its Bundle): a request per batch
        delivery.control(base, "POST", "/push", {**what, "count": min(2000, events - start), "destinations": [target]})
    started, cpu = time.monotonic(), delivery.cpu_seconds(pid)
    delivery.control(base, "POST", f"/destinations/{target}/queue/resume")
    while True:
        pending = delivery.control(base, "GET", f"/destinations/{target}")["destination"]["queue"]["pending"]  # type: ignore[index]
        if pending == 0:
            return time.monotonic() - started, delivery.cpu_seconds(pid) - cpu
        if time.monotonic() - started > 600:
            raise BenchError(f"FHIR notification delivery stalled with {pending} pending")
        time.sleep(0.02)


def _writeback(args: argparse.Namespace, work: Path, stack: ExitStack, bare: Any) -> Pair:
    """The writeback against the same bare app, on an emulator of its own: every write moves the EHR's
    generation, which the read and search loads above would pay for in their renders."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = work / "fhir-writeback.log"
    proc = stack.enter_context(child(emulator_command(port, work / "fhir-writeback.db"), log, EMULATOR_ENV))
    wait_until_up(f"{base}/__emulator/health", proc, log)
    token = fetch_token(base)
    load = WRITEBACK
    _check(base, token, load)
    # One body per patient of the population, sent in turn: clients write about many patients, and one
    # patient's chart growing by every write of the run would measure that patient alone.
    body = work / "fhir-writebacks.jsonl"
    body.write_text("".join(json.dumps(_observation_bundle(i), separators=(",", ":")) + "\n"
                            for i in _patient_ids(base, token)))
    for url, tok in ((bare.url, ""), (base + load.path, token)):
        wrk(url, body=body, seconds=args.warmup, connections=args.connections, threads=args.threads, token=tok,
            method=load.method, content_type=_content_type(load), lines=True)
    rounds: dict[str, list[Round]] = {"bare Starlette": [], "emulator": []}
    for number in range(1, args.fhir_rounds + 1):
        for name, url, pid, tok in (("bare Starlette", bare.url, bare.proc.pid, ""),
                                    ("emulator", base + load.path, proc.pid, token)):
            rounds[name].append(_timed(url, pid, args, body, load, tok, args.duration, lines=True))
        say(f"FHIR writeback round {number}: {rounds['emulator'][-1].rps / rounds['bare Starlette'][-1].rps:.3f}")
    return Pair(load.name, Side.of("bare Starlette", rounds["bare Starlette"]), Side.of("emulator", rounds["emulator"]))


def _patient_ids(base: str, token: str) -> list[str]:
    """The FHIR ids of the population's patients (the first page of a search for every one)."""
    import urllib.request

    request = urllib.request.Request(f"{base}{FHIR}/Patient/_search", data=b"_count=200", method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": FORM})
    with urllib.request.urlopen(request, timeout=60) as answer:
        found = [str(e["resource"]["id"]) for e in json.loads(answer.read()).get("entry", [])]
    if not found:
        from run import BenchError

        raise BenchError("a search for every patient found none")
    return found


def _large(args: argparse.Namespace, work: Path) -> list[Latency]:
    """Search latency on a large population: one connection, so no request waits behind another."""
    found = []
    with ExitStack() as stack:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = work / "fhir-large.log"
        env = {**EMULATOR_ENV, "REDOX_EMULATOR_POPULATION": str(args.fhir_population)}
        say(f"FHIR: an emulator with {args.fhir_population:,} patients (built once, then cached)")
        proc = stack.enter_context(child(emulator_command(port, work / "fhir-large.db"), log, env))
        wait_until_up(f"{base}/__emulator/health", proc, log, timeout=600)
        token = fetch_token(base)
        for name, params in (("by identifier", BY_IDENTIFIER), ("by family+given+birthdate", BY_NAME)):
            load = Load(name, "POST", f"{FHIR}/Patient/_search", params)
            _check(base, token, load)
            body_file = _body_file(work, load)
            wrk(base + load.path, body=body_file, seconds=1, connections=1, threads=1, token=token, method="POST",
                content_type=FORM)
            r = _timed(base + load.path, proc.pid, args, body_file, load, token, args.duration, 1, 1)
            found.append(Latency(name, r.p50_ms, r.p99_ms, r.requests, 1))
        found.append(_new_searches(port, token))
    return found


def _new_searches(port: int, token: str, count: int = 300) -> Latency:
    """`count` Patient searches by family initial and birth date, none asked before (nothing kept answers
    them), one after another on one keep-alive connection; each timed from request to the last byte."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": FORM}
    times, found = [], 0
    try:
        for i in range(count):
            day = time.strftime("%Y-%m-%d", time.gmtime(-631152000 + i * 86400 * 37))  # from 1950, every 37 days
            body = urllib.parse.urlencode({"family": "ABCDEFGHJKLMPRSTW"[i % 17], "birthdate": day})
            started = time.perf_counter()
            connection.request("POST", f"{FHIR}/Patient/_search", body, headers)
            answer = connection.getresponse()
            data = answer.read()
            times.append((time.perf_counter() - started) * 1000)
            if answer.status != 200:
                from run import BenchError

                raise BenchError(f"a new search answered {answer.status}: {data[:300]!r}")
            found += json.loads(data)["total"]
    finally:
        connection.close()
    times.sort()
    return Latency("by family+birthdate, each a new search", times[len(times) // 2],
                   times[min(len(times) - 1, int(len(times) * 0.99))], count, found)
