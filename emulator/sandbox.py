"""The emulated Redox environment: every piece of model state, built from Settings, resettable.

The HTTP layer holds one `Sandbox`; tests can drive it directly with no server at all.
"""

from __future__ import annotations

import logging

from emulator.auth import Authenticator
from emulator.clock import Clock
from emulator.contracts import schemas
from emulator.contracts.validator import ContractValidator
from emulator.ehr import SyntheticEHR
from emulator.keys import KeyRegistry
from emulator.ratelimit import RateLimiter
from emulator.routing import Router
from emulator.settings import Settings
from emulator.store import LogStore
from emulator.tokens import TokenStore

log = logging.getLogger(__name__)


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = Clock()
        self.store = LogStore(settings.db)
        self.tokens = TokenStore(self.clock)
        self.keys = KeyRegistry()
        self.auth = Authenticator(settings, self.clock, self.tokens, self.keys)
        self.auth.register_configured_keys()
        self.ehr = SyntheticEHR(seed=settings.seed, population=settings.population, clock=self.clock)
        self.contracts = ContractValidator(schemas.load(settings.contracts_dir), settings.contract_mode)
        self.router = Router(settings, self.clock, self.ehr, self.contracts)
        self.rate_limiter = RateLimiter(self.clock, settings.rate_limit, settings.rate_window)

    def reset(self) -> None:
        """Back to the state `make emulate` starts in: no logs, no tokens, seeded EHR, clock at now."""
        self.store.clear()
        self.tokens.clear()
        self.keys.clear()
        self.auth.register_configured_keys()
        self.clock.reset()
        self.ehr.reset()
        self.rate_limiter.clear()
        self.contracts.reset()

    def close(self) -> None:
        self.store.close()
