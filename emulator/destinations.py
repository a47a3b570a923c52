"""The destinations a sandbox routes to: those of the config, plus those registered at run time.

Run-time registrations (the control plane, `serve --webhook-url`) are kept in the log store, so a
restart on the same store still knows where its queued messages go. `reset()` forgets them.
"""

from __future__ import annotations

import logging
import threading

from emulator.errors import ConfigError
from emulator.settings import Destination, Settings, destination_config, parse_destination
from emulator.store import LogStore

log = logging.getLogger(__name__)


class Destinations:
    def __init__(self, settings: Settings, store: LogStore) -> None:
        self._configured = {d.id: d for d in settings.all_destinations()}
        self._store = store
        self._lock = threading.Lock()
        self._by_id = dict(self._configured)
        for config in store.saved_destinations():
            try:
                destination = parse_destination(config, "saved destination")
            except ConfigError as error:  # written by another version: say so, keep serving
                log.warning("%s", error)
                continue
            self._by_id[destination.id] = destination
        self._scripted: dict[str, Destination] = {}  # set up by active scenarios; never stored

    def get(self, destination_id: str) -> Destination | None:
        return self._scripted.get(destination_id) or self._by_id.get(destination_id)

    def all(self) -> list[Destination]:
        return list({**self._by_id, **self._scripted}.values())

    def set_scripted(self, destinations: list[Destination]) -> None:
        """The destinations active scenarios set up (an empty list: none); they win over the others."""
        self._scripted = {d.id: d for d in destinations}

    def put(self, destination: Destination) -> bool:
        """Register or replace; True when the ID is new."""
        with self._lock:
            new = destination.id not in self._by_id
            self._by_id = {**self._by_id, destination.id: destination}  # readers never see a dict mid-change
        self._store.put_destination(destination.id, destination_config(destination))
        return new

    def remove(self, destination_id: str) -> Destination | None:
        with self._lock:
            removed = self._by_id.get(destination_id)
            self._by_id = {k: v for k, v in self._by_id.items() if k != destination_id}
        self._store.put_destination(destination_id, None)
        return removed

    def reset(self) -> None:
        """Back to the configured destinations (the store forgets the others when it is cleared)."""
        with self._lock:
            self._by_id = dict(self._configured)
