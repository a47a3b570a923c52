"""Find flaky tests on purpose: the whole suite N times under `-n auto`, then what failed in which runs.

    python tests/repeat.py 10 [pytest args...]      (`make test-repeat N=10`)

Each run's output goes to test-artifacts/repeat/run-K.log. At the end this prints how many runs
passed and each test that failed in any run with how many runs it failed in; the exit status is 1
when any run failed. Failed test IDs are recorded by this module loaded as a pytest plugin in the
controller (`-p tests.repeat`), so nothing is parsed out of the terminal output.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "test-artifacts" / "repeat"


# ---- the plugin: in each run, the IDs of the tests that failed (in a call, a setup or a teardown) --------
def pytest_addoption(parser: Any) -> None:
    parser.addoption("--record-failures", default=None, help="write the IDs of failed tests to this file")


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed:
        _failed.append(report.nodeid)


def pytest_sessionfinish(session: Any) -> None:
    path = session.config.getoption("--record-failures")
    if path and not hasattr(session.config, "workerinput"):  # the xdist controller, which sees every report
        Path(path).write_text("".join(f"{nodeid}\n" for nodeid in dict.fromkeys(_failed)))


_failed: list[str] = []


# ---- the runner ---------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    if not argv or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python tests/repeat.py N [pytest args...]", file=sys.stderr)
        return 2
    runs, extra = int(argv[0]), argv[1:]
    LOGS.mkdir(parents=True, exist_ok=True)
    failures: collections.Counter[str] = collections.Counter()
    passed = 0
    for k in range(1, runs + 1):
        log, record = LOGS / f"run-{k}.log", LOGS / f"run-{k}.failed"
        record.unlink(missing_ok=True)
        started = time.monotonic()
        with log.open("w") as sink:
            code = subprocess.call([sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "tests.repeat",
                                    "--record-failures", str(record), *extra],
                                   cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        failed = record.read_text().split() if record.exists() else []
        failures.update(failed)
        seconds = time.monotonic() - started
        if code == 0:
            passed += 1
            print(f"run {k}/{runs}: passed ({seconds:.0f} s)", flush=True)
        else:
            what = f"{len(failed)} failed" if failed else f"pytest exited {code}"
            print(f"run {k}/{runs}: FAILED, {what} ({seconds:.0f} s; {log.relative_to(ROOT)})", flush=True)
    print(f"\n{passed} of {runs} runs passed")
    if failures:
        print("failed in some run (runs failed in, test):")
        for nodeid, count in failures.most_common():
            print(f"  {count:3}  {nodeid}")
    return 0 if passed == runs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
