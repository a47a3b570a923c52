"""/__emulator/openapi.json is true: schemathesis sends generated requests to every documented operation
of a fresh app and every answer must have a documented status, content type and shape, and no 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from emulator.settings import Settings
from emulator.web import openapi
from emulator.web.app import create_app

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 8  # per operation: about 30 operations, a few seconds in all
LOOPBACK_HOOK = "http://127.0.0.1:9/hook"  # the discard port: refused at once, and never off this machine


@pytest.fixture(scope="module")
def app_and_token() -> Iterator[tuple[Any, str]]:
    app = create_app(Settings(db=":memory:", delivery_timeout=0.5, scenarios=()))
    with TestClient(app) as client:
        answer = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                     "client_secret": "sandbox-client-secret"})
        yield app, answer.json()["access_token"]


@pytest.fixture(scope="module")
def api_schema(app_and_token: tuple[Any, str]) -> Any:
    app, _ = app_and_token
    # The stream answers until the client goes: an in-process client would wait for its end forever.
    return schemathesis.openapi.from_asgi("/__emulator/openapi.json", app).exclude(path="/__emulator/logs/stream")


def test_every_answer_is_documented(api_schema: Any, app_and_token: tuple[Any, str]) -> None:
    """One hypothesis run per operation (schemathesis' pytest plugin does not run on this pytest); every
    operation is tried, and the failures of all of them are reported together."""
    _, token = app_and_token
    failures: dict[str, str] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            if isinstance(case.body, dict) and "url" in case.body:
                case.body["url"] = LOOPBACK_HOOK  # a registered webhook must never point off this machine
            if isinstance(case.body, dict) and isinstance(case.body.get("count"), int):
                case.body["count"] = min(case.body["count"], 5)  # a push of 100,000 events is valid, and slow
            headers = {"Authorization": f"Bearer {token}"} if not case.path.startswith("/__emulator") else {}
            case.call_and_validate(checks=CHECKS, headers=headers)

        try:
            run()
        except Exception as error:  # collected, then reported all at once
            failures[operation.label] = str(error)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def test_document_is_openapi_3_1_and_covers_every_route(app_and_token: tuple[Any, str]) -> None:
    app, _ = app_and_token
    doc = TestClient(app).get("/__emulator/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    routed = {(route.path, method.lower()) for route in app.routes if hasattr(route, "methods")
              for method in route.methods or () if method != "HEAD"}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    # The trailing-slash redirect of the page is the only route left out on purpose.
    assert routed - documented == {("/__emulator/ui/", "get")}
    assert documented - routed == set()
    assert doc == openapi.document()
