"""The emulated Redox environment: every piece of model state, built from Settings, resettable.

The HTTP layer holds one `Sandbox`; tests can drive it directly with no server at all.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from typing import Any

from emulator.auth import Authenticator
from emulator.clock import Clock
from emulator.contracts import schemas
from emulator.contracts.validator import ContractValidator
from emulator.delivery import Delivery
from emulator.delivery.scripted import ScriptedDelivery
from emulator.destinations import Destinations
from emulator.ehr import SyntheticEHR
from emulator.fhir import FhirService
from emulator.keys import KeyRegistry
from emulator.ratelimit import RateLimiter
from emulator.routing import Router
from emulator.scenarios.engine import ScenarioEngine
from emulator.settings import Settings
from emulator.store import LogStore
from emulator.tokens import TokenStore

log = logging.getLogger(__name__)


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.base_settings = settings  # as configured; `settings` may differ while a scenario is active
        self.settings = settings
        self.clock = Clock()
        self.store = LogStore(settings.db, sync=settings.db_sync)
        self.tokens = TokenStore(self.clock)
        self.keys = KeyRegistry()
        self.auth = Authenticator(settings, self.clock, self.tokens, self.keys)
        self.auth.register_configured_keys()
        # What events changed in the EHR comes back from the store, over the seeded population.
        self.ehr = SyntheticEHR(seed=settings.seed, population=settings.population, clock=self.clock,
                                saved=self.store.ehr_records())
        self.fhir = FhirService(self.ehr)
        self.contracts = ContractValidator(schemas.load(settings.contracts_dir), settings.contract_mode)
        self.destinations = Destinations(settings, self.store)
        self.router = Router(self.destinations, self.clock, self.ehr, self.contracts)
        self.delivery = Delivery(settings, self.clock, self.store, self.destinations, self.ehr)
        self.push_rng = random.Random(settings.seed)  # events the EHR builds for pushes: same seed, same events
        for destination in settings.all_destinations():  # registering a webhook verifies it, as Redox does
            if destination.url is not None:
                self.delivery.verify(destination)
        self.rate_limiter = RateLimiter(self.clock, settings.rate_limit, settings.rate_window)
        self.scenarios = ScenarioEngine(self)
        self.scenarios.delivery = ScriptedDelivery(self.delivery, self.destinations)
        try:
            self.scenarios.start()  # the scenarios the settings name; LoadError for a bad one
        except BaseException:
            self.delivery.close()
            self.store.close()
            raise

    def retune(self, **changes: Any) -> None:
        """The configured settings with a scenario's changes (none: back to as configured)."""
        self.settings = dataclasses.replace(self.base_settings, **changes)
        self.auth.use_settings(self.settings)
        self.rate_limiter.limit = self.settings.rate_limit
        self.rate_limiter.window = self.settings.rate_window

    def use_receiver(self, url: str) -> None:
        """The URL `{receiver}` stands for in scenario destinations: the harness's receiver, known only
        once the emulator runs (its clients are told the emulator's address first)."""
        self.base_settings = dataclasses.replace(self.base_settings, webhook_url=url)

    def reset(self) -> None:
        """Back to the state `make emulate` starts in: no logs, no tokens, seeded EHR, clock at now."""
        self.delivery.reset()
        self.destinations.reset()
        self.store.clear()
        self.tokens.clear()
        self.keys.clear()
        self.auth.register_configured_keys()
        self.clock.reset()
        self.ehr.reset()
        self.fhir.reset()
        self.rate_limiter.clear()
        self.contracts.reset()
        self.push_rng.seed(self.settings.seed)
        self.scenarios.reset()  # last: start-up scenarios set up again on the fresh state

    def close(self) -> None:
        self.scenarios.close()
        self.delivery.close()
        self.store.close()
