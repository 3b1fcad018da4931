"""Call lifecycle events for the console's live view: a small in-process pub/sub.

The call path publishes (`decided`, `ended`; CallObserver does it) without ever waiting:
each subscriber (one per open `GET /events/calls` stream) has a bounded queue, and a
subscriber whose queue is full is dropped rather than allowed to grow or to slow the
publisher; its stream ends and the browser reconnects, starting again from a snapshot.

The feed also remembers when each live call started (the elapsed time the console shows)
and which calls ended a moment ago: a call's task reports its end just before it leaves
the app's table of calls, and a snapshot taken in between must not show it again.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

QUEUE_LIMIT = 256  # events a subscriber may lag behind before it is dropped
MAX_SUBSCRIBERS = 8  # open streams; each holds one of the API's 64 connections
_REMEMBERED = 4096  # start times / recent ends kept (a bound, far above live calls)

Event = dict[str, Any]


class Dropped(Exception):
    """The subscription ended: too slow to keep up, or the feed closed (shutdown)."""


class TooManySubscribers(Exception):
    pass


class Subscription:
    """One stream's queue; `with feed.subscribe() as s:` unsubscribes on leaving."""

    def __init__(self, limit: int, leave: Callable[[Subscription], None]) -> None:
        self._items: deque[Event] = deque()
        self._limit = limit
        self._leave = leave
        self._wake = asyncio.Event()
        self.closed = False

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self._leave(self)
        self.close()

    def offer(self, event: Event) -> bool:
        """Queue `event`; False (and closed) when the queue is full."""
        if self.closed:
            return False
        if len(self._items) >= self._limit:
            self.close()
            return False
        self._items.append(event)
        self._wake.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None after `timeout` seconds without one; Dropped when closed."""
        if not self._items and not self.closed:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                return None
        if self.closed:
            raise Dropped()
        return self._items.popleft() if self._items else None

    def drain(self) -> list[Event]:
        """Events already queued (a burst is answered with one snapshot)."""
        items = list(self._items)
        self._items.clear()
        return items


class LiveFeed:
    def __init__(self, *, queue_limit: int = QUEUE_LIMIT, max_subscribers: int = MAX_SUBSCRIBERS,
                 clock: Callable[[], float] = time.time) -> None:
        self.queue_limit = queue_limit
        self.max_subscribers = max_subscribers
        self.clock = clock
        self.dropped = 0  # subscribers dropped for being too slow
        self._subscribers: set[Subscription] = set()
        self._started: OrderedDict[str, float] = OrderedDict()  # call id -> epoch seconds
        self._ended: OrderedDict[str, None] = OrderedDict()

    # -- the call path's side: never blocks, never raises ----------------------------------

    def decided(self, call_id: str, started: float | None = None) -> None:
        self._remember(self._started, call_id, started if started is not None else self.clock())
        self.publish({"type": "decided", "call_id": call_id})

    def ended(self, call_id: str, outcome: str) -> None:
        self._started.pop(call_id, None)
        self._remember(self._ended, call_id, None)
        self.publish({"type": "ended", "call_id": call_id, "outcome": outcome, "at": self.clock()})

    def publish(self, event: Event) -> None:
        for subscription in list(self._subscribers):
            if not subscription.offer(event):
                self._subscribers.discard(subscription)
                self.dropped += 1

    @staticmethod
    def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > _REMEMBERED:
            table.popitem(last=False)

    # -- the streams' side -----------------------------------------------------------------

    def subscribe(self) -> Subscription:
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers()
        subscription = Subscription(self.queue_limit, self._subscribers.discard)
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def view(self, calls: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Live calls as the console shows them: with `started`, without calls just ended."""
        out = []
        now = self.clock()
        for call in calls:
            call_id = str(call.get("call_id", ""))
            if call_id in self._ended:
                continue
            started = self._started.get(call_id)
            if started is None:  # seen before its decision (identifying): from now on
                started = now
                self._remember(self._started, call_id, started)
            out.append({**call, "started": started})
        return out

    def close(self) -> None:
        """End every stream (the API is shutting down)."""
        for subscription in list(self._subscribers):
            subscription.close()
        self._subscribers.clear()
