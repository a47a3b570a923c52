"""The logs page (`/__emulator/ui`) and its files, and the OpenAPI document (`/__emulator/openapi.json`).

The page's HTML, CSS and JavaScript ship inside the package (`web/ui/`): nothing is fetched from the
internet. They hold no data, so they are served without the admin token; the page sends the token
(asked for when the control plane answers 401) with every call it makes.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from emulator.web import openapi
from emulator.web.control_routes import PREFIX
from emulator.web.responses import json_response

UI_DIR = Path(__file__).resolve().parent / "ui"


async def page(request: Request) -> Response:
    return FileResponse(UI_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={"cache-control": "no-cache"})


async def slash(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/ui", status_code=308)


async def openapi_document(request: Request) -> Response:
    sandbox = request.app.state.sandbox  # the request bodies name its contracts and destinations
    return json_response(200, openapi.document(sandbox.contracts.contracts, sandbox.destinations.all(),
                                               sandbox.base_settings.scenarios_dir))


routes = [
    Route(f"{PREFIX}/ui", page, methods=["GET"]),
    Route(f"{PREFIX}/ui/", slash, methods=["GET"]),
    Mount(f"{PREFIX}/ui/static", app=StaticFiles(directory=UI_DIR), name="ui"),
    Route(f"{PREFIX}/openapi.json", openapi_document, methods=["GET"]),
]
