"""The delivery client against raw sockets that answer in the ways real web servers do."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from emulator.delivery.http1 import KEEP_BYTES, Answer, Client

Reply = Callable[[socket.socket, bytes], None]


class RawServer:
    """Accepts connections; for each request read, calls `reply(conn, request_bytes)`."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook?x=1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                head, sep, rest = buffer.partition(b"\r\n\r\n")
                if sep:
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    if len(rest) >= length:
                        request, buffer = head + sep + rest[:length], rest[length:]
                        self.requests.append(request)
                        self.reply(conn, request)
                        continue
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data


@pytest.fixture
def serve() -> Iterator[Callable[[Reply], RawServer]]:
    servers: list[RawServer] = []

    def start(reply: Reply) -> RawServer:
        servers.append(RawServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.sock.close()


def call(url: str, calls: int = 1, timeout: float = 2.0, pause: float = 0.0) -> list[Answer]:
    async def run() -> list[Answer]:
        client = Client()
        answers = []
        try:
            for _ in range(calls):
                answers.append(await client.request("POST", url, {"Content-Type": "application/json"}, b'{"a":1}',
                                                    timeout))
                await asyncio.sleep(pause)
            return answers
        finally:
            client.close()
            await asyncio.sleep(0)

    return asyncio.run(run())


def test_keep_alive_reuses_one_connection(serve: Callable[[Reply], RawServer]) -> None:
    server = serve(lambda conn, _: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    answers = call(server.url, calls=3)
    assert [(a.status, a.body) for a in answers] == [(200, b"ok")] * 3
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 7\r\n" in first and first.endswith(b'\r\n\r\n{"a":1}')


def test_chunked_answers_are_read_whole(serve: Callable[[Reply], RawServer]) -> None:
    server = serve(lambda conn, _: conn.sendall(
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"))
    [answer] = call(server.url)
    assert (answer.status, answer.body, answer.ok) == (201, b"abcde", True)


def test_connection_close_opens_a_new_connection_next_time(serve: Callable[[Reply], RawServer]) -> None:
    def reply(conn: socket.socket, _: bytes) -> None:
        conn.sendall(b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        conn.shutdown(socket.SHUT_RDWR)

    server = serve(reply)
    answers = call(server.url, calls=2)
    assert [a.status for a in answers] == [503, 503] and not answers[0].ok
    assert server.connections == 2


def test_an_idle_connection_closed_by_the_server_is_replaced(serve: Callable[[Reply], RawServer]) -> None:
    served = []

    def reply(conn: socket.socket, _: bytes) -> None:
        served.append(1)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        # Keep-alive promised, then dropped while idle (as servers do after their keep-alive timeout).
        # At once, not on a timer: a timer thread late by the client's pause would drop the connection
        # under the next request instead.
        conn.shutdown(socket.SHUT_RDWR)

    server = serve(reply)
    answers = call(server.url, calls=3, pause=0.3)
    assert [a.status for a in answers] == [200, 200, 200]
    assert len(served) == 3


def test_a_long_answer_is_kept_only_in_part(serve: Callable[[Reply], RawServer]) -> None:
    size = KEEP_BYTES * 3
    server = serve(lambda conn, _: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
                                                + b"x" * size))
    answers = call(server.url, calls=2)
    assert [len(a.body) for a in answers] == [KEEP_BYTES, KEEP_BYTES]
    assert server.connections == 1  # the rest was read, so the connection stays usable


def test_garbage_is_a_readable_error(serve: Callable[[Reply], RawServer]) -> None:
    server = serve(lambda conn, _: conn.sendall(b"SMTP ready\r\n\r\n"))
    [answer] = call(server.url)
    assert answer.status == 0 and answer.error is not None and "malformed HTTP response" in answer.error


def test_silence_times_out(serve: Callable[[Reply], RawServer]) -> None:
    server = serve(lambda conn, _: None)
    [answer] = call(server.url, timeout=0.2)
    assert answer.status == 0 and answer.error == "no answer within 0.2 s (timed out)"


def test_refused_and_unresolvable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [refused] = call(f"http://127.0.0.1:{port}/")
    assert refused.error is not None and refused.error.startswith(f"could not connect to http://127.0.0.1:{port}/")
    [bad] = call("ftp://example/")
    assert bad.error == "not an http(s) URL: 'ftp://example/'"


def test_a_unicode_path_is_sent_percent_encoded(serve: Callable[[Reply], RawServer]) -> None:
    server = serve(lambda conn, _: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    url = server.url.replace("/hook?x=1", "/hooks/ünïcode-✓?x=1%20&y=a/b")
    [answer] = call(url)
    assert answer.status == 200
    assert server.requests[0].startswith(b"POST /hooks/%C3%BCn%C3%AFcode-%E2%9C%93?x=1%20&y=a/b HTTP/1.1\r\n")


def test_a_header_no_request_can_carry_is_a_failed_attempt_not_a_crash(serve: Callable[[Reply], RawServer]) -> None:
    server = serve(lambda conn, _: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))

    async def run() -> Answer:
        client = Client()
        try:
            return await client.request("POST", server.url, {"verification-token": "tök✓"}, b"{}", 2.0)
        finally:
            client.close()

    answer = asyncio.run(run())
    assert answer.status == 0 and "not allowed in a request head" in answer.error and server.requests == []
