"""The callback dialler: places due callback requests while the company is open.

Every `poll_s` it takes the due requests (record/callbacks.py: highest priority first, then
the oldest, so an IVR caller who chose a call-back keeps their turn) and, for each whose
person is free, rings that person first: the request's holder, or, when it names nobody
routing.yaml can ring, the first free operator. Once they answer it calls the client
through the trunk (`callbacks.dial`) showing the company's caller ID
(`company.caller_id`), bridges the two, and records the call in history as an outbound call
by that person, answered or not: the client's return call then classifies as `callback`
and goes to that person. `dial_now` places one request at once, whatever the hour (POST
/callbacks/{id}/dial, `caseline callbacks dial ID`).

A request that names nobody (an IVR caller who chose a call-back rather than waiting, a
website form for a new number) keeps its turn when `keep_turn` is on: instead of the first
free operator, a stand-in for the client waits in the operators' queue at the request's
priority (`Local/<QUEUE_PRIO>@caseline-callback-turn/n`, dialplan/extensions.conf), behind
the callers who were there first and ahead of those who come later. The operator the
queue connects to it is the person who calls the client back.

The legs live in our Stasis app, watched through the app's subscriptions like a call's
legs (so a resync never takes them for orphans). A person on a call (Asterisk's endpoint
view, our Redis claims) is not rung; the request waits for the next poll.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from ari_app.ari.interface import AriError, AriUnavailable, ChannelGone, Event
from ari_app.config.callback_settings import CallbackSettings
from ari_app.core.decide import is_open
from ari_app.core.dialplan import CALLBACK_TURN_CONTEXT
from ari_app.core.models import Contact, DialResult, Direction
from ari_app.core.numbers import mask
from ari_app.core.policy import Policy
from ari_app.core.ports import Clock, HistoryStore, NodePresence, Presence
from ari_app.history.store import HistoryUnavailable
from ari_app.record.callbacks import CallbackRequest, CallbackStore, Status
from ari_app.record.pending_writes import PendingWrites
from ari_app.stasis.app import StasisApp
from ari_app.stasis.call import ENDED, Call, channel_of

log = logging.getLogger("caseline.stasis.callbacks")

LEG_START_TIMEOUT_S = 5.0  # /channels/create answers before the leg's StasisStart
MAX_TALK_S = 4 * 3600
LEASE_S = 120.0  # a dialling request is ours this long, renewed every poll
# Asterisk's dial outcome of a leg (as stasis/execute.py reads it): Dial status, else cause
_DIAL_RESULT = {"BUSY": DialResult.BUSY, "NOANSWER": DialResult.NO_ANSWER,
                "CHANUNAVAIL": DialResult.UNAVAILABLE, "CONGESTION": DialResult.UNAVAILABLE,
                "CANCEL": DialResult.NO_ANSWER, "ANSWER": DialResult.ANSWERED}
_CAUSE_RESULT = {17: DialResult.BUSY, 18: DialResult.NO_ANSWER, 19: DialResult.NO_ANSWER}
_REDIS_DOWN = (RedisError, OSError, HistoryUnavailable)
QUEUE_TURN = "queue"  # the "person" of a request waiting its turn in the operators' queue


class _PersonLeft(Exception):
    """The person hung up while the client's phone rang."""


def _stop_if_cancelled() -> None:
    """A cancel that arrived during a Redis request can come out as a connection error
    (redis-py); the task must stop all the same."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


def endpoint_of(policy: Policy, person: str) -> str | None:
    """Any person's endpoint, operators included (they stand in for a request without holder)."""
    found = policy.person(person)
    if found is not None:
        return found[1].endpoint
    operator = policy.people.operators.get(person)
    return operator.endpoint if operator else None


class CallbackDialer:
    def __init__(self, app: StasisApp, store: CallbackStore, *, policy: Callable[[], Policy],
                 history: HistoryStore, presence: Presence, settings: CallbackSettings,
                 clock: Clock, pending: PendingWrites | None = None,
                 on_finished: Callable[[CallbackRequest, str], None] | None = None,
                 nodes: NodePresence | None = None) -> None:
        self.app = app
        self.ari = app.ari
        self.store = store
        self.policy = policy
        self.history = history
        self.presence = presence
        self.nodes = nodes  # presence across Asterisk nodes (presence.shared); None: this node's
        self.settings = settings
        self.clock = clock
        self.pending = pending
        self.on_finished = on_finished  # (request, result) after each attempt: metrics, tests
        self.owner = secrets.token_hex(6)  # this process, as the holder of leases
        self.lease = timedelta(seconds=max(LEASE_S, 3 * settings.poll_s))
        self.active: set[str] = set()  # requests this process is placing
        self._wake = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self.running = asyncio.Event()  # run() can place requests (dial_now needs it)
        self.turns: set[str] = set()  # of `active`: the requests waiting in the queue
        self._leg_names: dict[str, str] = {}  # our legs' Asterisk channel names, while placed

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled; each placement is a task of its own."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            self.running.set()
            try:
                while True:
                    try:
                        await self.poll()
                    except _REDIS_DOWN as e:
                        log.warning("callbacks: Redis unavailable (%s); trying again", type(e).__name__)
                    except Exception:  # the dialler must outlive a bug in one poll
                        log.exception("callbacks: poll failed")
                    _stop_if_cancelled()
                    self._wake.clear()
                    try:
                        async with asyncio.timeout(self.settings.poll_s):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
            finally:
                self._tasks = None
                self.running.clear()

    def wake(self) -> None:
        """Look at the due requests now (a request was just filed)."""
        self._wake.set()

    async def poll(self) -> None:
        if self.app.replaced or not self.app.connected.is_set():
            return  # no ARI: nothing can be placed; due requests wait
        now = self.clock.now()
        for request_id in list(self.active):
            await self.store.renew(request_id, now + self.lease)
        policy = self.policy()
        opened = is_open(policy, now)
        for req in await self.store.due(now):
            if req.id in self.active:
                continue
            if now >= req.expires_at:
                await self._expire(req, now)
            elif opened and self._has_room(req, policy):
                await self._start(req, policy, now)

    def _takes_turn(self, req: CallbackRequest, policy: Policy) -> bool:
        return self.settings.keep_turn and not (req.holder and endpoint_of(policy, req.holder))

    def _has_room(self, req: CallbackRequest, policy: Policy) -> bool:
        """Turns waiting in the queue are bounded apart: they hold no person, only their
        place, and must not keep other requests from being placed meanwhile."""
        if self._takes_turn(req, policy):
            return len(self.turns) < self.settings.max_turns
        return len(self.active - self.turns) < self.settings.max_parallel

    # --- on demand -----------------------------------------------------------------------

    async def dial_now(self, request_id: str) -> tuple[int, dict[str, object]]:
        """Place one open request now, whatever the hour: (HTTP status, answer)."""
        req = await self.store.get(request_id)
        if req is None:
            return 404, {"error": "no such callback request"}
        now = self.clock.now()
        if req.id in self.active or req.status is Status.DIALLING:
            return 409, {"error": "already dialling", "id": req.id}
        if req.status is Status.OPEN and now >= req.expires_at:
            await self._expire(req, now)
            return 409, {"error": "expired", "id": req.id}
        if req.status is not Status.OPEN:
            return 409, {"error": f"the request is {req.status}", "id": req.id}
        if not self.running.is_set() or self.app.replaced or not self.app.connected.is_set():
            return 503, {"error": "not connected to Asterisk"}
        person, why = await self._start(req, self.policy(), now)
        if person is None:
            return 409, {"error": why, "id": req.id}
        return 202, {"ok": True, "id": req.id, "status": str(Status.DIALLING), "person": person}

    # --- one request ---------------------------------------------------------------------

    async def _expire(self, req: CallbackRequest, now: datetime) -> None:
        if req.status is Status.DIALLING:  # its dialler died and its lease ran out
            if not await self.store.claim(req.id, now, now + self.lease, self.owner):
                return
            req = replace(req, status=Status.DIALLING)
        if await self.store.move(req, Status.EXPIRED, owner=self.owner, result="expired",
                                 updated_at=f"{now.timestamp():.3f}"):
            log.info("callback %s for %s expired", req.id, mask(req.number))

    async def _start(self, req: CallbackRequest, policy: Policy,
                     now: datetime) -> tuple[str | None, str]:
        """Claim a free person (or the queue, for a turn) and the request, then place it in
        a task: (person, why not)."""
        claim = f"callback-{req.id}"
        if self._takes_turn(req, policy):
            return await self._start_turn(req, now)
        holder = req.holder if req.holder and endpoint_of(policy, req.holder) else None
        candidates = [holder] if holder else list(policy.people.operators)
        person = None
        ttl = self.settings.holder_ring_s + self.settings.client_ring_s + 60
        for candidate in candidates:
            endpoint = endpoint_of(policy, candidate)
            if endpoint and not await self._busy(endpoint) and await self.presence.claim(candidate, claim, ttl):
                person = candidate
                break
        if person is None:
            return None, f"{holder} is on a call" if holder else "no operator is free"
        if not await self.store.claim(req.id, now, now + self.lease, self.owner):
            await self.presence.release(person, claim)
            return None, "taken by another instance"
        assert self._tasks is not None
        self.active.add(req.id)
        self._tasks.create_task(self._place(replace(req, status=Status.DIALLING), person, policy),
                                name=f"callback-{req.id}")
        return person, ""

    async def _start_turn(self, req: CallbackRequest, now: datetime) -> tuple[str | None, str]:
        """The request's turn in the operators' queue: whoever the queue gives it calls back."""
        if not await self.store.claim(req.id, now, now + self.lease, self.owner):
            return None, "taken by another instance"
        assert self._tasks is not None
        self.active.add(req.id)
        self.turns.add(req.id)
        self._tasks.create_task(self._place(replace(req, status=Status.DIALLING), QUEUE_TURN,
                                            self.policy()), name=f"callback-{req.id}")
        return QUEUE_TURN, ""

    async def _busy(self, endpoint: str) -> bool:
        """A channel on the endpoint here, or (shared presence) on any other live node."""
        try:
            details = await self.ari.endpoint(endpoint)
        except AriError:
            details = {}  # unknown here (maybe another node's phone): the dial itself will tell
        if details.get("channel_ids"):
            return True
        return self.nodes is not None and await self.nodes.busy(endpoint)

    async def _place(self, req: CallbackRequest, person: str, policy: Policy) -> None:
        watcher = Call(self.ari, {"id": f"callback-{req.id}"}, self.app.subscriptions,
                       lambda: self.app.replaced)
        attempt = req.attempts + 1
        legs = (f"cb-{req.id}-{attempt}-person", f"cb-{req.id}-{attempt}-client")
        bridge_id = f"cb-{req.id}-{attempt}-bridge"
        result, talk_s, claimed = "error", 0, person
        try:
            if await self._called_in(req):
                result = "client_called_in"
            else:
                if person == QUEUE_TURN:
                    result, person = await self._wait_turn(watcher, req, policy, legs[0])
                if result != "turn_missed":
                    result, talk_s = await self._attempt(watcher, req, person, policy, legs,
                                                         bridge_id, rung=claimed == QUEUE_TURN)
        except asyncio.CancelledError:
            raise  # shutting down: the lease runs out and the request is placed again
        except Exception:  # one broken call-back must not stop the dialler
            _stop_if_cancelled()
            log.exception("callback %s failed", req.id)
        finally:
            await self._tear_down(watcher, legs, bridge_id)
            if claimed != QUEUE_TURN:
                await self.presence.release(person, f"callback-{req.id}")
            self.active.discard(req.id)
            self.turns.discard(req.id)
        # nothing below may raise: a failed task would stop the dialler's TaskGroup
        try:
            await self._finish(req, person, result, talk_s)
            if self.on_finished is not None:
                self.on_finished(req, result)
        except _REDIS_DOWN as e:
            _stop_if_cancelled()
            log.warning("callback %s: outcome %s not stored (%s); it is placed again when its "
                        "lease runs out", req.id, result, type(e).__name__)
        except Exception:
            _stop_if_cancelled()
            log.exception("callback %s: recording outcome %s failed", req.id, result)

    async def _called_in(self, req: CallbackRequest) -> bool:
        """The client reached one of us since filing: nothing to call back."""
        try:
            contacts = await self.history.recent(req.number, req.filed_at)
        except Exception:  # noqa: BLE001 - without history, call back anyway
            return False
        return any(c.direction is Direction.INBOUND and c.answered and c.at >= req.filed_at
                   for c in contacts)

    async def _wait_turn(self, watcher: Call, req: CallbackRequest, policy: Policy,
                         leg: str) -> tuple[str, str]:
        """Queue the client's stand-in at the request's priority until an operator takes it:
        ("", the operator, "" if unknown) or ("turn_missed", QUEUE_TURN)."""
        endpoint = f"Local/{min(max(req.priority, 0), 999):03d}@{CALLBACK_TURN_CONTEXT}/n"
        wait_s = self.settings.turn_wait_s
        # the operator's phone shows the client's number, as for a caller in the queue
        answered = await self._ring(watcher, leg, endpoint, wait_s, (req.number, "Callback"))
        if answered is not DialResult.ANSWERED:
            log.info("callback %s: no operator took its turn within %d s (%s)", req.id, wait_s, answered)
            return "turn_missed", QUEUE_TURN
        return "", await self._operator_on(leg, policy)

    async def _operator_on(self, leg: str, policy: Policy) -> str:
        """Who the queue connected to the stand-in: Queue() sets MEMBERINTERFACE on its caller,
        the Local channel's other half ("PJSIP/op1" -> "op1")."""
        other_half = self._leg_names.get(leg, "")
        if other_half.endswith(";1"):
            other_half = other_half[:-1] + "2"
        try:
            member = await self.ari.get_variable(leg, f"IMPORT({other_half},MEMBERINTERFACE)")
        except AriError:
            member = None
        resource = (member or "").partition("/")[2]
        if not resource:
            log.warning("callback: who took the turn of %s is unknown (MEMBERINTERFACE unset)", leg)
        return policy.people.by_endpoint().get(resource, resource)

    async def _attempt(self, watcher: Call, req: CallbackRequest, person: str, policy: Policy,
                       legs: tuple[str, str], bridge_id: str, *, rung: bool = False) -> tuple[str, int]:
        """Ring the person (unless the queue already connected them: `rung`), then the
        client; bridge them. (result, talk seconds)."""
        person_leg, client_leg = legs
        if not rung:
            endpoint = endpoint_of(policy, person) or ""
            # the person's phone shows whom they are about to call back
            answered = await self._ring(watcher, person_leg, endpoint, self.settings.holder_ring_s,
                                        (req.number, "Callback"))
            if answered is not DialResult.ANSWERED:
                return f"person_{answered}", 0
        try:  # music while the client's phone rings
            await self.ari.start_music(person_leg, policy.defaults.moh_class)
        except AriError:
            return "person_hung_up", 0
        company = policy.company  # no caller_id: what the trunk's endpoint sends by itself
        shown = (company.caller_id, company.name or company.caller_id) if company.caller_id else None
        dialled_at = self.clock.now()
        try:
            answered = await self._ring(watcher, client_leg, self.settings.endpoint(req.number),
                                        self.settings.client_ring_s, shown, originator=person_leg,
                                        also_ends=person_leg)
        except _PersonLeft:
            await self._remember(req, person, dialled_at, answered=False, talk_s=0)
            return "person_hung_up", 0
        if answered is not DialResult.ANSWERED:
            await self._remember(req, person, dialled_at, answered=False, talk_s=0)
            return f"client_{answered}", 0
        try:
            await self.ari.stop_music(person_leg)
        except AriError:
            pass
        started = time.monotonic()
        try:
            await self.ari.create_bridge(bridge_id)
            await self.ari.add_to_bridge(bridge_id, [person_leg, client_leg])
            await watcher.wait_for(lambda e: channel_of(e) in legs and e.get("type") in ENDED, MAX_TALK_S)
        except (AriError, TimeoutError):
            pass  # a leg left while we bridged (or a talk of hours): either way, it is over
        talk_s = int(time.monotonic() - started)
        await self._remember(req, person, dialled_at, answered=True, talk_s=talk_s)
        return "answered", talk_s

    async def _ring(self, watcher: Call, leg: str, endpoint: str, ring_s: int,
                    shown: tuple[str, str] | None, *, originator: str | None = None,
                    also_ends: str | None = None) -> DialResult:
        """Create `leg` on `endpoint` in our app and dial it, showing `shown` (number, name)
        to the phone: how the dial ended."""
        watcher.watch(leg)  # before we act: the leg's first events must reach us
        try:
            await self.ari.create_channel(endpoint, channel_id=leg, app_args="callback",
                                          originator=originator)
            started = await watcher.wait_for(
                lambda e: e.get("type") == "StasisStart" and channel_of(e) == leg, LEG_START_TIMEOUT_S)
            self._leg_names[leg] = str((started.get("channel") or {}).get("name", ""))
            if shown is not None:
                # chan_pjsip's From (and PAI) is the leg's connected line; `i`: set it, send no
                # update. Dialled without `caller`, which would overwrite it with that channel's ID.
                await self.ari.set_variable(leg, "CONNECTEDLINE(num,i)", shown[0])
                await self.ari.set_variable(leg, "CONNECTEDLINE(name,i)", shown[1])
            await self.ari.dial(leg, ring_s)
        except (AriError, TimeoutError):
            return DialResult.UNAVAILABLE  # an unregistered phone, a refused trunk

        def final(event: Event) -> bool:
            kind, channel = event.get("type"), channel_of(event)
            if channel == also_ends and kind in ENDED:
                return True
            if channel != leg:
                return False
            return (kind == "Dial" and event.get("dialstatus") in _DIAL_RESULT) or kind == "ChannelDestroyed"

        try:
            event = await watcher.wait_for(final, ring_s + 10)
        except TimeoutError:
            return DialResult.NO_ANSWER
        if channel_of(event) == also_ends and channel_of(event) != leg:
            raise _PersonLeft()
        if event.get("type") == "Dial":
            return _DIAL_RESULT[event["dialstatus"]]
        return _CAUSE_RESULT.get(int(event.get("cause") or 0), DialResult.UNAVAILABLE)

    async def _remember(self, req: CallbackRequest, person: str, at: datetime, *,
                        answered: bool, talk_s: int) -> None:
        """The client was called: an outbound contact by `person`, so their return call
        classifies as `callback` (core/history_class.py) and reaches that person."""
        contact = Contact(at, Direction.OUTBOUND, answered, person, talk_s if answered else 0)

        async def write() -> None:
            await self.history.record(req.number, contact)

        if self.pending is not None:
            await self.pending.write(f"history of callback {req.id}", write)
        else:
            await write()

    async def _finish(self, req: CallbackRequest, person: str, result: str, talk_s: int) -> None:
        now = self.clock.now()
        attempts = req.attempts if result == "client_called_in" else req.attempts + 1
        fields = {"result": result, "person": person, "attempts": attempts, "talk_s": talk_s,
                  "updated_at": f"{now.timestamp():.3f}"}
        if result in ("answered", "client_called_in"):
            to, due = Status.DONE, None
        elif attempts >= self.settings.max_attempts:
            to, due = Status.FAILED, None
        else:
            to, due = Status.OPEN, now + self.settings.retry_after
        moved = await self.store.move(req, to, owner=self.owner, due_at=due, **fields)
        log.info("callback %s for %s: %s by %s -> %s%s", req.id, mask(req.number), result, person,
                 to, "" if moved else " (changed meanwhile: not stored)")

    async def _tear_down(self, watcher: Call, legs: tuple[str, str], bridge_id: str) -> None:
        """Hang up what is left of our legs and the bridge (not when another process took
        our app over: it adopts the talk)."""
        if not self.app.replaced:
            for leg in legs:
                if leg in watcher.watched:
                    try:
                        await self.ari.hangup(leg)
                    except (ChannelGone, AriError, AriUnavailable):
                        pass  # gone already, or Asterisk away: its own hang-up ends the leg
            try:
                await self.ari.destroy_bridge(bridge_id)
            except (AriError, AriUnavailable):
                pass
        for leg in list(watcher.watched):
            watcher.unwatch(leg)
        for leg in legs:
            self._leg_names.pop(leg, None)
