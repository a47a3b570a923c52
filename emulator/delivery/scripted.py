"""Scenario pushes and outages, carried out by `Delivery` (implements `scenarios.engine.DeliveryHooks`).

Times in a scenario count from its activation on the emulator's clock, so an accelerated or manual
clock runs them as fast as it runs everything else. A push with its own `verification_token` is a
forgery, not a Redox message: it is posted once, outside the queue, and never retried.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from emulator.clock import iso
from emulator.delivery.service import Delivery
from emulator.destinations import Destinations
from emulator.scenarios.model import Push

if TYPE_CHECKING:
    from emulator.scenarios.engine import ActiveScenario

log = logging.getLogger(__name__)


class ScriptedDelivery:
    def __init__(self, delivery: Delivery, destinations: Destinations) -> None:
        self.delivery = delivery
        self.destinations = destinations

    # ---- DeliveryHooks ------------------------------------------------------------------------------
    def scenario_activated(self, active: ActiveScenario) -> None:
        for push in active.scenario.pushes:
            if push.when.at is not None:
                self._schedule(active, push, active.activated_at + push.when.at)
        for outage in active.scenario.outages:
            target = self._target(active, outage.destination)
            if target is None:
                continue
            window = (active.activated_at + outage.start, active.activated_at + outage.end, outage.failure, active)
            self.delivery.add_outage(target, window)

    def scenario_deactivated(self, active: ActiveScenario) -> None:
        self.delivery.cancel(active)
        self.delivery.remove_outages(active)

    def push_triggered(self, active: ActiveScenario, push: Push, request: Any) -> None:
        self._schedule(active, push, self.delivery.clock.now() + push.when.delay)

    # ---- carrying a push out ---------------------------------------------------------------------------
    def _schedule(self, active: ActiveScenario, push: Push, first: float) -> None:
        for n in range(max(1, push.repeat_count)):
            self.delivery.at(first + n * push.repeat_every, lambda: self._fire(active, push), owner=active)

    def _fire(self, active: ActiveScenario, push: Push) -> None:
        target = self._target(active, push.destination)
        destination = self.destinations.get(target) if target else None
        if target is None or destination is None:
            log.warning("scenario %s: push %s has no webhook destination to go to", active.scenario.name, push.name)
            return
        event = copy.deepcopy(dict(push.body))
        meta = dict(event.get("Meta") or {})
        if push.event_time is not None:  # when it happened, which need not be the order it is sent in
            meta["EventDateTime"] = iso(active.activated_at + push.event_time)
        else:
            meta.setdefault("EventDateTime", iso(self.delivery.clock.now()))
        meta.setdefault("Test", True)
        event["Meta"] = meta
        note = {"scenario": active.scenario.name, "push": push.name}
        if push.verification_token is not None:
            self.delivery.forge(destination, event, push.verification_token, {**note, "forged": True})
            return
        self.delivery.push([event], [target], redeliver=push.redeliver_times,
                           redeliver_after=push.redeliver_after, note=note)

    def _target(self, active: ActiveScenario, wanted: str | None) -> str | None:
        """A destination ID from an ID or name: the scenario's own destinations first, then any webhook."""
        own = [d.id for d in active.scenario.setup.destinations]
        candidates = [d for d in self.destinations.all() if d.url is not None]
        candidates.sort(key=lambda d: d.id not in own)
        for d in candidates:
            if wanted is None or wanted in (d.id, d.name):
                return d.id
        return None
