"""The pytest plugin (entry point `pytest11`): a Redox emulator per test, and scenario files as tests.

    def test_sends(redox_emulator):                    # an in-process emulator on a free port, reset per test
        token = redox_emulator.token()
        httpx.post(redox_emulator.url + "/endpoint", ...)
        httpx.get(redox_emulator.fhir_url + "/Patient/...", ...)   # the FHIR R4 API (.fhir_base(slug))
        assert redox_emulator.logs(dataModel="PatientAdmin")

    @pytest.mark.redox_scenario("token-expiry")        # active for this test only
    def test_reauthenticates(redox_emulator): ...

`pytest --redox-client redox-client.yaml scenarios/` collects scenario files as test items, each run
by the contract-test harness against that client. Under pytest-xdist every worker has its own
emulator (session scope is per worker), so no test sees another worker's traffic.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from emulator.settings import Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redox", "Redox emulator")
    group.addoption("--redox-client", metavar="FILE", default=None,
                    help="Collect scenario files (*.yaml under a scenarios/ folder, or named) as contract tests "
                         "of the client this redox-client.yaml describes.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "redox_scenario(*names): activate these scenarios for the test "
                                       "(the redox_emulator fixture)")


class RedoxEmulator:
    """What a test gets: the base URL, the embedded credentials, and helpers over the sandbox."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.sandbox = server.sandbox
        settings = server.sandbox.settings
        source, destination = settings.sources[0], settings.destinations[0]
        self.url: str = server.url
        self.client_id, self.client_secret = source.client_id, source.client_secret
        self.api_key, self.api_secret = source.api_key, source.api_secret
        self.source_id, self.destination_id = source.id, destination.id
        self.verification_token = destination.verification_token
        self.fhir_url: str = self.fhir_base(destination.slug or "redox-fhir-sandbox")

    def fhir_base(self, slug: str = "redox-fhir-sandbox", environment: str = "Development") -> str:
        """The FHIR R4 base URL of a destination's slug: `{url}/fhir/R4/{slug}/{environment}`."""
        return f"{self.url}/fhir/R4/{slug}/{environment}"

    def token(self) -> str:
        """An OAuth access token for the embedded source, by client_id + client_secret over HTTP."""
        import json
        import urllib.parse
        import urllib.request

        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": self.client_id,
                                       "client_secret": self.client_secret}).encode()
        with urllib.request.urlopen(self.url + "/v2/auth/token", form, timeout=10) as answer:
            return str(json.loads(answer.read())["access_token"])

    def push(self, data_model: str, event_type: str, payload: dict[str, Any] | None = None, *, count: int = 1,
             destinations: list[str] | None = None) -> list[str]:
        """Events from the EHR to subscribed webhooks (built by the EHR when no payload); their log IDs."""
        from emulator.delivery import push as push_events

        sandbox = self.sandbox
        events = (push_events.events(data_model, event_type, payload, count) if payload is not None else
                  push_events.generate(sandbox.ehr, sandbox.clock, data_model, event_type, sandbox.push_rng, count))
        return [entry.id for entry in sandbox.delivery.push(events, destinations)]

    def logs(self, **filters: Any) -> list[dict[str, Any]]:
        """Redox's logs, newest first (filters as GET /__emulator/logs: dataModel, eventType, status, type)."""
        return cast("list[dict[str, Any]]", self.sandbox.store.list_logs(filters, limit=500)[0])

    def exchanges(self) -> list[dict[str, Any]]:
        """The journal: every HTTP exchange, oldest first."""
        return cast("list[dict[str, Any]]", self.sandbox.store.exchanges())

    def advance(self, seconds: float) -> float:
        """Move the emulator's clock forward (token expiry, back-off, scenario pushes)."""
        return float(self.sandbox.clock.advance(seconds))

    def activate(self, name_or_file: str) -> None:
        self.sandbox.scenarios.activate(self.sandbox.scenarios.load(name_or_file)[0])


@pytest.fixture(scope="session")
def _redox_server() -> Iterator[Any]:
    from emulator.server import Server

    with Server(Settings(db=":memory:", port=0, log_level="warning"), long_lived=False) as server:
        yield server


@pytest.fixture
def redox_emulator(_redox_server: Any, request: pytest.FixtureRequest) -> Iterator[RedoxEmulator]:
    """A Redox emulator for this test: fresh state (reset), scenarios of `@pytest.mark.redox_scenario` active."""
    _redox_server.sandbox.reset()
    emulator = RedoxEmulator(_redox_server)
    for marker in request.node.iter_markers("redox_scenario"):
        for name in marker.args:
            emulator.activate(name)
    yield emulator
    _redox_server.sandbox.scenarios.deactivate()


# ---- scenario files as contract tests ----------------------------------------------------------
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    client = parent.config.getoption("--redox-client")
    if client is None or file_path.suffix not in (".yaml", ".yml"):
        return None
    explicit = any(Path(str(a)).resolve() == file_path.resolve() for a in parent.config.args)
    if not explicit and file_path.parent.name != "scenarios":
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        from emulator.harness import client as client_module
        from emulator.harness import report
        from emulator.harness.runner import Harness

        client = client_module.load(self.config.getoption("--redox-client"))
        result = Harness(client).run_one(self.path)
        if result.skipped:
            pytest.skip(result.skipped)
        if not result.ok:
            raise ContractBroken(report.summary([("", result)], result.seconds, client))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ContractBroken):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"contract {self.name}"


class ContractBroken(Exception):
    """A scenario's expectations that the client did not meet (the report says which and why)."""
