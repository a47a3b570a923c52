"""Shared fixtures: one real emulator on a real socket per test session (per xdist worker), reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulator import catalog
from emulator.contracts import payloads
from emulator.server import Server
from emulator.settings import Settings
from tests.receiver import Receiver

SHARED = Path(__file__).resolve().parents[2] / "shared" / "redox-reference"
REDOX_EMR = "af394f14-b34a-464f-8d24-895f370af4c9"
DEV_TOOLS = "7ce6f387-c33c-417d-8682-81e83628cbd9"


@pytest.fixture(scope="session")
def live_server() -> Iterator[Server]:
    with Server(Settings(db=":memory:", port=0)) as server:
        yield server


@pytest.fixture
def emulator(live_server: Server) -> Server:
    """The session's emulator, reset to its embedded defaults."""
    live_server.sandbox.reset()
    return live_server


@pytest.fixture
def client(emulator: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=10) as c:
        yield c


@pytest.fixture
def token(client: httpx.Client) -> str:
    """An OAuth access token for the default source, by client_id + client_secret."""
    r = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                            "client_secret": "sandbox-client-secret"})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.fixture
def authed(client: httpx.Client, token: str) -> httpx.Client:
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def webhook_server(hook: Receiver) -> Iterator[Server]:
    """An emulator whose webhook destination is `hook`; deliveries time out after 2 s (room for a loaded CI box)."""
    with Server(Settings(db=":memory:", port=0, webhook_url=hook.url, delivery_timeout=2.0)) as server:
        yield server


@pytest.fixture
def api(webhook_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=webhook_server.url, timeout=10) as client:
        r = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                "client_secret": "sandbox-client-secret"})
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield client


def event(model: str, event_type: str, *, destinations: list[str] | None = None, **body: object) -> dict[str, object]:
    """A minimal valid Redox event addressed to the Redox EMR destination unless told otherwise.

    Top-level sections the data model requires and `body` does not give come from the payload generator.
    """
    ids = [REDOX_EMR] if destinations is None else destinations
    return {"Meta": {"DataModel": model, "EventType": event_type, "Test": True,
                     "Destinations": [{"ID": i} for i in ids]}, **required_sections(model, event_type, body), **body}


def required_sections(model: str, event_type: str, body: dict[str, object]) -> dict[str, object]:
    if not catalog.is_known(model, event_type):
        return {}
    contract = payloads.bundled()[catalog.canonical(model, event_type)]
    missing = [k for k in contract.schema.get("required", ()) if k != "Meta" and k not in body]
    generated = payloads.build(model, event_type, seed=0) if missing else {}
    return {k: generated[k] for k in missing}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The crash tests' counts (tests/test_crash.py records them), shown whatever -s and -n say."""
    lines = [value for kind in ("passed", "failed") for report in terminalreporter.stats.get(kind, [])
             for name, value in getattr(report, "user_properties", ()) if name == "crash counts"]
    if lines:
        terminalreporter.section("crash tests")
        for line in lines:
            terminalreporter.write_line(str(line))
