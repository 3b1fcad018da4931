"""Callback requests in a real Redis: one open request per number, expiry, listing, the due
order, and the transitions two instances may race for."""
from __future__ import annotations

import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from ari_app.config.callback_settings import CallbackSettings
from ari_app.core.clock import FixedClock
from ari_app.record.callbacks import (
    DUE,
    OPEN_PREFIX,
    PREFIX,
    CallbackFiler,
    CallbackRequest,
    CallbackStore,
    Status,
)
from ari_app.record.pending_writes import PendingWrites

NOW = datetime(2025, 3, 12, 8, 0, tzinfo=UTC)
NUMBER = "+79161234567"
OTHER = "+79031112200"
SETTINGS = CallbackSettings(expire_after=timedelta(hours=24))


def filer(store: CallbackStore, at: datetime = NOW) -> CallbackFiler:
    return CallbackFiler(store, SETTINGS, clock=FixedClock(at))


def new(store: CallbackStore, number: str = NUMBER, *, at: datetime = NOW, priority: int = 50,
        holder: str = "mgr1") -> CallbackRequest:
    return filer(store, at).new(number, holder=holder, reason="hours.after_hours", priority=priority)


async def test_a_number_has_one_open_request(redis: Redis) -> None:
    store = CallbackStore(redis)
    first = new(store)
    assert await store.file(first) == first.id
    second = new(store, at=NOW + timedelta(minutes=5))
    assert await store.file(second) == first.id  # the open one, not a second request
    assert await store.get(second.id) is None
    assert await store.file(new(store, OTHER)) != first.id  # another number: its own

    # still open while it is being dialled
    assert await store.claim(first.id, NOW, NOW + timedelta(minutes=2), "me")
    assert await store.file(new(store)) == first.id
    dialling = replace(first, status=Status.DIALLING)
    assert await store.move(dialling, Status.DONE, owner="me", result="answered")
    third = new(store)
    assert await store.file(third) == third.id  # done: the number may file again
    assert await redis.get(OPEN_PREFIX + NUMBER) == third.id.encode()


async def test_the_stored_request_reads_back_whole(redis: Redis) -> None:
    store = CallbackStore(redis)
    req = replace(new(store), call_id="1741766400.12", reason="ivr:main:2 (abc.C)")
    await store.file(req)
    assert await store.get(req.id) == req
    assert await redis.ttl(OPEN_PREFIX + NUMBER) == 24 * 3600  # expire_after
    assert await redis.ttl(PREFIX + req.id) == 24 * 3600 + 7 * 86400  # + keep


async def test_only_strict_e164_becomes_a_key(redis: Redis) -> None:
    store = CallbackStore(redis)
    with pytest.raises(ValueError):
        await store.file(replace(new(store), number="+7916*"))
    assert await redis.keys("*") == []


async def test_listing_is_newest_first_and_shows_an_overdue_open_request_as_expired(redis: Redis) -> None:
    store = CallbackStore(redis)
    old = new(store, at=NOW - timedelta(hours=30))  # expired 6 hours ago, not swept yet
    recent = new(store, OTHER)
    await store.file(old)
    await store.file(recent)
    listed = await store.listing()
    assert [r.id for r in listed] == [recent.id, old.id]
    shown = [r.as_dict(NOW, mask_numbers=True) for r in listed]
    assert [(s["status"], s["number"]) for s in shown] == [("open", "***2200"), ("expired", "***4567")]
    assert shown[0]["filed_at"] == "2025-03-12T08:00:00+00:00"
    assert (await store.listing(limit=1))[0].id == recent.id


async def test_due_requests_come_in_the_queue_order(redis: Redis) -> None:
    store = CallbackStore(redis)
    low = new(store, "+79160000001", at=NOW - timedelta(minutes=9), priority=20)
    high_new = new(store, "+79160000002", at=NOW - timedelta(minutes=1), priority=70)
    high_old = new(store, "+79160000003", at=NOW - timedelta(minutes=5), priority=70)
    later = replace(new(store, "+79160000004", priority=100), due_at=NOW + timedelta(minutes=10))
    for req in (low, high_new, high_old, later):
        await store.file(req)
    assert [r.id for r in await store.due(NOW)] == [high_old.id, high_new.id, low.id]
    assert next(r.id for r in await store.due(NOW + timedelta(minutes=10))) == later.id


async def test_a_request_is_claimed_once_and_a_dead_dialler_s_lease_runs_out(redis: Redis) -> None:
    store = CallbackStore(redis)
    req = new(store)
    await store.file(req)
    lease = NOW + timedelta(minutes=2)
    assert await store.claim(req.id, NOW, lease, "first")
    assert not await store.claim(req.id, NOW + timedelta(minutes=1), lease, "second")
    assert await store.due(NOW + timedelta(minutes=1)) == []  # held: not due meanwhile
    # the first process died: once its lease is over the request is due and claimable
    [stale] = await store.due(lease + timedelta(seconds=1))
    assert stale.status is Status.DIALLING
    assert await store.claim(req.id, lease + timedelta(seconds=1), lease + timedelta(minutes=3), "second")
    # the first one's late outcome does not overwrite the second one's attempt
    assert not await store.move(stale, Status.DONE, owner="first", result="answered")
    assert await store.move(stale, Status.OPEN, owner="second", due_at=NOW + timedelta(minutes=10),
                            attempts=1, result="person_no_answer")
    again = await store.get(req.id)
    assert (again.status, again.attempts, again.due_at) == (Status.OPEN, 1, NOW + timedelta(minutes=10))
    assert await redis.zscore(DUE, req.id) == (NOW + timedelta(minutes=10)).timestamp()


async def test_a_final_status_frees_the_number_and_leaves_the_due_set(redis: Redis) -> None:
    store = CallbackStore(redis)
    req = new(store)
    await store.file(req)
    assert await store.move(req, Status.EXPIRED, result="expired")
    assert not await store.move(req, Status.EXPIRED, result="expired")  # not open any more
    assert await redis.get(OPEN_PREFIX + NUMBER) is None
    assert await redis.zscore(DUE, req.id) is None
    assert await redis.ttl(PREFIX + req.id) == 7 * 86400  # listed for `keep`, then gone
    assert (await store.get(req.id)).status is Status.EXPIRED


def dead_redis() -> Redis:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)


async def test_a_filing_while_redis_is_down_waits_and_lands(redis: Redis) -> None:
    store = CallbackStore(dead_redis())
    pending = PendingWrites()
    files = CallbackFiler(store, SETTINGS, pending, clock=FixedClock(NOW))
    req = files.new(NUMBER, holder="mgr1", reason="hours.after_hours", priority=70)
    assert await files.file(req) is None  # kept for later
    assert len(pending.queue) == 1
    await store.redis.aclose()
    store.redis = redis  # Redis is back
    assert await pending.flush() == 1
    assert (await CallbackStore(redis).get(req.id)) == req
