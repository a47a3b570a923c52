"""`make bench` part `fhir`: the FHIR API's `Patient/_search` by identifier and `Patient/{id}` read,
against the bare Starlette app of the same run, and a search's latency on a 10,000-patient population.

Throughput: bare Starlette (a fixed body, POST and GET) and the emulator (`redox-emulator serve` on a
SQLite file, every exchange journaled and logged) up side by side, loaded in turn round after round
with wrk, each figure the median round's, the ratio the emulator's median over bare's (as run.py does
for /endpoint). Latency on a large population: a second emulator with `--fhir-population` patients,
one connection, so each request's time is the server's alone; its p50 and p99. The emulator keeps a
searchset it answered until the EHR changes, so wrk's repeated search measures that; a last row sends
searches that are each new (family initial and birth date varied), timed one by one, so the scan of
the population is measured too.
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
class FhirReport:
    pairs: list[Pair]
    population: int
    large: list[Latency]
    settings: dict[str, Any]

    def targets(self) -> list[tuple[str, str, str, bool]]:
        found = []
        for pair in self.pairs:
            short = pair.load.split(" ")[0]
            found += [(f"FHIR {short} ratio", f"{pair.ratio:.3f}", f">= {TARGET_RATIO}", pair.ratio >= TARGET_RATIO),
                      (f"FHIR {short} p99", f"{pair.emulator.p99_ms:.2f} ms", f"<= {TARGET_P99_MS:g} ms",
                       pair.emulator.p99_ms <= TARGET_P99_MS)]
        found += [(f"FHIR search, {self.population:,} patients, p50 ({lat.search})", f"{lat.p50_ms:.2f} ms",
                   f"<= {TARGET_LARGE_P50_MS:g} ms", lat.p50_ms <= TARGET_LARGE_P50_MS) for lat in self.large]
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
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratios": {p.load: p.ratio for p in self.pairs}}


def _body_file(work: Path, load: Load) -> Path:
    path = work / f"fhir-{load.method.lower()}.form"
    path.write_bytes(urllib.parse.urlencode(load.body or {}).encode())
    return path


def _timed(url: str, pid: int, args: argparse.Namespace, body: Path, load: Load, token: str, seconds: float,
           connections: int | None = None, threads: int | None = None) -> Round:
    with cpu_use(pid) as cpus:
        r = wrk(url, body=body, seconds=seconds, connections=connections or args.connections,
                threads=threads or args.threads, token=token, method=load.method, content_type=FORM)
    return Round(r.rps, r.p50_ms, r.p99_ms, r.requests, *cpus)


def _check(base: str, token: str, load: Load) -> None:
    """The emulator answers the load with a 200 that found Bixby (wrk counts statuses, not answers)."""
    import urllib.request

    data = urllib.parse.urlencode(load.body).encode() if load.body else None
    request = urllib.request.Request(base + load.path, data=data, method=load.method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": FORM})
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = json.loads(answer.read())
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
                    threads=args.threads, token=tok, method=load.method, content_type=FORM)
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
    return FhirReport(pairs, args.fhir_population, _large(args, work), {
        "connections": args.connections, "threads": args.threads, "rounds": args.fhir_rounds,
        "duration": args.duration, "warmup": args.warmup})


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
