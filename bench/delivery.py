"""`make bench`, delivery part: events/s the emulator delivers to webhooks that answer 200 at once.

The receiver is the bare Starlette app (its own process, fixed 200 answer). The emulator runs as
users run it (`redox-emulator serve` on a SQLite file) with ten webhook destinations. Each phase
queues the events with the destinations paused (`POST /__emulator/push`), then resumes them and
times until every queue is empty: delivery alone, each message recorded (attempt, status, dequeue).

    .venv/bin/python bench/delivery.py [--events 10000] [--per-destination 2000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import run as common

TARGET_ONE = 2000.0  # events/s to one destination, at least
TARGET_TEN = 2000.0  # events/s to ten destinations together, at least
DESTINATIONS = [f"bench-{i}" for i in range(10)]


@dataclass
class DeliveryReport:
    one_events: int
    one_seconds: float
    one_cpu: float  # CPU seconds of the emulator and its store writer while delivering
    ten_events: int
    ten_seconds: float
    ten_cpu: float
    delivered_logs: int

    @property
    def one_rate(self) -> float:
        return self.one_events / self.one_seconds

    @property
    def ten_rate(self) -> float:
        return self.ten_events / self.ten_seconds

    def targets(self) -> list[tuple[str, str, str, bool]]:
        return [
            ("delivery to one destination", f"{self.one_rate:,.0f}/s", f">= {TARGET_ONE:,.0f}/s",
             self.one_rate >= TARGET_ONE),
            ("delivery to ten destinations", f"{self.ten_rate:,.0f}/s", f">= {TARGET_TEN:,.0f}/s",
             self.ten_rate >= TARGET_TEN),
        ]

    def render(self) -> str:
        return "\n".join([
            "",
            "Delivery to webhooks answering 200 at once (bare Starlette receiver, own process):",
            f"  one destination:  {self.one_events:,} events in {self.one_seconds:.2f} s = {self.one_rate:,.0f}/s"
            f"  (emulator + store writer CPU {self.one_cpu / self.one_events * 1e6:,.0f} us/event)",
            f"  ten destinations: {self.ten_events:,} events in {self.ten_seconds:.2f} s = {self.ten_rate:,.0f}/s "
            f"({self.ten_rate / self.one_rate:.2f}x one; CPU {self.ten_cpu / self.ten_events * 1e6:,.0f} us/event)",
            f"  store afterwards: {self.delivered_logs:,} RECEIVE logs SUCCEEDED "
            f"(of {self.one_events + self.ten_events:,} pushed)",
        ])


def control(base: str, method: str, path: str, body: object = None, timeout: float = 300.0) -> dict[str, object]:
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/__emulator{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer: dict[str, object] = json.load(response)["payload"]
        return answer


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the emulator and its store writer)."""
    process = psutil.Process(pid)
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        times = p.cpu_times()
        total += times.user + times.system
    return total


def timed_drain(base: str, destinations: list[str], events: int, payload: dict[str, object],
                pid: int) -> tuple[float, float]:
    """Queue `events` for each destination while paused, resume, and time until all are delivered.

    Returns (seconds, CPU seconds of the emulator process tree meanwhile).
    """
    for d in destinations:
        control(base, "POST", f"/destinations/{d}/queue/pause")
    for d in destinations:
        control(base, "POST", "/push", {"DataModel": "PatientAdmin", "EventType": "NewPatient", "count": events,
                                        "payload": payload, "destinations": [d]})
    started, cpu = time.monotonic(), cpu_seconds(pid)
    for d in destinations:
        control(base, "POST", f"/destinations/{d}/queue/resume")
    while True:
        listed = control(base, "GET", "/destinations")["destinations"]
        assert isinstance(listed, list)
        pending = sum(d["queue"]["pending"] for d in listed if d["id"] in destinations)
        if pending == 0:
            return time.monotonic() - started, cpu_seconds(pid) - cpu
        if time.monotonic() - started > 600:
            raise common.BenchError(f"delivery stalled with {pending} events pending")
        time.sleep(0.02)


def bench_delivery(work: Path, events: int, per_destination: int) -> DeliveryReport:
    receiver_port, port = common.free_port(), common.free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}/endpoint"
    config = work / "delivery.yaml"
    config.write_text(json.dumps({"destinations": [{"id": d, "name": d, "url": receiver_url}
                                                   for d in DESTINATIONS]}))  # JSON is YAML
    db = work / "delivery.db"
    payload = json.loads(common.BODY_FILE.read_bytes())
    receiver_cmd = [sys.executable, str(common.BENCH / "bare_app.py"), "--port", str(receiver_port)]
    with common.child(receiver_cmd, work / "receiver.log") as receiver:
        common.wait_until_up(receiver_url, receiver, work / "receiver.log", method="POST")
        base = f"http://127.0.0.1:{port}"
        with common.child([*common.emulator_command(port, db), "--config", str(config)], work / "delivery.log",
                          common.EMULATOR_ENV) as emulator:
            common.wait_until_up(f"{base}/__emulator/health", emulator, work / "delivery.log")
            common.say(f"delivery: {events:,} events to one destination, then {per_destination:,} to each of ten")
            timed_drain(base, DESTINATIONS[:1], min(events, 500), payload, emulator.pid)  # warm-up
            one = timed_drain(base, DESTINATIONS[:1], events, payload, emulator.pid)
            ten = timed_drain(base, DESTINATIONS, per_destination, payload, emulator.pid)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        delivered = int(conn.execute("SELECT COUNT(*) FROM logs WHERE type = 'RECEIVE' AND status = 'SUCCEEDED'")
                        .fetchone()[0])
    return DeliveryReport(events, *one, per_destination * len(DESTINATIONS), *ten, delivered - min(events, 500))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--per-destination", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="redox-bench-") as tmp:
        report = bench_delivery(Path(tmp), args.events, args.per_destination)
    print(report.render())
    for what, value, goal, met in report.targets():
        print(f"  {what:38}{value:>12}  {goal:12}{'PASS' if met else 'FAIL'}")
    return 0  # `make bench` (run.py) runs this part too, with the rest


if __name__ == "__main__":
    sys.exit(main())
