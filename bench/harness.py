"""What a fresh emulator costs (bench/run.py --only harness): cold start to first answer, memory, reset.

Measured in a child process of its own, so that nothing the benchmark itself loaded counts:
the first emulator of a process (it reads the EHR's population, from the disk cache when an
earlier process built it, then shared by every later sandbox of the process), a later one (what
the harness and the pytest plugin pay per scenario or worker), the resident memory with one
running, and `Sandbox.reset()`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

TARGET_START_MS, TARGET_RSS_MB, TARGET_RESET_MS = 300.0, 60.0, 5.0

_CHILD = r"""
import json, statistics, time, urllib.request
import psutil
t0 = time.perf_counter()
from emulator.server import Server
from emulator.settings import Settings
imported = time.perf_counter() - t0

def fresh():
    started = time.perf_counter()
    server = Server(Settings(db=":memory:", port=0, log_level="warning"), long_lived=False).start()
    urllib.request.urlopen(server.url + "/__emulator/health").read()
    return server, (time.perf_counter() - started) * 1000

first, first_ms = fresh()
rss = psutil.Process().memory_info().rss / 1e6
later = []
for _ in range(5):
    server, ms = fresh()
    later.append(ms)
    server.stop()
resets = []
for _ in range(50):
    started = time.perf_counter()
    first.sandbox.reset()
    resets.append((time.perf_counter() - started) * 1000)
first.stop()
print(json.dumps({"import_ms": imported * 1000, "first_start_ms": first_ms, "start_ms": statistics.median(later),
                  "rss_mb": rss, "reset_ms": statistics.median(resets)}))
"""


def measure() -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True).stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def render(f: dict[str, Any]) -> str:
    return (f"fresh emulator (in process, :memory: store): start to first answer {f['start_ms']:.0f} ms "
            f"(first of a process {f['first_start_ms']:.0f} ms, after {f['import_ms']:.0f} ms of imports); "
            f"resident {f['rss_mb']:.0f} MB with one running; reset {f['reset_ms']:.2f} ms")


def targets(f: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [
        ("fresh emulator, start to first answer", f"{f['start_ms']:.0f} ms", f"< {TARGET_START_MS:.0f} ms",
         f["start_ms"] < TARGET_START_MS),
        ("fresh emulator, resident memory", f"{f['rss_mb']:.0f} MB", f"< {TARGET_RSS_MB:.0f} MB",
         f["rss_mb"] < TARGET_RSS_MB),
        ("reset between tests", f"{f['reset_ms']:.2f} ms", f"< {TARGET_RESET_MS:.0f} ms",
         f["reset_ms"] < TARGET_RESET_MS),
    ]


if __name__ == "__main__":
    print(render(measure()))
