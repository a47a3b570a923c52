"""The benchmark's baseline: a bare Starlette app answering `POST /endpoint` with a fixed JSON body.

Served exactly as the emulator is served (emulator/server.py): uvicorn's defaults for the loop and the
HTTP parser (uvloop and httptools when installed), one worker, access log off, no Server header, no
proxy-headers middleware, no WebSocket support, so the ratio of the two measures the emulator's own work
and nothing else.

    .venv/bin/python bench/bare_app.py --port 8788
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Shaped like the emulator's answer head; rendered once, at import.
BODY = (b'{"Meta":{"DataModel":"PatientAdmin","EventType":"NewPatient","Test":true,'
        b'"Message":{"ID":10000000}}}')


async def endpoint(request: Request) -> Response:
    return Response(BODY, 200, media_type="application/json; charset=utf-8")


async def echo(request: Request) -> Response:
    """The floor of any app that must read a JSON event and answer it back, as /endpoint does."""
    return Response(orjson.dumps(orjson.loads(await request.body())), 200,
                    media_type="application/json; charset=utf-8")


app = Starlette(routes=[Route("/endpoint", endpoint, methods=["GET", "POST"])])  # GET: the FHIR read's baseline
echo_app = Starlette(routes=[Route("/endpoint", echo, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--echo", action="store_true", help="parse the body and answer it back (context)")
    args = parser.parse_args()
    uvicorn.run(echo_app if args.echo else app, host=args.host, port=args.port, log_config=None, log_level="warning",
                access_log=False, lifespan="on", timeout_graceful_shutdown=5, server_header=False, ws="none",
                proxy_headers=False)


if __name__ == "__main__":
    main()
