"""What `redox-emulator record` adds to a request: p50 through the recorder minus p50 of its upstream.

    .venv/bin/python bench/recording.py   (also run, and printed, by `make bench`)

Two processes, an upstream (`serve`) and a recorder in front of it (`record --upstream`), both on
`:memory:` stores; one keep-alive client sends POST /endpoint (bench/new_patient.json) one at a time,
in alternating blocks straight to the upstream and through the recorder, so both are measured in the
same run under the same machine weather. Target: the recorder adds at most 2 ms at p50.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
TARGET_MS = 2.0
ROUNDS, PER_ROUND, WARMUP = 10, 200, 300


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "emulator", *args, "--port", str(port), "--db", ":memory:",
                                 "--log-level", "warning"], stdout=sink, stderr=subprocess.STDOUT, cwd=log.parent)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/__emulator/health").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{args[0]} did not start: {log.read_text()}")


def _times(client: httpx.Client, url: str, body: bytes, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.post(url, content=body)
        out.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
    return out


def measure() -> dict[str, Any]:
    body = (BENCH / "new_patient.json").read_bytes()
    with tempfile.TemporaryDirectory(prefix="redox-bench-record-") as tmp:
        work = Path(tmp)
        upstream, up = _start(["serve"], work / "upstream.log")
        recorder, rec = None, ""
        try:
            recorder, rec = _start(["record", "--upstream", up, "--out", str(work / "recorded.yaml")],
                                   work / "recorder.log")
            token = httpx.post(f"{up}/v2/auth/token", data={
                "grant_type": "client_credentials", "client_id": "sandbox-client",
                "client_secret": "sandbox-client-secret"}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            with httpx.Client(headers=headers) as direct, httpx.Client(headers=headers) as proxied:
                _times(direct, f"{up}/endpoint", body, WARMUP)
                _times(proxied, f"{rec}/endpoint", body, WARMUP)
                plain: list[float] = []
                through: list[float] = []
                for _ in range(ROUNDS):
                    plain += _times(direct, f"{up}/endpoint", body, PER_ROUND)
                    through += _times(proxied, f"{rec}/endpoint", body, PER_ROUND)
        finally:
            for proc in (recorder, upstream):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)
    upstream_p50, recorded_p50 = statistics.median(plain), statistics.median(through)
    return {"upstream_p50_ms": upstream_p50, "recorded_p50_ms": recorded_p50,
            "added_p50_ms": recorded_p50 - upstream_p50, "requests": len(plain) + len(through)}


def render(f: dict[str, Any]) -> str:
    return (f"recording proxy: p50 {f['recorded_p50_ms']:.2f} ms through the recorder, {f['upstream_p50_ms']:.2f} ms "
            f"straight to its upstream: +{f['added_p50_ms']:.2f} ms ({f['requests']} sequential POST /endpoint)")


def targets(f: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [("recording adds at p50", f"{f['added_p50_ms']:.2f} ms", f"<= {TARGET_MS:.0f} ms",
             f["added_p50_ms"] <= TARGET_MS)]


if __name__ == "__main__":
    figures = measure()
    print(render(figures))
    for what, value, goal, met in targets(figures):
        print(f"  {what:38}{value:>12}  {goal:12}{'PASS' if met else 'FAIL'}")
