"""Reading requests safely: size limits, content types, JSON that may be hostile."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope

from emulator.errors import RedoxError

# An over-limit body is read and thrown away before the 413 goes out, up to these bounds: a client that
# closes nothing until it has sent its body (urllib, Node's fetch) then reads the 413 rather than a reset.
DRAIN_FACTOR = 4  # at most this many times the limit is read and discarded
DRAIN_SECONDS = 10.0  # at most this long in all
DRAIN_IDLE = 1.0  # and no longer than this without a byte (a client announcing bytes it never sends)

# Real Redox payloads nest about a dozen levels; orjson cannot write back more than 254.
MAX_DEPTH = 200


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header, read straight from the ASGI scope (`name` lower-case, as ASGI gives
    names): what Starlette's `request.headers.get()` answers, without building a Headers object."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def headers(scope: Scope) -> dict[bytes, bytes]:
    """Every header of the ASGI scope by name (lower-case, as ASGI gives names), each name's first value
    as `header()` gives it: one pass for a caller that reads several."""
    pairs: list[tuple[bytes, bytes]] = scope["headers"]
    return dict(reversed(pairs))


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed `limit` bytes."""
    return await receive_body(request.scope, request.receive, limit)


async def receive_body(scope: Scope, receive: Receive, limit: int, declared: bytes | None = None) -> bytes:
    """`read_body` from the ASGI scope and receive channel (`declared`: Content-Length, if already read)."""
    length = declared if declared is not None else headers(scope).get(b"content-length", b"")
    if length.isdigit() and int(length) > limit:
        await drain(receive, DRAIN_FACTOR * limit)
        raise too_large(int(length), limit)
    chunks: list[bytes] = []
    size = 0
    while True:  # ASGI's receive directly: Starlette's stream() adds an async generator per request
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; what arrived is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            if message.get("more_body", False):
                await drain(receive, DRAIN_FACTOR * limit - size)
            raise too_large(size, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def drain(receive: Receive, bound: int) -> None:
    """Read and discard the rest of a body, at most `bound` bytes and DRAIN_SECONDS (DRAIN_IDLE without
    progress): past the bounds the server closes the connection after its answer, as it did before.
    Only an over-limit body comes here; a normal request never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_SECONDS
    while bound > 0:
        try:
            message = await asyncio.wait_for(receive(), min(DRAIN_IDLE, deadline - loop.time()))
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        bound -= len(message.get("body", b""))


def too_large(size: int, limit: int) -> RedoxError:
    return RedoxError(f"Payload too large: {size} bytes exceeds the limit of {limit} bytes",
                      type="transmission", module="Request", status=413)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def parse_json(raw: bytes, *, what: str = "request body") -> Any:
    if not raw.strip():
        raise RedoxError(f"The {what} is empty; expected a JSON object", module="Request")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's messages say what and where ("unexpected character: line 1 column 5 (char 4)").
        raise RedoxError(f"Malformed JSON in the {what}: {exc}", module="Request") from None
    # Only a body with that many brackets at all can be that deep: the walk is skipped for nearly all.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and too_deep(value, MAX_DEPTH):
        raise RedoxError(f"The {what} nests JSON more than {MAX_DEPTH} levels deep", module="Request")
    return value


def too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def require_json(request: Request) -> None:
    require_json_type(request.headers.get("content-type"))


def require_json_type(content_type: str | None) -> None:
    """`require_json` given the Content-Type header's value."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        shown = content_type or "no Content-Type"
        raise RedoxError(f"Content-Type must be application/json, found {shown}", module="Request")
