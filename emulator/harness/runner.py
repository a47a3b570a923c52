"""One scenario against the client under test, start to finish, and many of them in parallel.

Per scenario: a fresh emulator (in this process: `Server` on a free port with its own `:memory:`
store; in-process because a fresh emulator then costs milliseconds, the contracts and the pristine
EHR being shared by every sandbox of the process, and because the harness reads the journal, the
handshake verdicts and the delivery queue directly), the client's receiver (`serve`), ready, the
scenario activated (its webhook destinations verified, as Redox does on registration), the client's
`send`, the pushes settled (the clock fast-forwarded through back-off and scheduled pushes), the
probe, the verdicts. Every client process runs in its own process group and is stopped, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.errors import LoadError
from emulator.harness import probe as probe_schema
from emulator.harness import processes
from emulator.harness.client import ClientSpec
from emulator.harness.expectations import Evidence, Handshake, Verdict, evaluate_all
from emulator.scenarios import checker
from emulator.scenarios.model import Scenario
from emulator.settings import Settings

log = logging.getLogger(__name__)

SETTLE_BEYOND = 600.0  # emulated seconds of retries allowed past the scenario's last scheduled event
POLL = 0.01


@dataclass(slots=True)
class RunResult:
    scenario: str
    source: str
    verdicts: list[Verdict] = field(default_factory=list)
    error: str | None = None  # the run itself broke (no receiver, a bad scenario file...)
    notes: list[str] = field(default_factory=list)  # send exit status, a kill at the timeout...
    seconds: float = 0.0
    workdir: str | None = None  # kept when something failed: the client's logs are there
    skipped: str | None = None  # why the contract was not run (the client does not use its API)

    @property
    def ok(self) -> bool:
        return self.error is None and all(v.ok for v in self.verdicts)

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]

    def view(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "source": self.source, "ok": self.ok, "error": self.error,
                **({"skipped": self.skipped} if self.skipped else {}),
                "notes": self.notes, "seconds": round(self.seconds, 3), "workdir": self.workdir,
                "expectations": [v.view() for v in self.verdicts]}


Listener = Callable[[str, str, RunResult | None], None]  # ("start" | "done", scenario, result)


class Harness:
    def __init__(self, client: ClientSpec, *, jobs: int = 1, listener: Listener | None = None,
                 keep: bool = False) -> None:
        self.client = client
        self.jobs = max(1, jobs)
        self.listener = listener or (lambda *_: None)
        self.keep = keep  # keep every work dir, not only failed runs'
        self._keys: tuple[str, Path, dict[str, Any]] | None = None
        self._keys_lock = threading.Lock()
        self._root = Path(tempfile.mkdtemp(prefix="redox-harness-"))
        self.stopping = threading.Event()

    def run(self, scenario_files: Sequence[Path]) -> list[RunResult]:
        """Every scenario, `jobs` at a time; results in the order given. Ctrl-C stops every client process."""
        try:
            with ThreadPoolExecutor(self.jobs, thread_name_prefix="harness") as pool:
                futures = [pool.submit(self.run_one, path) for path in scenario_files]
                try:
                    return [f.result() for f in futures]
                except BaseException:
                    self.stopping.set()
                    for f in futures:
                        f.cancel()
                    processes.stop_all()
                    raise
        finally:
            processes.stop_all()
            if not any(self._root.iterdir()):
                shutil.rmtree(self._root, ignore_errors=True)

    # ---- one scenario ---------------------------------------------------------------------------
    def run_one(self, path: Path) -> RunResult:
        started = time.monotonic()
        result = RunResult(path.stem, str(path))
        self.listener("start", path.stem, None)
        work = Path(tempfile.mkdtemp(prefix=f"{path.stem}-", dir=self._root))
        try:
            scenario = checker.load_file(path)
            result.scenario = scenario.name
            if scenario.client_api not in self.client.apis:
                result.skipped = f"the client uses the {' and '.join(self.client.apis)} API(s), not " \
                                 f"{scenario.client_api} (client.yaml `apis`)"
            else:
                self._run(scenario, work, result)
        except LoadError as error:
            result.error = str(error)
        except Exception as error:  # the harness's bug or the machine's: reported, the other runs go on
            log.exception("scenario %s: the run broke", path)
            result.error = f"{type(error).__name__}: {error}"
        result.seconds = time.monotonic() - started
        if result.ok and not self.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            result.workdir = str(work)
        self.listener("done", result.scenario, result)
        return result

    def _run(self, scenario: Scenario, work: Path, result: RunResult) -> None:
        from emulator.server import Server  # uvicorn and Starlette only when a run starts

        client = self.client
        port = processes.free_port() if client.serve else 0
        webhook = client.with_port(client.webhook_url, port)
        server = Server(Settings(db=":memory:", port=0, log_level="warning", delivery_timeout=client.timeout),
                        long_lived=False)
        serve: Any = None
        try:
            server.start()
            sandbox = server.sandbox
            kid, pem, jwks = self.keys()
            source = sandbox.settings.sources[0]
            if source.client_id:
                sandbox.keys.set_jwks(source.client_id, jwks)
            env = self._env(server.url, scenario, sandbox, kid, pem, work)
            if client.serve:
                serve = processes.start(client.serve.replace("{port}", str(port)), env=env, cwd=client.directory,
                                        output=work / "serve.log")
                self._wait_ready(client.with_port(client.ready_url, port) or webhook or "", serve, work)
            if webhook:
                sandbox.use_receiver(webhook)
            active = sandbox.scenarios.activate(scenario)
            handshakes = self._verify(sandbox, scenario)
            sent = processes.run(client.send, env=env, cwd=client.directory, output=work / "send.log",
                                 timeout=client.timeout)
            if sent.returncode is None:
                result.notes.append(f"send killed after {client.timeout:g} s (timeout)")
            elif sent.returncode != 0:
                result.notes.append(f"send exited {sent.returncode}")
            if not self._settle(sandbox, scenario, active.activated_at, time.monotonic() + client.timeout):
                result.notes.append("deliveries still pending when the harness stopped waiting")
            probe, probe_error = self._probe(env, work)
            if probe_error is None:
                broken = probe_schema.problems(probe)
                if broken:
                    result.notes.append(f"probe output breaks {probe_schema.PROBE_SCHEMA.as_posix()}: "
                                        + "; ".join(broken[:probe_schema.SHOWN]))
            evidence = Evidence(scenario, sandbox.store.exchanges(limit=1_000_000), sandbox.contracts,
                                handshakes, probe, probe_error)
            result.verdicts = evaluate_all(evidence)
        finally:
            if serve is not None:
                processes.stop(serve)
            server.stop()
            server.sandbox.close()

    def keys(self) -> tuple[str, Path, dict[str, Any]]:
        """One RS384 key pair per harness run: REDOX_PRIVATE_KEY_PATH and REDOX_KEY_ID for signed-JWT clients."""
        from emulator.keys import write_key_pair

        with self._keys_lock:
            if self._keys is None:
                kid, pem, jwks = write_key_pair("sandbox-client", self._root / "keys")
                self._keys = (kid, pem, json.loads(jwks.read_text()))
            return self._keys

    def _env(self, base: str, scenario: Scenario, sandbox: Any, kid: str, pem: Path, work: Path) -> dict[str, str]:
        """SPEC 7.4: the variables Redox's own sample app reads, and the rest."""
        settings = sandbox.settings
        source = settings.sources[0]
        destination = settings.destinations[0]
        token = destination.verification_token
        webhooks = [d for d in scenario.setup.destinations if d.url is not None]
        if webhooks:
            token = webhooks[0].verification_token
        target = destination.id
        if scenario.client_destination is not None:
            target = next(d.id for d in scenario.setup.destinations if scenario.client_destination in (d.id, d.name))
        return {
            **os.environ, **self.client.env,
            "REDOX_BASE_URL": base, "REDOX_AUTH_URL": f"{base}/auth/authenticate", "REDOX_API_URL": f"{base}/endpoint",
            "REDOX_TOKEN_URL": f"{base}/v2/auth/token",
            "REDOX_API_KEY": source.api_key, "REDOX_API_SECRET": source.api_secret,
            "REDOX_CLIENT_ID": source.client_id, "REDOX_CLIENT_SECRET": source.client_secret,
            "REDOX_PRIVATE_KEY_PATH": str(pem), "REDOX_KEY_ID": kid,
            "REDOX_SOURCE_ID": source.id, "REDOX_DESTINATION_ID": target, "VERIFICATION_TOKEN": token,
            "REDOX_SCENARIO": scenario.name, "REDOX_HARNESS_WORKDIR": str(work),
            "REDOX_API": scenario.client_api, "REDOX_FHIR_URL": self._fhir_url(base, sandbox),
        }

    @staticmethod
    def _fhir_url(base: str, sandbox: Any) -> str:
        """The FHIR base of the client's destination (the default one: Redox's FHIR sandbox), Development."""
        slug = next((d.slug for d in sandbox.settings.destinations if d.slug), "redox-fhir-sandbox")
        return f"{base}/fhir/R4/{slug}/Development"

    def _wait_ready(self, url: str, serve: Any, work: Path) -> None:
        deadline = time.monotonic() + self.client.ready_timeout
        last = "no answer yet"
        while time.monotonic() < deadline and not self.stopping.is_set():
            if serve.poll() is not None:
                raise LoadError(f"the receiver exited ({serve.returncode}) before it was ready; "
                                f"its output is in {work / 'serve.log'}")
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status < 500:
                        return
            except urllib.error.HTTPError as error:
                if error.code < 500:
                    return
                last = f"answered {error.code}"
            except (OSError, ValueError) as error:
                last = str(error)
            time.sleep(POLL)
        raise LoadError(f"the receiver was not ready at {url} within {self.client.ready_timeout:g} s ({last}); "
                        f"its output is in {work / 'serve.log'}")

    def _verify(self, sandbox: Any, scenario: Scenario) -> list[Handshake]:
        """Redox verifies a destination when it is registered: the scenario's webhooks, now."""
        ids = {d.id for d in scenario.setup.destinations if d.url is not None}
        futures = [(d.id, sandbox.delivery.verify(d)) for d in sandbox.destinations.all()
                   if d.id in ids and d.url is not None]
        verdicts = []
        for destination_id, future in futures:
            try:
                verdict = future.result(self.client.timeout + 5)
                verdicts.append(Handshake(destination_id, verdict.ok, verdict.explanation))
            except Exception as error:  # a hang past the delivery timeout, or a closed loop
                verdicts.append(Handshake(destination_id, False, f"no verdict: {error}"))
        return verdicts

    def _settle(self, sandbox: Any, scenario: Scenario, activated_at: float, deadline: float) -> bool:
        """Until delivery is idle: the clock jumps to the next due push or retry (no real waiting for
        Redox's minutes), up to SETTLE_BEYOND emulated seconds past the last scheduled event."""
        clock, delivery = sandbox.clock, sandbox.delivery
        scheduled = [p.when.at or 0.0 for p in scenario.pushes] + [o.end for o in scenario.outages]
        horizon = activated_at + max([0.0, *scheduled]) + SETTLE_BEYOND
        while time.monotonic() < deadline and not self.stopping.is_set():
            due = delivery.next_due()
            if due is None:
                return True
            now = clock.now()
            if due > now + 0.001:
                if due > horizon:
                    return False
                clock.advance(due - now)
            time.sleep(POLL)
        return False

    def _probe(self, env: dict[str, str], work: Path) -> tuple[Any, str | None]:
        if not self.client.probe:
            return None, "the client description has no probe command"
        out = work / "probe.out"
        finished = processes.run(self.client.probe, env=env, cwd=self.client.directory, output=out,
                                 timeout=self.client.timeout, stdout_only=True)
        if finished.returncode is None:
            return None, f"the probe did not finish within {self.client.timeout:g} s"
        if finished.returncode != 0:
            return None, f"the probe exited {finished.returncode}: {finished.output[-300:]}"
        try:
            return json.loads(finished.output), None
        except ValueError as error:
            return None, f"the probe printed no JSON ({error}): {finished.output[:200]!r}"


def stop_everything() -> None:
    """What the CLI calls on Ctrl-C or SIGTERM, after the pool gave up."""
    with contextlib.suppress(Exception):
        processes.stop_all()
