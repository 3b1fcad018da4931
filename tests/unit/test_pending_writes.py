"""Outcome writes survive a Redis outage within documented bounds."""
from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError

from ari_app.record.pending_writes import PendingWrites


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
