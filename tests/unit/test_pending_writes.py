"""Outcome writes survive a Redis outage within documented bounds."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import (
    BusyLoadingError,
    DataError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ari_app.config.history_settings import HistorySettings
from ari_app.core.models import Contact, Direction
from ari_app.history.store import HistoryUnavailable, RedisHistoryStore
from ari_app.record.pending_writes import PendingWrites, is_transient


class FlakyStore:
    def __init__(self) -> None:
        self.up = False
        self.rows: list[int] = []

    def writer(self, value: int):
        async def write() -> None:
            if not self.up:
                raise RedisConnectionError("down")
            self.rows.append(value)
        return write


async def test_writes_wait_while_redis_is_down_and_land_in_order_when_it_returns():
    store, pending = FlakyStore(), PendingWrites()
    for value in range(3):
        assert await pending.write(f"w{value}", store.writer(value)) is False
    assert await pending.flush() == 0 and len(pending.queue) == 3

    store.up = True
    assert await pending.flush() == 3
    assert store.rows == [0, 1, 2] and pending.written_late == 3


async def test_new_writes_queue_behind_older_ones_to_keep_order():
    store, pending = FlakyStore(), PendingWrites()
    await pending.write("old", store.writer(1))
    store.up = True
    assert await pending.write("new", store.writer(2)) is False  # not ahead of the old one
    await pending.flush()
    assert store.rows == [1, 2]


async def test_bounds_drop_the_oldest_and_count_them():
    now = [0.0]
    dropped: list[int] = []
    store = FlakyStore()
    pending = PendingWrites(max_entries=2, max_age_s=10, clock=lambda: now[0],
                            on_dropped=dropped.append)
    for value in range(3):
        await pending.write("w", store.writer(value))
    assert pending.dropped == 1 and dropped == [1]
    now[0] = 11.0
    store.up = True
    assert await pending.flush() == 0  # both remaining are older than max_age_s
    assert pending.dropped == 3 and store.rows == []


# -- a write Redis refuses for good (a real redis-server, an ACL user without XADD) -----------

NUMBER = "+79161234567"
LOG = "caseline:test:decisions"


@pytest.fixture
async def no_xadd(redis: Redis) -> AsyncIterator[Redis]:
    """A client logged in as an ACL user that may do everything but XADD."""
    user, password = f"no-xadd-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all", "-xadd")
    kwargs = redis.connection_pool.connection_kwargs
    client = Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0),
                   username=user, password=password)
    try:
        yield client
    finally:
        await client.aclose()
        await redis.execute_command("ACL", "DELUSER", user)


async def test_a_write_redis_refuses_for_good_is_dropped_and_the_writes_behind_it_land(redis, no_xadd):
    history = RedisHistoryStore.from_settings(no_xadd, HistorySettings())
    refused: list[int] = []
    pending = PendingWrites(on_refused=refused.append)
    store = FlakyStore()  # a short outage first, so the next writes queue behind it
    assert await pending.write("outcome before the outage", store.writer(0)) is False
    started = datetime.now(UTC)
    for i in range(3):
        await pending.write(f"decision log of call {i}", lambda i=i: no_xadd.xadd(LOG, {"call": str(i)}))
        await pending.write(f"history of call {i}", lambda i=i: history.record(
            NUMBER, Contact(started + timedelta(seconds=i), Direction.INBOUND, answered=True)))
    store.up = True

    assert await pending.flush() == 4  # the outcome and the 3 history writes; the XADDs dropped
    assert not pending.queue and pending.refused == 3 and refused == [1, 1, 1]
    assert await redis.zcard(history.key(NUMBER)) == 3
    assert await redis.exists(LOG) == 0

    # with nothing queued: refused at once, and the next write lands at once
    assert await pending.write("decision log of call 3", lambda: no_xadd.xadd(LOG, {"call": "3"})) is False
    assert await pending.write("history of call 3", lambda: history.record(
        NUMBER, Contact(started + timedelta(seconds=3), Direction.INBOUND, answered=False))) is True
    assert pending.refused == 4 and not pending.queue
    assert await redis.zcard(history.key(NUMBER)) == 4


@pytest.mark.parametrize("error", [
    RedisConnectionError("down"), BusyLoadingError("loading"), ReadOnlyError("replica"),
    OutOfMemoryError("maxmemory"), ResponseError("BUSY Redis is busy running a script"),
    RedisTimeoutError("slow"), TimeoutError(), ConnectionRefusedError(),
    HistoryUnavailable("history write failed"),
])
def test_transient_errors_are_retried(error):
    if isinstance(error, HistoryUnavailable):
        error.__cause__ = RedisConnectionError("down")
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    NoPermissionError("no XADD"), ResponseError("WRONGTYPE"), DataError("bad value"), ValueError("bug"),
])
def test_other_errors_are_not(error):
    assert not is_transient(error)
    wrapped = HistoryUnavailable("history write failed")
    wrapped.__cause__ = error
    assert not is_transient(wrapped)
