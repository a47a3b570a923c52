"""One destination's queue: strictly FIFO, at least once, paused by a failure until a retry succeeds.

A lane's state is touched by the delivery thread (which runs it) and by request threads (which add
messages and pause, resume, purge or script faults); `lock` guards it, and `wake()` tells the
running lane to look again.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from emulator import catalog
from emulator.clock import iso
from emulator.delivery.schedule import delay_after


@dataclass(slots=True)
class Message:
    seq: int  # the queue's order, kept in the store
    log_id: str
    body: dict[str, Any]  # Meta filled in for this destination; Meta.Logs[0].AttemptID set per attempt
    attempts: int = 0
    redeliver: int = 0  # once acknowledged, deliver it again this many times (same log ID) ...
    redeliver_after: float = 0.0  # ... this many seconds after each acknowledgement
    note: dict[str, Any] | None = None  # what scripted it (a scenario's push), for the journal

    @property
    def fhir(self) -> bool:
        """A FHIR notification Bundle (no Meta), not a data-model event."""
        return "Meta" not in self.body and self.body.get("resourceType") == "Bundle"

    def view(self) -> dict[str, Any]:
        if self.fhir:  # named as Redox logs it, from its MessageHeader's eventUri
            model, event = catalog.fhir_by_uri(self.body)
        else:
            meta = self.body.get("Meta", {})
            model, event = meta.get("DataModel"), meta.get("EventType")
        return {"seq": self.seq, "logId": self.log_id, "dataModel": model, "eventType": event,
                "attempts": self.attempts}


@dataclass(slots=True)
class Faults:
    """Misbehaviours a scenario scripts for the next deliveries of one destination."""

    redeliver: int = 0  # deliver the next acknowledged message this many more times
    out_of_order: int = 0  # this many times, deliver the second queued message before the first
    wrong_token: int = 0  # this many attempts carry a wrong verification-token
    outage_until: float = 0.0  # until then (emulator clock) the destination cannot be reached
    # Scenario outage windows: (start, end, failure: "refused" | "timeout" | an HTTP status, owner)
    windows: list[tuple[float, float, str | int, object]] = field(default_factory=list)

    def outage(self, now: float) -> str | int | None:
        """How an attempt now fails for want of a network, if it does."""
        if now < self.outage_until:
            return "refused"
        for start, end, failure, _ in self.windows:
            if start <= now < end:
                return failure
        return None

    def view(self, now: float) -> dict[str, Any]:
        return {"redeliver": self.redeliver, "outOfOrder": self.out_of_order, "wrongToken": self.wrong_token,
                "outageUntil": iso(self.outage_until) if self.outage_until > now else None,
                "outages": [{"from": iso(a), "until": iso(b), "failure": f} for a, b, f, _ in self.windows
                            if b > now]}


@dataclass(slots=True)
class Attempt:
    """What the lane decided for one attempt, under its lock, before the network call."""

    message: Message
    wrong_token: bool
    outage: str | int | None  # the scripted failure instead of a network call, if any


@dataclass
class Lane:
    destination_id: str
    queue: deque[Message] = field(default_factory=deque)
    paused: bool = False  # by someone, not by a failure: a failure only delays
    failures: int = 0  # consecutive failed attempts at the head message
    due: float = 0.0  # emulator time at which the head may be tried
    last_error: str | None = None
    faults: Faults = field(default_factory=Faults)
    lock: threading.Lock = field(default_factory=threading.Lock)
    event: asyncio.Event | None = None  # created in the delivery loop
    loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        loop, event = self.loop, self.event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def next_attempt(self, now: float) -> tuple[Attempt | None, float | None]:
        """The attempt to make now, or how long (emulated seconds; None: until woken) to wait first."""
        with self.lock:
            if self.paused or not self.queue:
                return None, None
            if now < self.due:
                return None, self.due - now
            if self.faults.out_of_order and len(self.queue) >= 2 and self.failures == 0:
                self.faults.out_of_order -= 1
                first = self.queue.popleft()
                self.queue.insert(1, first)
            wrong = self.faults.wrong_token > 0
            if wrong:
                self.faults.wrong_token -= 1
            head = self.queue[0]
            head.attempts += 1
            return Attempt(head, wrong, self.faults.outage(now)), None

    def settle(self, attempt: Attempt, ok: bool, error: str | None, now: float) -> bool:
        """Book an attempt's result; True when the message is done (delivered and not to be redelivered)."""
        with self.lock:
            message = attempt.message
            if ok:
                self.failures, self.due, self.last_error = 0, 0.0, None
                message.redeliver += self.faults.redeliver  # a scripted redelivery applies to this message
                self.faults.redeliver = 0
                if message.redeliver > 0:
                    message.redeliver -= 1
                    self.due = now + message.redeliver_after
                    return False
                if self.queue and self.queue[0] is message:
                    self.queue.popleft()
                return True
            self.failures += 1
            self.due = now + delay_after(self.failures)
            self.last_error = error
            return False

    def view(self, now: float) -> dict[str, Any]:
        with self.lock:
            return {"pending": len(self.queue), "paused": self.paused, "failures": self.failures,
                    "nextAttemptAt": iso(self.due) if self.queue and self.due > now else None,
                    "lastError": self.last_error, "faults": self.faults.view(now)}
