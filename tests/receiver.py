"""A webhook receiver on a real socket: records every request, answers as the test scripts it.

    with Receiver() as hook:
        hook.script(500, 500)          # the next two deliveries get 500, then 200 again
        hook.hang(1)                   # the next request gets no answer until the caller gives up
        ... hook.deliveries() ...

Handshakes (a `challenge` in the query or the JSON body) are answered 200 with the challenge, unless
`echo_challenge` is False. Standard library only, so nothing of the emulator is on this side.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-case
    body: bytes
    status: int  # what the receiver answered (0: it hung)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def is_handshake(self) -> bool:
        if "challenge" in self.query:
            return True
        try:
            data = self.json()
        except ValueError:
            return False
        return isinstance(data, dict) and "challenge" in data and "Meta" not in data

    @property
    def log_id(self) -> str:
        return str(self.json()["Meta"]["Logs"][0]["ID"])

    @property
    def attempt_id(self) -> str:
        return str(self.json()["Meta"]["Logs"][0]["AttemptID"])


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.echo_challenge = True
        self.default_status = 200
        self._script: deque[int] = deque()
        self._hangs = 0
        self._lock = threading.Lock()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                receiver._handle(self)

            def do_POST(self) -> None:
                receiver._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/redox"

    def script(self, *statuses: int) -> None:
        """Answer the next deliveries (not handshakes) with these statuses, in order."""
        with self._lock:
            self._script.extend(statuses)

    def hang(self, count: int = 1) -> None:
        """Leave the next `count` deliveries unanswered (until `stop()` or 30 s)."""
        with self._lock:
            self._hangs += count

    def deliveries(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if not r.is_handshake]

    def handshakes(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.is_handshake]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The deliveries once there are at least `count` of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.deliveries()
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"expected {count} deliveries within {timeout} s, got {len(self.deliveries())}")

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        body = request.rfile.read(int(request.headers.get("content-length") or 0))
        got = Received(request.command, parts.path, parse_qs(parts.query),
                       {k.lower(): v for k, v in request.headers.items()}, body, 0)
        if got.is_handshake:
            challenge = got.query.get("challenge", [None])[0] or got.json().get("challenge")
            answer = str(challenge).encode() if self.echo_challenge else b"hello"
            status = 200
        else:
            with self._lock:
                hang = self._hangs > 0
                self._hangs -= hang
                status = self._script.popleft() if self._script else self.default_status
            if hang:
                with self._lock:
                    self.received.append(got)
                self._released.wait(30)
                return
            answer = b'{"ok":true}' if status < 400 else b'{"error":"scripted"}'
        got.status = status
        with self._lock:
            self.received.append(got)
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        request.wfile.write(answer)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
