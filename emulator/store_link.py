"""The log store's link to its writer process: frames out, acknowledgements back, and supervision.

Durable acknowledgement with group commit (see ARCHITECTURE.md, "The ack path"):
- `put()` adds a marshalled item to the open frame and returns that frame's number. The first item
  of a frame schedules its cut: on the caller's event loop, at the loop's next turn (so everything
  queued in one tick is one frame, of at most FRAME_ITEMS items); from a thread with no loop, at once.
- `_cut()` sends the frame to the writer at once, whatever is in flight: nobody waits for the previous
  acknowledgement. The writer commits every frame waiting on its stdin in one transaction and answers
  `ack N`; every waiter up to frame N is then settled (`committed()`, `wait()`).
- Who reads the acknowledgements: the server's event loop once `attach()`ed, in its own poll, so the
  answers waiting there are settled with no thread to wake and no GIL to hand over (on a loaded
  machine each of those costs a scheduling delay); otherwise a thread. The thread stays either way:
  it supervises the writer, and reads when no loop does.
- Frames are kept until acknowledged. When the writer dies (its stdout ends), the thread logs it,
  starts a new writer and resends them in order; the writer's writes are idempotent, so a frame
  committed just before the crash changes nothing twice. While no writer runs, `available` is False
  and `problem` says why; waiters get False once it has been down for `UNAVAILABLE_AFTER` seconds.

Thread-safe: any thread may put; loops of several threads may wait.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import heapq
import itertools
import logging
import marshal
import os
import select
import subprocess
import sys
import threading
import time
from typing import IO

from emulator import store_writer
from emulator.errors import LoadError

log = logging.getLogger(__name__)

UNAVAILABLE_AFTER = 5.0  # seconds without a writer before requests waiting on it are answered 503
CLOSE_PATIENCE = 30.0  # seconds a closing store waits for a restarting writer before giving up on its frames
PIPE_SIZE = 1 << 20  # the writer's stdin: room for a commit's worth of frames before a sender blocks
# Items after which a frame is cut at once rather than at the loop's next turn. Requests that arrive
# together are handled in one turn; as one frame they would be acknowledged together, their clients
# would come back together, and the loop would idle while the writer commits (a convoy). Cut smaller,
# the writer commits the first while the loop handles the rest.
FRAME_ITEMS = 8
_HEADER = store_writer.FRAME_HEADER

Waiter = tuple[int, int, asyncio.AbstractEventLoop, "asyncio.Future[bool]"]


class WriterLink:
    def __init__(self, file: str, sync: str = "normal") -> None:
        self.file, self.sync = file, sync
        self._process = self._spawn()  # LoadError when the file cannot be opened: nothing started
        self._items_lock = threading.Lock()  # guards _open, _frame, _closed
        self._open: list[bytes] = []  # items of the frame being filled
        self._frame = 1  # its number
        self._cutting: tuple[int, asyncio.AbstractEventLoop | None] = (0, None)  # a frame and the loop its cut is on
        self._closed = False
        # Frames leave whole and in number order; guards the pipe, `available` and `_closing`.
        self._send_lock = threading.Lock()
        # (number, header, body) sent or waiting to be, not yet acknowledged: appended under _send_lock,
        # dropped from the left by whoever reads acknowledgements (under _read_lock).
        self._unacked: collections.deque[tuple[int, bytes, bytes]] = collections.deque()
        self._ack = threading.Condition(threading.Lock())  # guards _acked, _waiters, _skipped
        self._acked = 0
        self._waiters: list[Waiter] = []  # a heap by frame number
        self._skipped: dict[int, str] = {}  # frames the writer could not store, and why
        self._tickets = itertools.count()
        self.available = True
        self.problem: str | None = None
        self._down_since = 0.0
        self._closing = False
        self._read_lock = threading.Lock()  # one reader of the writer's output at a time; guards _line, _ended
        self._line = b""  # the start of a line not yet whole
        self._ended = False  # the current writer's output has ended
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop reading acknowledgements, if any
        self._loop_thread = 0
        self._wake_r, self._wake_w = os.pipe()  # tells the supervising thread that who reads has changed
        os.set_blocking(self._wake_w, False)  # never holds the loop: a full pipe has said it already
        self._supervisor = self._supervise_in_thread(self._process)

    @property
    def pid(self) -> int:
        """The writer process's ID (it changes when the writer is restarted)."""
        return self._process.pid

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-I", store_writer.__file__, self.file, self.sync],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True)
        assert process.stdin is not None and process.stdout is not None
        greeting = process.stdout.readline()
        if greeting != b"ready\n":
            process.communicate()
            why = greeting.removeprefix(b"error ").decode(errors="replace").strip()
            raise LoadError(f"log store: {why or f'the writer could not open {self.file}'}")
        os.set_blocking(process.stdout.fileno(), False)
        with contextlib.suppress(OSError, AttributeError):  # Linux only; the default 64 KB works too
            fcntl.fcntl(process.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        return process

    def _supervise_in_thread(self, process: subprocess.Popen[bytes]) -> threading.Thread:
        thread = threading.Thread(target=self._supervise, args=(process,), name=f"log-store-{process.pid}",
                                  daemon=True)
        thread.start()
        return thread

    # ---- frames out (any thread) ------------------------------------------------------------------
    def put(self, item: bytes) -> int:
        """Queue a marshalled item; returns the number of the frame that carries it (0: the store is closed)."""
        with self._items_lock:
            if self._closed:
                return 0
            self._open.append(item)
            n = self._frame
            size = len(self._open)
        if size >= FRAME_ITEMS:
            self._cut(n)
            return n
        if size > 1:
            return n  # the frame's first item has already scheduled its cut
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._cut(n)
        else:
            self._cutting = (n, loop)
            loop.call_soon(self._cut, n)
        return n

    def mark(self) -> int:
        """The number of the last frame holding anything put so far (0: nothing)."""
        with self._items_lock:
            return self._frame if self._open else self._frame - 1

    def cut_now(self) -> int:
        """Send the open frame now; returns `mark()`."""
        with self._items_lock:
            n, pending = self._frame, bool(self._open)
        if pending:
            self._cut(n)
            return n
        return n - 1

    def _cut(self, n: int) -> None:
        with self._send_lock:
            with self._items_lock:
                if self._frame != n or not self._open:
                    return  # already cut (a flush took it)
                items, self._open = self._open, []
                self._frame = n + 1
            body = marshal.dumps(items)
            header = _HEADER.pack(len(body), n)
            self._unacked.append((n, header, body))
            if self.available:
                self._write(header, body)

    def _write(self, *parts: bytes) -> bool:
        """Write a frame whole (under _send_lock); False, and the writer marked gone, when the pipe is broken."""
        assert self._process.stdin is not None
        fd = self._process.stdin.fileno()
        views = [memoryview(p) for p in parts]
        try:
            while views:
                written = os.writev(fd, views)
                while views and written >= len(views[0]):
                    written -= len(views[0])
                    views.pop(0)
                if views:
                    views[0] = views[0][written:]
        except OSError as exc:  # BrokenPipeError: the writer's output ends too, and the supervisor restarts it
            self._mark_down(f"the log store writer stopped taking frames ({exc.strerror or exc})")
            return False
        return True

    def _mark_down(self, why: str) -> None:
        if self.available:
            self.available = False
            self._down_since = time.monotonic()
        self.problem = why

    # ---- acknowledgements back ------------------------------------------------------------------
    def _pump(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Read what the writer said and act on it (the caller is on `loop`'s thread, or on none);
        returns True once its output has ended."""
        with self._read_lock:
            if self._ended:
                return True
            assert self._process.stdout is not None
            fd = self._process.stdout.fileno()
            chunks = []
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    chunk = b""
                if not chunk:
                    self._ended = True
                    break
                chunks.append(chunk)
                if len(chunk) < 65536:
                    break
            if not chunks:
                return self._ended
            complete, _, self._line = (self._line + b"".join(chunks)).rpartition(b"\n")
            top = 0
            for line in complete.split(b"\n"):
                if line.startswith(b"ack "):
                    top = max(top, int(line[4:]))
                elif line.startswith(b"skip "):
                    self._skip(line)
            if top:
                self._acknowledged(top, loop)
            return self._ended

    def _skip(self, line: bytes) -> None:
        number, _, why = line[5:].partition(b" ")
        reason = why.decode(errors="replace").strip()
        with self._ack:
            self._skipped[int(number)] = reason
            while len(self._skipped) > 10_000:
                del self._skipped[next(iter(self._skipped))]
        log.error("the log store could not store frame %s: %s; its requests are answered 503",
                  number.decode(), reason)

    def _acknowledged(self, n: int, loop: asyncio.AbstractEventLoop | None) -> None:
        """Frames up to `n` are committed (under _read_lock). Waiters on `loop`, the caller's, are settled
        here and now; others through their own loops."""
        due: list[Waiter] = []
        with self._ack:
            self._acked = max(self._acked, n)
            while self._waiters and self._waiters[0][0] <= n:
                due.append(heapq.heappop(self._waiters))
            results = [(w, w[0] not in self._skipped) for w in due]
            self._ack.notify_all()
        unacked = self._unacked
        while unacked and unacked[0][0] <= n:
            unacked.popleft()
        if results:
            _settle_all(results, loop)

    # ---- who reads: the attached loop, or the supervising thread ------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read acknowledgements in `loop`'s poll from now on (call on its thread: a server's start-up)."""
        self.detach()
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._watch()
        self._wake()

    def detach(self) -> None:
        """Hand the reading back to the thread (call on the attached loop's thread, before it stops)."""
        loop = self._loop
        if loop is None:
            return
        assert self._process.stdout is not None
        with contextlib.suppress(Exception):  # the loop is closed already
            loop.remove_reader(self._process.stdout.fileno())
        self._loop, self._loop_thread = None, 0
        self._wake()

    def _watch(self) -> None:
        """Watch the current writer's output on the attached loop (on its thread)."""
        loop = self._loop
        if loop is not None and not self._ended:
            assert self._process.stdout is not None
            loop.add_reader(self._process.stdout.fileno(), self._readable, loop)

    @staticmethod
    def _forget(loop: asyncio.AbstractEventLoop, out: IO[bytes]) -> None:
        with contextlib.suppress(Exception):
            loop.remove_reader(out.fileno())
        out.close()

    def _readable(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pump(loop):  # the writer is gone: the thread takes it from here
            assert self._process.stdout is not None
            loop.remove_reader(self._process.stdout.fileno())
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def _supervise(self, process: subprocess.Popen[bytes]) -> None:
        """Read the writer's output while no loop does; when it ends, restart the writer."""
        assert process.stdout is not None
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        out = process.stdout.fileno()
        reading = False
        while not self._ended:
            if (self._loop is None) != reading:  # who reads has changed
                reading = not reading
                if reading:
                    poller.register(out, select.POLLIN)
                else:
                    poller.unregister(out)
            for fd, _ in poller.poll():
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                elif self._pump():
                    break
        code = process.wait()
        if self._closing:
            return
        self._restart(code)

    def _restart(self, code: int) -> None:
        with self._send_lock:
            self._mark_down(f"the log store writer exited ({_exit_text(code)}); restarting it")
        log.error("the log store writer exited (%s); restarting it, %d frames to resend", _exit_text(code),
                  len(self._unacked))
        delay = 0.05
        while True:
            if self._closing:
                return
            try:
                process = self._spawn()
                break
            except (LoadError, OSError) as exc:
                self.problem = f"the log store writer exited and cannot be restarted: {exc}"
                log.error("%s; trying again in %.2f s", self.problem, delay)
            if time.monotonic() - self._down_since > UNAVAILABLE_AFTER:
                self._fail_waiters()
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        with self._send_lock:
            old = self._process
            assert old.stdin is not None and old.stdout is not None
            with contextlib.suppress(OSError):
                old.stdin.close()
            if self._closing:  # stopped while the new writer started: it ends with no frames
                assert process.stdin is not None and process.stdout is not None
                process.stdin.close()
                process.wait()
                process.stdout.close()
                return
            with self._read_lock:
                self._process, self._line, self._ended = process, b"", False
            loop = self._loop
            try:
                if loop is None:
                    raise RuntimeError
                # On the loop's thread: the old output unwatched before it is closed, then the new one watched.
                loop.call_soon_threadsafe(self._forget, loop, old.stdout)
                loop.call_soon_threadsafe(self._watch)
            except RuntimeError:  # no loop (or a closed one) watches: the thread reads
                old.stdout.close()
            self._supervisor = self._supervise_in_thread(process)
            resent = list(self._unacked)  # some may be acknowledged meanwhile: resent anyway, idempotent
            ok = all(self._write(header, body) for _, header, body in resent)
            if ok:
                self.available, self.problem = True, None
        if ok:
            log.warning("the log store writer is back (pid %d); %d frames resent", process.pid, len(resent))

    def _fail_waiters(self) -> None:
        """The writer has been gone too long: everyone waiting is told no (their requests get 503)."""
        with self._ack:
            due, self._waiters = self._waiters, []
        _settle_all([(w, False) for w in due])

    # ---- waiting ----------------------------------------------------------------------------------
    def down_too_long(self) -> bool:
        return not self.available and time.monotonic() - self._down_since > UNAVAILABLE_AFTER

    async def committed(self, n: int) -> bool:
        """Wait, on the event loop, until frame `n` is committed: True; False when it could not be
        (the writer skipped it, or was gone longer than UNAVAILABLE_AFTER)."""
        with self._ack:
            if self._acked >= n:
                return n not in self._skipped
            if self.down_too_long():
                return False
            loop = asyncio.get_running_loop()
            future: asyncio.Future[bool] = loop.create_future()
            heapq.heappush(self._waiters, (n, next(self._tickets), loop, future))
        # The frame's cut was scheduled on the loop of its first item, which may have closed since (a
        # test client's loop per request): another loop cuts it too, at the end of its turn. On the server
        # every request's frame was scheduled here already: no second callback per request.
        if self._cutting != (n, loop):
            loop.call_soon(self._cut, n)
        return await future

    def wait(self, n: int, timeout: float | None) -> bool:
        """Block until frame `n` is committed (True), the timeout passes or no writer is running (False).

        On the attached loop's own thread (a read on the loop) it reads the acknowledgements itself: the
        loop cannot while it is held here."""
        if self._loop is not None and threading.get_ident() == self._loop_thread:
            assert self._process.stdout is not None
            deadline = None if timeout is None else time.monotonic() + timeout
            poller = select.poll()
            poller.register(self._process.stdout.fileno(), select.POLLIN)
            while self._acked < n and self.available:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                poller.poll(None if left is None else max(1, int(left * 1000)))
                if self._pump(self._loop):  # the writer is gone: the thread restarts it
                    with contextlib.suppress(Exception):
                        self._loop.remove_reader(self._process.stdout.fileno())
                    self._wake()
                    return False
            return self._acked >= n
        with self._ack:
            return self._ack.wait_for(lambda: self._acked >= n or not self.available, timeout) and self._acked >= n

    def close(self) -> None:
        """Commit everything put so far (however long the backlog takes: nothing answered may be lost), then
        stop the writer. A writer that stays gone is waited for CLOSE_PATIENCE seconds, then given up."""
        self.detach()  # nothing else reads now: the thread does
        n = self.cut_now()
        with self._ack:
            while self._acked < n:
                if not self.available and time.monotonic() - self._down_since > CLOSE_PATIENCE:
                    log.error("the log store writer did not come back: frames %d to %d are not stored",
                              self._acked + 1, n)
                    break
                self._ack.wait(0.5)
        with self._items_lock:
            self._closed = True
        with self._send_lock:
            self._closing = True
            process, supervisor = self._process, self._supervisor
            assert process.stdin is not None and process.stdout is not None
            with contextlib.suppress(OSError):
                process.stdin.close()  # end of input: the writer commits and exits
        supervisor.join()
        process.wait()
        process.stdout.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _settle_all(results: list[tuple[Waiter, bool]], here: asyncio.AbstractEventLoop | None = None) -> None:
    """Resolve waiters' futures, each on its own loop: one call per loop; at once for `here`, the loop
    this runs on."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool]]] = {}
    for (_, _, loop, future), ok in results:
        by_loop.setdefault(loop, []).append((future, ok))
    for loop, items in by_loop.items():
        if loop is here:
            _settle(items)
            continue
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[bool], bool]]) -> None:
    for future, ok in items:
        if not future.done():  # a cancelled request
            future.set_result(ok)


def _exit_text(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
