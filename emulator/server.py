"""A running emulator: uvicorn on a real socket, in this thread (`serve`) or a background one (`Server`).

    with Server(Settings(db=":memory:", port=0)) as server:   # port 0: a free port
        httpx.post(server.url + "/auth/authenticate", ...)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette

from emulator.sandbox import Sandbox
from emulator.settings import Settings
from emulator.web.app import create_app

if TYPE_CHECKING:
    from emulator.web.record_routes import RecordRoom

log = logging.getLogger(__name__)


def _config(settings: Settings, sandbox: Sandbox, sock_port: int, *, long_lived: bool = True,
            recording: RecordRoom | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(sandbox=sandbox, freeze_heap=long_lived, recording=recording), host=settings.host, port=sock_port,
        log_config=None,
        log_level=settings.log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=5,
        server_header=False,
        ws="none",  # no WebSocket routes: spares importing websockets in every emulator's process
        proxy_headers=False,  # the rate limit and the journal see the real peer, never X-Forwarded-For
    )


def _tell_streams(server: uvicorn.Server) -> None:
    """Let open streams (the logs' live view) end when the server is stopping, rather than hold
    its graceful shutdown until the timeout."""
    app = server.config.app
    assert isinstance(app, Starlette)
    app.state.stopping = lambda: server.should_exit


def serve(settings: Settings, *, recording: RecordRoom | None = None, sock: socket.socket | None = None) -> None:
    """Serve until SIGINT or SIGTERM; uvicorn then finishes in-flight requests and the store flushes.
    `recording`: a recording proxy, which also stops the server through its `stop`. `sock`: a socket
    already bound (the CLI binds it to print the real port of `--port 0`)."""
    sandbox = Sandbox(settings)
    server = uvicorn.Server(_config(settings, sandbox, settings.port, recording=recording))
    _tell_streams(server)
    if recording is not None:
        recording.stop = lambda: setattr(server, "should_exit", True)
    server.run(sockets=None if sock is None else [sock])


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one), for uvicorn to serve on; OSError when it cannot be.

    IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets that say so (about 40 ms a request)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Server:
    """The emulator in a background thread, for tests and the harness."""

    def __init__(self, settings: Settings | None = None, *, long_lived: bool = True) -> None:
        """`long_lived=False`: one of many short-lived emulators in this process (the harness, the pytest plugin)."""
        settings = settings or Settings(db=":memory:", port=0)
        self.sandbox = Sandbox(settings)
        self.settings = settings
        # Bind first, so port 0 becomes a real port before anyone asks for the URL.
        self._socket = listening_socket(settings.host, settings.port)
        self.port = self._socket.getsockname()[1]
        self._server = uvicorn.Server(_config(settings, self.sandbox, self.port, long_lived=long_lived))
        _tell_streams(self._server)
        self._thread = threading.Thread(target=self._run, name=f"emulator-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        # The same event loop (uvloop) `serve` gets; uvicorn leaves signal handling to the main thread.
        with asyncio.Runner(loop_factory=self._server.config.get_loop_factory()) as runner:
            runner.run(self._server.serve(sockets=[self._socket]))

    def start(self, timeout: float = 10.0) -> Server:
        self._thread.start()
        for _ in range(int(timeout / 0.005)):
            if self._server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.005)
        if not self._server.started:
            raise RuntimeError(f"the emulator did not start on {self.url}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
