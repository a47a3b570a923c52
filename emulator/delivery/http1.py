"""A small HTTP/1.1 client for deliveries: keep-alive connections, responses parsed by httptools.

Why not aiohttp or httpx: a destination's queue is strictly sequential, so the client's cost per
request bounds a destination's throughput. Measured here against a local receiver, aiohttp spent
about 240 us of CPU per request and httpx more; this client spends about 20 us. It needs only what
Redox's deliveries need: one request at a time per connection, a body sent with Content-Length, any
response framing (httptools, the parser uvicorn uses, handles Content-Length, chunked and close),
http and https, a timeout, no redirects, no cookies.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from emulator import __version__

KEEP_BYTES = 64 * 1024  # of a destination's answer, for the logs
USER_AGENT = f"redox-emulator/{__version__}"
_URL_SAFE = "/?#[]@!$&'()*+,;=:%~-._"  # RFC 3986's reserved and unreserved characters, and '%' itself


@dataclass(slots=True)
class Answer:
    """What came back from one call: a status (0 when nothing did) and the body, or why not."""

    status: int
    body: bytes
    error: str | None
    latency_ms: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.body: list[bytes] = []
        self.kept = 0
        self.got_bytes = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ValueError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError("the destination closed the connection before answering"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if self.kept < KEEP_BYTES:
            part = body[:KEEP_BYTES - self.kept]
            self.body.append(part)
            self.kept += len(part)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), b"".join(self.body),
                                    self.parser.should_keep_alive()))

    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.body, self.kept, self.got_bytes = [], 0, False
        self.transport.write(data)
        return self.waiter

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Client:
    """Idle keep-alive connections per origin, reused by whichever lane calls next."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes,
                      timeout: float) -> Answer:
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self._request(method, url, headers, body, started), timeout)
        except TimeoutError:
            return Answer(0, b"", f"no answer within {timeout:g} s (timed out)", _since(started))

    async def _request(self, method: str, url: str, headers: dict[str, str], body: bytes,
                       started: float) -> Answer:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return Answer(0, b"", f"not an http(s) URL: {url!r}", 0.0)
        origin = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        # A URL may hold characters HTTP/1.1 cannot carry raw (a path in Unicode): sent percent-encoded,
        # as browsers and httpx do; what is already percent-encoded stays as it is.
        target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_URL_SAFE)
        host = parts.netloc.rpartition("@")[2]
        head = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}",
                f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        try:
            request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        except UnicodeEncodeError as error:  # a header value no HTTP/1.1 request can carry
            return Answer(0, b"", f"cannot be sent: {error.object[error.start:error.end]!r} is not allowed in a "
                                  f"request head", 0.0)
        for fresh in (False, True):  # an idle connection the server closed meanwhile: once more, on a new one
            connection = None if fresh else self._checkout(origin)
            reused = connection is not None
            try:
                if connection is None:
                    connection = await self._connect(origin)
                status, answer, keep_alive = await _guarded(connection, request)
            except (ConnectionResetError, BrokenPipeError) as exc:
                if reused and connection is not None and not connection.got_bytes:
                    continue
                return Answer(0, b"", f"connection to {url} lost: {exc}", _since(started))
            except OSError as exc:
                return Answer(0, b"", f"could not connect to {url}: {exc.strerror or exc}", _since(started))
            except ValueError as exc:
                return Answer(0, b"", str(exc), _since(started))
            if keep_alive and not connection.closed:
                self._idle.setdefault(origin, []).append(connection)
            else:
                connection.close()
            return Answer(status, answer, None, _since(started))
        raise AssertionError("unreachable")  # pragma: no cover

    def _checkout(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            self._tls = self._tls or ssl.create_default_context()
            tls = self._tls
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, host, port, ssl=tls, server_hostname=host if tls else None)
        return connection

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


async def _guarded(connection: _Connection, request: bytes) -> tuple[int, bytes, bool]:
    """Send and wait; a cancelled wait (the timeout) closes the connection, whose answer is now unwanted."""
    try:
        return await connection.send(request)
    except BaseException:
        connection.close()
        raise


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
