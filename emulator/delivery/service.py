"""`Delivery`: every destination's lane, run by one background thread with its own event loop.

Request threads hand messages over with `enqueue()` (after their logs are recorded, so a delivery's
status update always lands after the log it updates); the queue rows go to the store first, and
callers that must not answer before a message is durable wait for `LogStore.committed`. At start the
queue is read back from the store, so a restart (even after `kill -9`) delivers what was pending.
Waiting for a retry reads the emulator's clock: advancing it makes the retry due at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

import orjson

from emulator import catalog
from emulator.clock import Clock
from emulator.delivery import http1, webhook
from emulator.delivery.lane import Attempt, Faults, Lane, Message
from emulator.delivery.webhook import Verification
from emulator.destinations import Destinations
from emulator.ehr import SyntheticEHR
from emulator.errors import ControlError
from emulator.fhir import notifications
from emulator.ids import new_id
from emulator.routing import next_id
from emulator.settings import FHIR, Destination, Settings
from emulator.store import Exchange, Log, LogStatus, LogStore, LogType

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOSE_WITHIN = 10.0  # real seconds close() waits for the delivery thread
POLL = 0.05  # real seconds between looks at the clock while a retry is due later (the clock may jump)
EHR = Destination()  # the synthetic EHR ("Redox EMR") is the source of every push
_JSON_HEADERS = [(b"content-type", b"application/json")]
_FHIR_HEADERS = [(b"content-type", webhook.FHIR_JSON.encode())]


class Delivery:
    def __init__(self, settings: Settings, clock: Clock, store: LogStore, destinations: Destinations,
                 ehr: SyntheticEHR | None = None) -> None:
        self.clock = clock
        # FHIR notifications name the EHR's patient by the id its FHIR API reads
        self._key_for = notifications.key_finder(ehr) if ehr is not None else None
        self.store = store
        self.destinations = destinations
        self.timeout = settings.delivery_timeout
        self.verifications: dict[str, Verification] = {}
        self._lanes: dict[str, Lane] = {}
        self._lock = threading.Lock()  # guards _lanes and start-up
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client = http1.Client()  # used on the delivery thread only
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._timers: list[tuple[float, int, Callable[[], object], object]] = []  # (when, order, action, owner)
        self._timer_ids = itertools.count()
        self._timer_task: concurrent.futures.Future[None] | None = None
        self._timer_wake = asyncio.Event()
        self._forging = 0  # forged posts in flight (outside every queue)
        self._firing = 0  # timers taken off the list whose action (a push) has not yet queued its message
        restored = self._restore()
        if restored:
            log.info("delivery: %d message(s) still queued from the last run", restored)

    # ---- the background thread --------------------------------------------------------------
    def _ensure_running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(ready,), name="delivery", daemon=True)
                self._thread.start()
                ready.wait()
            assert self._loop is not None
            return self._loop

    def _run(self, ready: threading.Event) -> None:
        loop = _new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        ready.set()
        loop.run_forever()

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure_running())

    def close(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def stop() -> None:
            # Every task on this loop: lanes, timers, handshakes and forged posts. Python 3.11's
            # wait_for swallows a cancel that arrives in the turn its awaited future completes (a
            # wake-up or an answer landing as we close), and the task then goes on: cancel again
            # until each has ended.
            pending = asyncio.all_tasks() - {asyncio.current_task()}
            while pending:
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=0.1)
            self._client.close()
            await asyncio.sleep(0)  # let the transports finish closing before the loop does

        try:
            asyncio.run_coroutine_threadsafe(stop(), loop).result(CLOSE_WITHIN)
        except TimeoutError:  # our bug; the queue is in the store, so nothing is lost by going on
            log.error("delivery: still busy %g s after close; left running", CLOSE_WITHIN)
            return
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(CLOSE_WITHIN)
        if not self._thread.is_alive():
            loop.close()
        self._loop = None

    # ---- lanes ---------------------------------------------------------------------------------
    def _lane(self, destination_id: str) -> Lane:
        lane = self._lanes.get(destination_id)
        if lane is not None:
            return lane
        loop = self._ensure_running()
        with self._lock:
            lane = self._lanes.get(destination_id)
            if lane is None:
                lane = self._lanes[destination_id] = Lane(destination_id)
                # Not waited for (this may be the delivery thread itself): a lane's first look at its
                # queue comes after it starts, so nothing put in meanwhile is missed.
                loop.call_soon_threadsafe(self._start_lane, lane)
        return lane

    def _start_lane(self, lane: Lane) -> None:
        lane.loop, lane.event = asyncio.get_running_loop(), asyncio.Event()
        self._tasks[lane.destination_id] = asyncio.create_task(self._drive(lane), name=lane.destination_id)

    async def _drive(self, lane: Lane) -> None:
        assert lane.event is not None
        while True:
            lane.event.clear()  # before looking: a wake-up from now on is not lost
            attempt, wait = lane.next_attempt(self.clock.now())
            if attempt is None:
                timeout = None if wait is None else min(wait, POLL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.event.wait(), timeout)
                continue
            try:
                await self._attempt(lane, attempt)
            except Exception:  # our bug: logged, and the lane goes on (the message is retried)
                log.exception("delivery to %s failed unexpectedly", lane.destination_id)
                lane.settle(attempt, False, "internal emulator error", self.clock.now())

    async def _attempt(self, lane: Lane, attempt: Attempt) -> None:
        destination = self.destinations.get(lane.destination_id)
        message = attempt.message
        attempt_id, at = new_id(), self.clock.now()
        fhir = message.fhir
        if not fhir:  # a FHIR Bundle carries no Meta: the same bytes on every attempt
            message.body["Meta"]["Logs"][0]["AttemptID"] = attempt_id
        raw = orjson.dumps(message.body)
        if destination is None or destination.url is None:
            answer = webhook.Answer(0, b"", "the destination has no webhook URL any more", 0.0)
        elif attempt.outage is not None:
            answer = _scripted_failure(attempt.outage, self.timeout)
        else:
            token = webhook.WRONG_TOKEN if attempt.wrong_token else destination.verification_token
            answer = await webhook.deliver(self._client, destination.url, raw, token, self.timeout,
                                           webhook.FHIR_JSON if fhir else webhook.JSON)
        done = lane.settle(attempt, answer.ok, answer.error or (None if answer.ok else f"answered {answer.status}"),
                           self.clock.now())
        token_shown = b"[REDACTED: a wrong token, scripted]" if attempt.wrong_token else b"[REDACTED]"
        url = (destination.url if destination else None) or ""
        exchange = Exchange(
            id=self.store.next_exchange_id(), at=at, method="POST", path=url,
            status=answer.status, latency_ms=answer.latency_ms, client=lane.destination_id, direction="out",
            request_headers=[*(_FHIR_HEADERS if fhir else _JSON_HEADERS), (b"verification-token", token_shown)],
            request_body=raw, response_body=answer.body if answer.error is None else answer.error.encode(),
            scenario=message.note)
        self.store.record_attempt(exchange, message.log_id, attempt_id,
                                  LogStatus.SUCCEEDED if answer.ok else None)
        if done:
            self.store.dequeue(message.seq)

    # ---- putting messages in ------------------------------------------------------------------
    def enqueue(self, deliveries: Iterable[tuple[Destination, dict[str, Any], Log]], *, redeliver: int = 0,
                redeliver_after: float = 0.0, note: dict[str, Any] | None = None) -> None:
        """Queue each (destination, event, its log): the event with Meta filled in for that destination
        (a FHIR destination's notification Bundle as it is)."""
        woken: dict[str, Lane] = {}
        for destination, body, entry in deliveries:
            if destination.format == FHIR and body.get("resourceType") == "Bundle":
                queued = body
            else:
                meta = dict(body.get("Meta") or {})
                meta["Destinations"] = [{"ID": destination.id, "Name": destination.name}]
                meta["Logs"] = [{"ID": entry.id, "AttemptID": None}]
                queued = {**body, "Meta": meta}
            message = Message(self.store.next_queue_seq(), entry.id, queued,
                              redeliver=redeliver, redeliver_after=redeliver_after, note=note)
            self.store.enqueue(message.seq, entry.id, destination.id, orjson.dumps(message.body))
            lane = self._lane(destination.id)
            with lane.lock:
                lane.queue.append(message)
            woken[destination.id] = lane
        for lane in woken.values():
            lane.wake()

    def push(self, events: list[dict[str, Any]], destination_ids: list[str] | None = None, *, redeliver: int = 0,
             redeliver_after: float = 0.0, note: dict[str, Any] | None = None,
             notification: tuple[str, str] | None = None) -> list[Log]:
        """Send events from the synthetic EHR to every subscribed webhook destination (or the given ones).

        A destination with `format: fhir` gets each event's FHIR notification (`notification`: that one,
        for a push by FHIR name, which goes to FHIR destinations only); a named destination that cannot
        take an event raises ControlError before anything is recorded.
        Returns one RECEIVE log per event and destination, recorded before anything is delivered.
        """
        logs: list[Log] = []
        deliveries: list[tuple[Destination, dict[str, Any], Log]] = []
        for event in events:
            given = event.get("Meta")
            meta: dict[str, Any] = given if isinstance(given, dict) else {}
            model, kind = catalog.canonical(str(meta.get("DataModel")), str(meta.get("EventType")))
            if notification is None:
                targets = self.targets(model, kind, destination_ids)
            else:
                targets = self.fhir_targets(notification, destination_ids)
            for destination in targets:
                now = self.clock.now()
                test = meta.get("Test") if isinstance(meta.get("Test"), bool) else None
                body = {**event, "Meta": {**meta, "Source": {"ID": EHR.id, "Name": EHR.name},
                                          "Message": {"ID": next_id()}, "Transmission": {"ID": next_id()}}}
                logged = (model, kind)
                if destination.format == FHIR:
                    made = notifications.for_destination(event, model, kind, destination.notifications,
                                                         (EHR.id, EHR.name), now, self._key_for, notification)
                    if made is None:
                        raise ControlError(f"destination {destination.name} ({destination.id}) takes FHIR "
                                           f"notifications, and {model}.{kind} has none (docs/fhir.md lists them)")
                    logged, body = made
                elif notification is not None:
                    raise ControlError(f"destination {destination.name} ({destination.id}) takes the data model's "
                                       "events (format: json), not FHIR notifications")
                entry = Log(new_id(), now, LogType.RECEIVE, LogStatus.PENDING, *logged, EHR.id, EHR.name,
                            destination.id, destination.name, test)
                logs.append(entry)
                deliveries.append((destination, body, entry))
        self.store.record(None, logs)
        self.enqueue(deliveries, redeliver=redeliver, redeliver_after=redeliver_after, note=note)
        return logs

    def forge(self, destination: Destination, event: dict[str, Any], token: str,
              note: dict[str, Any] | None = None) -> concurrent.futures.Future[webhook.Answer]:
        """One POST that is not Redox's (a wrong verification-token): no log, no queue, no retry."""
        with self._lock:
            self._forging += 1
        future = self._submit(self._forge(destination, event, token, note))

        def done(_: object) -> None:
            with self._lock:
                self._forging -= 1

        future.add_done_callback(done)
        return future

    async def _forge(self, destination: Destination, event: dict[str, Any], token: str,
                     note: dict[str, Any] | None) -> webhook.Answer:
        assert destination.url is not None
        at = self.clock.now()
        fhir = False
        if destination.format == FHIR:  # forged as the notification a FHIR destination would get
            given = event.get("Meta")
            meta: dict[str, Any] = given if isinstance(given, dict) else {}
            made = notifications.for_destination(event, str(meta.get("DataModel")), str(meta.get("EventType")),
                                                 destination.notifications, (EHR.id, EHR.name), at, self._key_for)
            if made is not None:
                event, fhir = made[1], True
        raw = orjson.dumps(event)
        answer = await webhook.deliver(self._client, destination.url, raw, token, self.timeout,
                                       webhook.FHIR_JSON if fhir else webhook.JSON)
        self.store.record(Exchange(
            id=self.store.next_exchange_id(), at=at, method="POST", path=destination.url, status=answer.status,
            latency_ms=answer.latency_ms, client=destination.id, direction="out",
            request_headers=[*(_FHIR_HEADERS if fhir else _JSON_HEADERS),
                             (b"verification-token", b"[REDACTED: a wrong token, scripted]")],
            request_body=raw, response_body=answer.body if answer.error is None else answer.error.encode(),
            scenario=note))
        return answer

    # ---- timers on the emulator's clock (scenario pushes) ------------------------------------------
    def at(self, when: float, action: Callable[[], object], owner: object = None) -> None:
        """Run `action` on the delivery thread once the emulator's clock reaches `when`."""
        loop = self._ensure_running()
        with self._lock:
            self._timers.append((when, next(self._timer_ids), action, owner))
            self._timers.sort(key=lambda t: (t[0], t[1]))
            if self._timer_task is None:
                self._timer_task = asyncio.run_coroutine_threadsafe(self._run_timers(), loop)
        loop.call_soon_threadsafe(self._timer_wake.set)

    def cancel(self, owner: object) -> None:
        """Forget the timers `owner` set."""
        with self._lock:
            self._timers = [t for t in self._timers if t[3] is not owner]

    async def _run_timers(self) -> None:
        while True:
            self._timer_wake.clear()
            now = self.clock.now()
            with self._lock:
                due = [t for t in self._timers if t[0] <= now]
                self._timers = [t for t in self._timers if t[0] > now]
                wait = self._timers[0][0] - now if self._timers else None
                self._firing += len(due)  # until each has queued its message, delivery is not idle
            for _, _, action, _ in due:
                try:
                    action()
                except Exception:  # one broken push must not stop the others
                    log.exception("a scheduled delivery action failed")
                finally:
                    with self._lock:
                        self._firing -= 1
            if due:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), None if wait is None else min(wait, POLL))

    def targets(self, model: str, event: str, destination_ids: list[str] | None = None) -> list[Destination]:
        """Webhook destinations an event goes to: the named ones, else every one subscribed to it."""
        if destination_ids is not None:
            found = [self.destinations.get(i) for i in destination_ids]
            return [d for d in found if d is not None and d.url is not None]
        return [d for d in self.destinations.all() if d.url is not None and d.subscribes(model, event)]

    def fhir_targets(self, notification: tuple[str, str], destination_ids: list[str] | None = None
                     ) -> list[Destination]:
        """Webhook destinations a FHIR notification goes to: the named ones, else every FHIR one subscribed."""
        if destination_ids is not None:
            return self.targets(*notification, destination_ids)
        return [d for d in self.destinations.all()
                if d.url is not None and d.format == FHIR and d.subscribes_to(*notification)]

    def _restore(self) -> int:
        """The queue as the store kept it: pending messages go out again, in order."""
        rows = self.store.queued()
        for seq, log_id, destination_id, body in rows:
            if self.destinations.get(destination_id) is None:
                log.warning("delivery: queued message %s is for unknown destination %s; kept, not sent",
                            log_id, destination_id)
                continue
            lane = self._lane(destination_id)
            with lane.lock:
                lane.queue.append(Message(seq, log_id, orjson.loads(body)))
            lane.wake()
        return len(rows)

    def next_due(self) -> float | None:
        """When delivery next has work (emulator clock; now or earlier: busy now); None when idle.

        The harness fast-forwards the clock to this time so that back-off and scheduled pushes
        run at once, and knows every push is settled when it is None."""
        now = self.clock.now()
        with self._lock:
            if self._forging or self._firing:  # work between the timer list and a lane's queue
                return now
            times = [self._timers[0][0]] if self._timers else []
        for lane in list(self._lanes.values()):
            with lane.lock:
                if lane.queue and not lane.paused:
                    times.append(max(lane.due, now) if lane.failures or lane.due else now)
        return min(times) if times else None

    # ---- controls ---------------------------------------------------------------------------------
    def status(self, destination_id: str) -> dict[str, Any]:
        lane = self._lanes.get(destination_id)
        now = self.clock.now()
        view = lane.view(now) if lane else Lane(destination_id).view(now)
        verification = self.verifications.get(destination_id)
        view["verification"] = verification.view() if verification else None
        return view

    def pending(self, destination_id: str) -> list[dict[str, Any]]:
        lane = self._lanes.get(destination_id)
        if lane is None:
            return []
        with lane.lock:
            return [m.view() for m in lane.queue]

    def pause(self, destination_id: str) -> None:
        lane = self._lane(destination_id)
        with lane.lock:
            lane.paused = True

    def resume(self, destination_id: str) -> None:
        lane = self._lane(destination_id)
        with lane.lock:
            lane.paused = False
        lane.wake()

    def retry_now(self, destination_id: str) -> None:
        """Try the head message at once, whatever the back-off says."""
        lane = self._lane(destination_id)
        with lane.lock:
            lane.due = 0.0
        lane.wake()

    def purge(self, destination_id: str) -> int:
        """Drop every queued message; their logs become FAILED (they will not be retried)."""
        lane = self._lanes.get(destination_id)
        if lane is None:
            return 0
        with lane.lock:
            dropped = list(lane.queue)
            lane.queue.clear()
            lane.failures, lane.due = 0, 0.0
        for message in dropped:
            self.store.dequeue(message.seq)
            self.store.update_status(message.log_id, LogStatus.FAILED)
        lane.wake()
        return len(dropped)

    def script(self, destination_id: str, *, redeliver: int = 0, out_of_order: int = 0, wrong_token: int = 0,
               outage_seconds: float = 0.0) -> Faults:
        """Add faults to the next deliveries (see `Faults`); the outage starts now on the emulator's clock."""
        lane = self._lane(destination_id)
        with lane.lock:
            lane.faults.redeliver += redeliver
            lane.faults.out_of_order += out_of_order
            lane.faults.wrong_token += wrong_token
            if outage_seconds:
                lane.faults.outage_until = max(lane.faults.outage_until, self.clock.now() + outage_seconds)
            faults = Faults(lane.faults.redeliver, lane.faults.out_of_order, lane.faults.wrong_token,
                            lane.faults.outage_until)
        lane.wake()
        return faults

    def add_outage(self, destination_id: str, window: tuple[float, float, str | int, object]) -> None:
        """A scenario's window (start, end, failure, owner) in which the destination cannot be reached."""
        lane = self._lane(destination_id)
        with lane.lock:
            lane.faults.windows.append(window)
        lane.wake()

    def remove_outages(self, owner: object) -> None:
        for lane in list(self._lanes.values()):
            with lane.lock:
                lane.faults.windows = [w for w in lane.faults.windows if w[3] is not owner]

    def reset(self) -> None:
        """Nothing queued, no faults, no timers, no verdicts (the store is cleared by the sandbox)."""
        with self._lock:
            self._timers = []
        for lane in list(self._lanes.values()):
            with lane.lock:
                lane.queue.clear()
                lane.paused, lane.failures, lane.due, lane.last_error = False, 0, 0.0, None
                lane.faults = Faults()
        self.verifications.clear()

    # ---- the verification handshake -------------------------------------------------------------
    def verify(self, destination: Destination, form: str | None = None) -> concurrent.futures.Future[Verification]:
        """Start the handshake; the future gives the verdict, also kept in `verifications` and logged."""
        return self._submit(self._verify(destination, form or destination.handshake))

    async def _verify(self, destination: Destination, form: str) -> Verification:
        assert destination.url is not None
        at = self.clock.now()
        verdict, answer, sent = await webhook.handshake(self._client, destination.id, destination.url,
                                                        destination.verification_token, form, self.timeout, at)
        self.verifications[destination.id] = verdict
        self.store.record(Exchange(
            id=self.store.next_exchange_id(), at=at, method=form.upper(), path=destination.url,
            status=answer.status, latency_ms=answer.latency_ms, client=destination.id, direction="out",
            request_headers=[(b"application-name", b"RedoxEngine")],
            request_body=sent.replace(destination.verification_token.encode(), b"[REDACTED]"),
            response_body=answer.body if answer.error is None else answer.error.encode()))
        level = logging.INFO if verdict.ok else logging.WARNING
        log.log(level, "verification of destination %s (%s) by %s: %s", destination.name, destination.url,
                form.upper(), verdict.explanation)
        return verdict



def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it comes with uvicorn[standard]): cheaper socket writes per delivery."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _scripted_failure(failure: str | int, timeout: float) -> webhook.Answer:
    """An outage's attempt, answered without touching the network."""
    if failure == "timeout":
        return webhook.Answer(0, b"", f"no answer within {timeout:g} s (timed out: scripted outage)", 0.0)
    if isinstance(failure, int):
        return webhook.Answer(failure, b'{"error":"scripted outage"}', None, 0.0)
    return webhook.Answer(0, b"", "could not connect: connection refused (scripted outage)", 0.0)
