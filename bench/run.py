"""`make bench`: throughput, latency and memory of `POST /endpoint`, against a bare Starlette app.

Each server runs in its own process, driven by `wrk` (a separate C load generator, so the client is
not the bottleneck) with the same connections, threads, body and headers. The servers are loaded in
turn, round after round (bare, emulator, echo; again): a shared machine's speed swings by tens of
percent for a second or two at a time, so each server's figures are those of its median round, and the
ratio is the emulator's median over bare's: many short rounds spread the swings over both. The emulator
runs as users run it: `redox-emulator serve` on a real SQLite file, so auth, validation, routing and
logging are all on the request path. The rate limit is raised (and its window shortened) so that it
never trips; the limiter itself still runs on every request.

    .venv/bin/python bench/run.py [--rounds 9] [--duration 3] [--warmup 3] [--requests 200000]
                                  [--strict] [--json F]

Exit status: 0 when the run completed (targets missed or not, unless --strict: then 1 on a miss),
2 when the run itself failed (wrk missing, a server did not start, a response was not 200).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import validation as validation_bench  # bench/validation.py, beside this script

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BODY_FILE = BENCH / "new_patient.json"
LUA = BENCH / "post.lua"

TARGET_RATIO = 0.35  # emulator requests/s over bare requests/s, at least
TARGET_P99_MS = 20.0  # emulator p99, at most
TARGET_GROWTH_MB = 50.0  # emulator RSS growth across --requests requests, under
NOISY_CPUS = 0.25  # more CPU than this used by other processes during a timed run: say the figures are off

# The emulator's settings for the run, as REDOX_EMULATOR_* variables.
EMULATOR_ENV = {
    # Far above what 2 cores can send, so no request is throttled; the limiter still runs.
    "REDOX_EMULATOR_RATE_LIMIT": "100000000",
    # The limiter keeps one timestamp per request in its window: with the raised limit and the default
    # 300 s window that is every request of the run, which would show up as "growth". A 1 s window keeps
    # it bounded (a few thousand entries) like the default 7,500-per-300 s limit does.
    "REDOX_EMULATOR_RATE_WINDOW": "1",
    # The default OAuth lifetime (300 s) is shorter than a long run; one token must last it.
    "REDOX_EMULATOR_OAUTH_TOKEN_LIFETIME": "86400",
}
CLIENT = {"grant_type": "client_credentials", "client_id": "sandbox-client",
          "client_secret": "sandbox-client-secret"}
WRK_INSTALL = ("wrk, the load generator, is not installed. On Debian/Ubuntu: sudo apt-get install -y wrk "
               "(.ci/run installs it); on macOS: brew install wrk.")


class BenchError(Exception):
    """The run could not produce trustworthy figures."""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    ok: int
    non_200: int
    non_200_statuses: dict[str, int]
    socket_errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


@dataclass
class Round:
    """What one server did in one timed run."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    server_cpus: float  # CPUs the server process (with its children: the log writer) kept busy
    other_cpus: float  # CPUs used by everything but the server and wrk: noise in the figures


@dataclass
class Side:
    """What one server did over the rounds: the median round's figures (by requests/s), the median of the
    rounds' p99s (the upper of two middles) beside the worst of them, and the requests of all rounds.

    Medians, because the host's speed jumps by a third for a second or two at a time: one round's figures
    say more about the host's worst second than about the server; every round is printed.
    """

    name: str
    rounds: list[Round]
    rps: float
    p50_ms: float
    p99_ms: float
    p99_worst_ms: float
    requests: int
    server_cpus: float
    other_cpus: float

    @classmethod
    def of(cls, name: str, rounds: list[Round]) -> Side:
        median = sorted(rounds, key=lambda r: r.rps)[(len(rounds) - 1) // 2]  # the lower of two middles
        p99s = sorted(r.p99_ms for r in rounds)
        return cls(name, rounds, median.rps, median.p50_ms, p99s[len(p99s) // 2], p99s[-1],
                   sum(r.requests for r in rounds), median.server_cpus, max(r.other_cpus for r in rounds))


@dataclass
class Report:
    bare: Side
    emulator: Side
    # The emulator's median round over bare's (requests/s). Not the median of each round's own ratio: the
    # host's swings last a second or two, so the two runs of a round swing independently, and a ratio of
    # two runs carries the noise of both.
    ratio: float
    rss_before_mb: float
    rss_after_mb: float
    rss_peak_mb: float | None
    requests_between: int
    backlog_s: float  # how long the log writer took, after the last response, to commit its backlog
    committed_rps: float  # the emulator's requests after warm-up over its loaded time plus the final backlog
    logs: int
    endpoint_exchanges: dict[str, int]
    wrk_ok_total: int
    settings: dict[str, Any] = field(default_factory=dict)
    echo: Side | None = None  # context, not a target: an app that only parses the body and echoes it

    @property
    def growth_mb(self) -> float:
        return self.rss_after_mb - self.rss_before_mb

    def targets(self) -> list[tuple[str, str, str, bool]]:
        """(what, value, goal, met) for each target of the issue."""
        return [
            ("throughput ratio emulator/bare", f"{self.ratio:.3f}", f">= {TARGET_RATIO}",
             self.ratio >= TARGET_RATIO),
            ("emulator p99 (median round)", f"{self.emulator.p99_ms:.2f} ms", f"<= {TARGET_P99_MS:g} ms",
             self.emulator.p99_ms <= TARGET_P99_MS),
            (f"RSS growth over {self.requests_between:,} requests", f"{self.growth_mb:+.1f} MB",
             f"< {TARGET_GROWTH_MB:g} MB", self.growth_mb < TARGET_GROWTH_MB),
        ]


# ---- processes ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def child(cmd: Sequence[str], log: Path,
          env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, stopped (SIGTERM, then SIGKILL) however the block ends.

    Its own session, so a Ctrl-C reaches only us and we stop it in order; output goes to `log`.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, cwd=ROOT, start_new_session=True)
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # uvicorn shuts down gracefully; the emulator flushes its log store
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    finally:  # also on a second Ctrl-C while waiting
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def http(method: str, url: str, data: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, method: str = "GET",
                  timeout: float = 30.0) -> None:
    """Poll `url` until it answers (200 for GET; any answer for the bare app's POST-only route)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
        try:
            status, _ = http(method, url, timeout=2)
            if status == 200 or method != "GET":
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"no answer from {url} within {timeout:g} s:\n{tail(log)}")


def emulator_command(port: int, db: Path) -> list[str]:
    script = Path(sys.executable).parent / "redox-emulator"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "emulator"]
    return [*head, "serve", "--port", str(port), "--db", str(db)]


def fetch_token(base: str) -> str:
    status, body = http("POST", f"{base}/v2/auth/token", CLIENT)
    if status != 200:
        raise BenchError(f"POST /v2/auth/token answered {status}: {body[:300]!r}")
    return str(json.loads(body)["access_token"])


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of the process's RSS (Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@contextmanager
def cpu_use(server_pid: int) -> Iterator[list[float]]:
    """[CPUs used by the server, CPUs used by other processes] over the block, filled in at its end.

    The server's CPUs include its children's (the emulator's log writer, which the emulator needs).
    Other processes are everything but the server, wrk (our only child reaped in the block) and us:
    on a 2-core machine a test suite running alongside halves the figures, so the report says so.
    """
    cpus: list[float] = []
    server = psutil.Process(server_pid)

    def sample() -> tuple[float, float, float, float]:
        busy = psutil.cpu_times()
        ours = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        srv = 0.0
        for proc in [server, *server.children(recursive=True)]:  # the emulator's log writer is its child
            with suppress(psutil.Error):
                times = proc.cpu_times()
                srv += times.user + times.system
        return (time.monotonic(),
                busy.user + busy.nice + busy.system + getattr(busy, "irq", 0) + getattr(busy, "softirq", 0),
                srv,
                ours.ru_utime + ours.ru_stime + kids.ru_utime + kids.ru_stime)

    start = sample()
    yield cpus
    end = sample()
    elapsed, busy, srv, mine = (b - a for a, b in zip(start, end, strict=True))
    cpus += [srv / elapsed, max(0.0, busy - srv - mine) / elapsed]


# ---- load ----------------------------------------------------------------------------------------

def compact_body(work: Path) -> Path:
    """The event as a client library would send it: compact JSON, no indentation."""
    path = work / "body.json"
    path.write_bytes(json.dumps(json.loads(BODY_FILE.read_bytes()), separators=(",", ":")).encode())
    return path


def wrk(url: str, *, body: Path, seconds: float, connections: int, threads: int, token: str = "",
        stop_after: int = 0, method: str = "POST", content_type: str = "application/json",
        lines: bool = False) -> WrkResult:
    """One wrk run; `stop_after` > 0 ends it after that many responses (seconds is then a ceiling);
    `lines`: the body file holds one body per line, sent in turn."""
    env = {**os.environ, "BENCH_BODY_FILE": str(body), "BENCH_TOKEN": token,
           "BENCH_THREADS": str(threads), "BENCH_STOP_AFTER": str(stop_after), "BENCH_METHOD": method,
           "BENCH_CONTENT_TYPE": content_type, "BENCH_BODY_LINES": "1" if lines else "0"}
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(LUA), url]
    output = run_wrk(cmd, env, threads if stop_after > 0 else 0, timeout=seconds + 60)
    line = next((x for x in output.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise BenchError(f"wrk failed: {output.strip()[-2000:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    lat = raw["latency_us"]
    result = WrkResult(
        requests=raw["requests"], duration_s=raw["duration_us"] / 1e6, ok=raw["ok"], non_200=raw["non_200"],
        non_200_statuses=raw["non_200_statuses"], socket_errors=raw["errors"],
        p50_ms=lat["p50"] / 1e3, p90_ms=lat["p90"] / 1e3, p99_ms=lat["p99"] / 1e3, max_ms=lat["max"] / 1e3,
    )
    check(url, result)
    return result


def run_wrk(cmd: list[str], env: dict[str, str], threads_to_stop: int, timeout: float) -> str:
    """wrk's output; once `threads_to_stop` threads have said they stopped, SIGINT ends wrk early."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    watchdog = threading.Timer(timeout, proc.kill)  # wrk's own -d should end it long before
    watchdog.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("BENCH_THREAD_STOPPED"):
                threads_to_stop -= 1
                if threads_to_stop == 0:
                    proc.send_signal(signal.SIGINT)
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:  # interrupted: no wrk left behind
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}: {''.join(lines).strip()[-2000:]}")
    return "".join(lines)


def check(url: str, result: WrkResult) -> None:
    """Figures from failing requests would be meaningless: every response must be a 200."""
    if result.non_200:
        raise BenchError(f"{url}: {result.non_200} of {result.requests} responses were not 200 "
                         f"(by status: {result.non_200_statuses})")
    errors = {k: v for k, v in result.socket_errors.items() if v and k != "status"}
    if errors:
        raise BenchError(f"{url}: socket errors {errors}")
    if result.requests == 0:
        raise BenchError(f"{url}: no request completed")


# ---- the log store ---------------------------------------------------------------------------------

def store_counts(db: Path) -> tuple[int, dict[str, int]]:
    """(rows in `logs`, POST /endpoint exchanges by status), read-only, straight from the file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        logs = int(conn.execute("SELECT COUNT(*) FROM logs").fetchone()[0])
        rows = conn.execute("SELECT status, COUNT(*) FROM exchanges WHERE method = 'POST' "
                            "AND path = '/endpoint' GROUP BY status").fetchall()
    return logs, {str(status): int(count) for status, count in rows}


def verify_store(logs: int, exchanges: dict[str, int], wrk_ok: int, slack: int) -> None:
    """Logging was on: one log per 200 wrk counted, plus at most `slack` answered after wrk stopped."""
    bad = {s: n for s, n in exchanges.items() if s != "200"}
    if bad:
        raise BenchError(f"the emulator answered POST /endpoint with non-200 statuses: {bad}")
    if logs != exchanges.get("200", 0):
        raise BenchError(f"{logs} logs but {exchanges.get('200', 0)} journaled 200 exchanges")
    if not wrk_ok <= logs <= wrk_ok + slack:
        raise BenchError(f"the log store holds {logs} logs; wrk counted {wrk_ok} 200 responses "
                         f"(at most {slack} more may have been answered after wrk stopped)")


# ---- the run --------------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    token: str = ""
    rounds: list[Round] = field(default_factory=list)
    runs: list[WrkResult] = field(default_factory=list)  # every wrk run, warm-up included

    def load(self, args: argparse.Namespace, work: Path, seconds: float, stop_after: int = 0) -> WrkResult:
        result = wrk(self.url, body=work / "body.json", seconds=seconds, connections=args.connections,
                     threads=args.threads, token=self.token, stop_after=stop_after)
        self.runs.append(result)
        return result

    def timed(self, args: argparse.Namespace, work: Path) -> None:
        with cpu_use(self.proc.pid) as cpus:
            result = self.load(args, work, args.duration)
        self.rounds.append(Round(result.rps, result.p50_ms, result.p99_ms, result.requests, *cpus))


def start_bare(stack: ExitStack, work: Path, *, echo: bool = False) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}/endpoint"
    name = "bare JSON echo" if echo else "bare Starlette"
    log = work / ("echo.log" if echo else "bare.log")
    cmd = [sys.executable, str(BENCH / "bare_app.py"), "--port", str(port), *(["--echo"] if echo else [])]
    proc = stack.enter_context(child(cmd, log))
    wait_until_up(url, proc, log, method="POST")
    return Server(name, proc, url)


def bench_endpoint(args: argparse.Namespace, work: Path) -> Report:
    """The three servers up side by side; each warmed up, then loaded in turn for `--rounds` rounds."""
    db = work / "bench.db"
    log = work / "emulator.log"
    with ExitStack() as stack:
        bare = start_bare(stack, work)
        echo = start_bare(stack, work, echo=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = stack.enter_context(child(emulator_command(port, db), log, EMULATOR_ENV))
        wait_until_up(f"{base}/__emulator/health", proc, log)
        emulator = Server("emulator", proc, f"{base}/endpoint", fetch_token(base))
        servers = (bare, emulator, echo)  # the ratio's two sides back to back
        say(f"bare Starlette, bare JSON echo and the emulator (db {db}): warm-up {args.warmup:g} s each, "
            f"then {args.rounds} rounds of {args.duration:g} s each")
        for server in servers:
            server.load(args, work, args.warmup)
        drain(base)
        before = rss_mb(proc.pid)
        for number in range(1, args.rounds + 1):
            for server in servers:
                server.timed(args, work)
            say(f"round {number}: " + ", ".join(f"{s.name} {s.rounds[-1].rps:,.0f}/s" for s in servers))
        remaining = args.requests - sum(r.requests for r in emulator.rounds)
        if remaining > 0:
            say(f"emulator: {remaining:,} more requests for the memory check")
            # A ceiling only: at 200 requests/s it would still finish.
            if emulator.load(args, work, remaining / 200 + 60, stop_after=remaining).requests < remaining:
                raise BenchError(f"wrk stopped after {emulator.runs[-1].requests} of {remaining} requests")
        # RSS is read once the writer's backlog is committed: what is still held then is kept.
        backlog_s = drain(base)
        after = rss_mb(proc.pid)
        peak = peak_rss_mb(proc.pid)
        if proc.poll() is not None:
            raise BenchError(f"the emulator died during the run:\n{tail(log)}")
    # Stopped gracefully, so the store is flushed and closed: count from the file itself.
    logs, exchanges = store_counts(db)
    wrk_ok = sum(r.ok for r in emulator.runs)
    verify_store(logs, exchanges, wrk_ok, slack=args.connections * len(emulator.runs))
    between = sum(r.requests for r in emulator.runs[1:])
    # The emulator's own loaded time (the rounds of the other servers left out) and the final commit.
    committed_s = sum(r.duration_s for r in emulator.runs[1:]) + backlog_s
    bare_side, emulator_side = Side.of(bare.name, bare.rounds), Side.of(emulator.name, emulator.rounds)
    return Report(bare=bare_side, emulator=emulator_side,
                  ratio=emulator_side.rps / bare_side.rps, rss_before_mb=before, rss_after_mb=after, rss_peak_mb=peak,
                  requests_between=between, backlog_s=backlog_s, committed_rps=between / committed_s, logs=logs,
                  endpoint_exchanges=exchanges, wrk_ok_total=wrk_ok, echo=Side.of(echo.name, echo.rounds))


def drain(base: str, limit: float = 600.0) -> float:
    """Seconds until the log store has committed everything handed to its writer so far.

    Reading the logs flushes the store, but its flush gives up after 10 s: a read that took that long
    may have returned with a backlog left, so read again until one comes back quickly.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit:
        begun = time.monotonic()
        status, body = http("GET", f"{base}/__emulator/logs?limit=1", timeout=60)
        if status != 200:
            raise BenchError(f"GET /__emulator/logs answered {status}: {body[:300]!r}")
        if time.monotonic() - begun < 5.0:
            return time.monotonic() - started
    raise BenchError(f"the log store was still writing its backlog after {limit:g} s")


def say(text: str) -> None:
    print(f"-- {text}", file=sys.stderr, flush=True)


def render(report: Report) -> str:
    s = report.settings
    lines = [
        "",
        f"POST /endpoint: {s['connections']} connections, {s['threads']} wrk threads, {s['rounds']} rounds of "
        f"{s['duration']:g} s per server after {s['warmup']:g} s warm-up, {s['cpus']} CPUs",
        f"body: PatientAdmin.NewPatient, {s['body_bytes']:,} bytes; emulator: auth, validation, routing and "
        "logging to a SQLite file on",
        "emulator env: " + " ".join(f"{k}={v}" for k, v in EMULATOR_ENV.items()),
        "  (the limiter runs on every request but never trips; a 1 s window bounds its memory)",
        "",
        "  each round, in turn (server CPUs include the emulator's log writer):",
        f"  {'':20}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'requests':>11}"
        f"{'server CPUs':>13}{'other CPUs':>12}",
    ]
    sides = (report.bare, report.emulator, *([report.echo] if report.echo else []))
    for number in range(len(report.emulator.rounds)):
        for side in sides:
            r = side.rounds[number]
            lines.append(f"  {f'{number + 1}: {side.name}':20}{r.rps:12,.0f}{r.p50_ms:10.2f}{r.p99_ms:10.2f}"
                         f"{r.requests:11,}{r.server_cpus:13.2f}{r.other_cpus:12.2f}")
    lines += ["", "  median round (p99: the median of the rounds' p99s; the worst round's last):"]
    for side in sides:
        lines.append(f"  {side.name:20}{side.rps:12,.0f}{side.p50_ms:10.2f}{side.p99_ms:10.2f}"
                     f"{side.requests:11,}{side.server_cpus:13.2f}{side.other_cpus:12.2f}"
                     f"{f'(worst p99 {side.p99_worst_ms:.2f} ms)':>27}")
    pairs = zip(report.emulator.rounds, report.bare.rounds, strict=True)
    per_round = ", ".join(f"{e.rps / b.rps:.3f}" for e, b in pairs)
    peak = f", peak {report.rss_peak_mb:.1f} MB" if report.rss_peak_mb is not None else ""
    lines += [
        f"  ratio emulator/bare: {report.ratio:.3f}, median round over median round (each round's: {per_round})"
        + (f"   (emulator/echo: {report.emulator.rps / report.echo.rps:.3f}, context only)" if report.echo else ""),
        "",
        f"emulator RSS: {report.rss_before_mb:.1f} MB after warm-up -> {report.rss_after_mb:.1f} MB after "
        f"{report.requests_between:,} more requests ({report.growth_mb:+.1f} MB{peak})",
        f"log writer: committed its backlog {report.backlog_s:.1f} s after the last response; "
        f"{report.committed_rps:,.0f} requests/s answered and committed",
        f"log store: {report.logs:,} logs, {report.endpoint_exchanges.get('200', 0):,} "
        f"POST /endpoint exchanges all 200; wrk counted {report.wrk_ok_total:,} 200s "
        f"(+{report.logs - report.wrk_ok_total} answered as wrk stopped)",
    ]
    noise = max(report.bare.other_cpus, report.emulator.other_cpus)
    if noise > NOISY_CPUS:
        lines += ["", f"WARNING: other processes kept {noise:.2f} CPUs busy during a timed run "
                  f"(of {report.settings['cpus']}); these figures understate the emulator and the baseline."]
    return "\n".join(lines)


def to_json(report: Report) -> dict[str, Any]:
    data = asdict(report)
    data["rss_growth_mb"] = report.growth_mb
    data["targets"] = [{"what": w, "value": v, "goal": g, "met": m} for w, v, g, m in report.targets()]
    data["emulator_env"] = EMULATOR_ENV
    return data


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark POST /endpoint against a bare Starlette app.")
    parser.add_argument("--rounds", type=int, default=9, help="timed runs of each server, in turn (9)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of each timed run (3)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per server (3)")
    parser.add_argument("--requests", type=int, default=200_000,
                        help="requests through the emulator between the two RSS readings (200000)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", choices=["endpoint", "fhir", "delivery", "validation", "scenarios", "logs",
                                           "harness", "recording"],
                        help="run one part of the benchmark")
    parser.add_argument("--events", type=int, default=10_000, help="events delivered to one webhook (10000)")
    parser.add_argument("--per-destination", type=int, default=2_000,
                        help="events delivered to each of ten webhooks (2000)")
    parser.add_argument("--logs", type=int, default=100_000, help="logs in the store for the logs-page part (100000)")
    parser.add_argument("--fhir-rounds", type=int, default=5, help="timed rounds of each FHIR load, in turn (5)")
    parser.add_argument("--fhir-population", type=int, default=10_000,
                        help="patients of the emulator the FHIR search latency is read on (10000)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_INSTALL, file=sys.stderr)
        return 2
    # SIGTERM/SIGHUP unwind like Ctrl-C does, so every child is stopped on the way out.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    from delivery import bench_delivery  # bench/ is on sys.path when run as a script

    report: Report | None = None
    fhir_report: Any = None
    try:
        with tempfile.TemporaryDirectory(prefix="redox-bench-") as tmp:
            work = Path(tmp)
            body_bytes = compact_body(work).stat().st_size
            if args.only in (None, "endpoint"):
                report = bench_endpoint(args, work)
            if args.only in (None, "fhir"):
                import fhir as fhir_bench  # bench/fhir.py: the FHIR API's read and search against bare

                fhir_report = fhir_bench.bench_fhir(args, work)
            deliveries = (bench_delivery(work, args.events, args.per_destination)
                          if args.only in (None, "delivery") else None)
    except BenchError as error:
        print(f"bench: FAILED: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    targets: list[tuple[str, str, str, bool]] = []
    figures: dict[str, Any] = {}
    if report is not None:
        report.settings = {"connections": args.connections, "threads": args.threads, "duration": args.duration,
                           "rounds": args.rounds,
                           "warmup": args.warmup, "requests": args.requests, "cpus": os.cpu_count(),
                           "body_bytes": body_bytes}
        print(render(report))
        targets += report.targets()
        figures["endpoint"] = to_json(report)
    if fhir_report is not None:
        print(fhir_report.render())
        targets += fhir_report.targets()
        figures["fhir"] = fhir_report.to_json()
    if deliveries is not None:
        print(deliveries.render())
        targets += deliveries.targets()
        figures["delivery"] = {**asdict(deliveries), "one_rate": deliveries.one_rate,
                               "ten_rate": deliveries.ten_rate}
    if args.only in (None, "validation"):
        validation = validation_bench.measure()
        print(validation_bench.render(validation))
        targets.append(("contract validation, typical PatientAdmin", f"{validation['typical_us']:.1f} us",
                        f"< {validation_bench.TARGET_US:.0f} us", validation["met"]))
        figures["validation"] = validation
    if args.only in (None, "scenarios"):
        import scenario_matching  # bench/scenario_matching.py: the scenario engine's cost, in process

        matching = scenario_matching.measure()
        print("\n" + scenario_matching.render(matching))
        targets += scenario_matching.targets(matching)
        figures["scenario_matching_us"] = matching
    if args.only in (None, "logs"):
        import logs_page  # bench/logs_page.py: the logs list's first page with 100,000 logs stored

        try:
            logs = logs_page.measure(args.logs)
        except BenchError as error:
            print(f"bench: FAILED: {error}", file=sys.stderr)
            return 2
        print(logs_page.render(logs))
        targets += logs_page.targets(logs)
        figures["logs_page"] = logs
    if args.only in (None, "harness"):
        import harness as harness_bench  # bench/harness.py: what a fresh emulator costs

        fresh = harness_bench.measure()
        print("\n" + harness_bench.render(fresh))
        targets += harness_bench.targets(fresh)
        figures["harness"] = fresh
    if args.only in (None, "recording"):
        import recording as recording_bench  # bench/recording.py: what the recording proxy adds

        recorded = recording_bench.measure()
        print("\n" + recording_bench.render(recorded))
        targets += recording_bench.targets(recorded)
        figures["recording"] = recorded
    print(f"\n  {'target':38}{'value':>12}  {'goal':12}")
    for what, value, goal, met in targets:
        print(f"  {what:38}{value:>12}  {goal:12}{'PASS' if met else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    missed = not all(met for *_, met in targets)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
