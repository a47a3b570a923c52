"""The client's processes: each in its own process group (session), so stopping one stops its children too.

Every group started here is remembered until stopped; `stop_all()` (run at exit, and by the CLI on
Ctrl-C or SIGTERM) ends whatever is left, so no client process outlives the harness.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GRACE = 2.0  # seconds between SIGTERM and SIGKILL
_live: set[subprocess.Popen[bytes]] = set()
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int | None  # None: killed at the timeout
    output: str  # stdout and stderr, interleaved, for the report
    seconds: float


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start(command: str, *, env: Mapping[str, str], cwd: Path, output: Path,
          stdout_only: bool = False) -> subprocess.Popen[bytes]:
    """A shell command in a new session (its own process group), output appended to `output`
    (with `stdout_only`, stderr goes to `output` + ".err")."""
    with output.open("ab") as sink, output.with_suffix(output.suffix + ".err").open("ab") as errors:
        process = subprocess.Popen(command, shell=True, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                   stdout=sink, stderr=errors if stdout_only else subprocess.STDOUT,
                                   start_new_session=True)
    with _lock:
        _live.add(process)
    return process


def stop(process: subprocess.Popen[bytes], grace: float = GRACE) -> int | None:
    """SIGTERM to the whole group, SIGKILL after `grace`; the group's stragglers are killed as well."""
    try:
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(grace)
        _signal_group(process.pid, signal.SIGKILL)  # children that outlived their parent
        return process.returncode
    finally:
        with _lock:
            _live.discard(process)


def run(command: str, *, env: Mapping[str, str], cwd: Path, output: Path, timeout: float,
        stdout_only: bool = False) -> Finished:
    """Run to completion, or stop its group at `timeout` (returncode None)."""
    started = time.monotonic()
    process = start(command, env=env, cwd=cwd, output=output, stdout_only=stdout_only)
    try:
        code: int | None = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        stop(process)
    return Finished(code, output.read_text(errors="replace") if output.exists() else "", time.monotonic() - started)


def stop_all() -> None:
    with _lock:
        left = list(_live)
    for process in left:
        stop(process, grace=0.5)


def live() -> int:
    with _lock:
        return len(_live)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # start_new_session: the group's ID is the leader's PID


atexit.register(stop_all)
