from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from ari_app.config.files import ConfigError, load_model
from ari_app.core.models import Contact, Direction, Talk
from ari_app.config.history_settings import HistorySettings, parse_duration
from ari_app.history.store import (
    HistoryUnavailable,
    MemoryHistoryStore,
    RedisHistoryStore,
    MAX_TALKS,
    decode_contact,
    encode_contact,
    redis_client,
)
from labkit.redis_server import free_port

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
NUMBER = "+79161234567"
RETENTION = timedelta(days=180)


def store(redis: Redis, **kw: object) -> RedisHistoryStore:
    kw.setdefault("retention", RETENTION)
    return RedisHistoryStore(redis, time_fn=NOW.timestamp, **kw)  # type: ignore[arg-type]


def contact(ago: timedelta, direction: Direction = Direction.INBOUND, answered: bool = True,
            manager: str | None = "ivanov", duration_s: int = 42) -> Contact:
    return Contact(NOW - ago, direction, answered, manager, duration_s)


# --- real Redis -------------------------------------------------------------------------

async def test_round_trip_newest_first(redis: Redis) -> None:
    s = store(redis)
    a = contact(timedelta(days=3), Direction.OUTBOUND, False, "petrov", 0)
    b = contact(timedelta(minutes=5, microseconds=250))
    c = contact(timedelta(hours=1), manager=None)
    for x in (a, b, c):
        await s.record(NUMBER, x)
    assert await s.recent(NUMBER, NOW - RETENTION) == [b, c, a]
    assert await s.recent(NUMBER, NOW - timedelta(hours=1)) == [b, c]  # `since` is inclusive
    assert await s.recent("+79161234568", NOW - RETENTION) == []
    assert await redis.keys("*") == [b"caseline:hist:" + NUMBER.encode()]


async def test_recent_is_bounded_to_max_contacts(redis: Redis) -> None:
    s = store(redis, max_contacts=3)
    written = await s.record_many([(NUMBER, contact(timedelta(minutes=i))) for i in range(10)])
    assert written == 10
    got = await s.recent(NUMBER, NOW - RETENTION)
    assert [x.at for x in got] == [NOW - timedelta(minutes=i) for i in range(3)]


async def test_retention_trims_and_expires(redis: Redis) -> None:
    old = contact(RETENTION - timedelta(hours=1))
    await store(redis).record(NUMBER, old)
    later = RedisHistoryStore(redis, retention=RETENTION, time_fn=(NOW + timedelta(hours=2)).timestamp)
    await later.record(NUMBER, contact(timedelta(0)))
    key = later.key(NUMBER)
    assert await redis.zcard(key) == 1  # the entry that left the window was trimmed on write
    assert 0 < await redis.ttl(key) <= RETENTION.total_seconds()


async def test_too_old_contacts_are_not_written(redis: Redis) -> None:
    assert await store(redis).record_many([(NUMBER, contact(RETENTION + timedelta(seconds=1)))]) == 0
    assert await redis.dbsize() == 0


async def test_per_number_cap(redis: Redis) -> None:
    s = store(redis, max_contacts=2, max_per_number=5)
    await s.record_many([(NUMBER, contact(timedelta(minutes=i))) for i in range(8)])
    assert await redis.zcard(s.key(NUMBER)) == 5
    assert (await s.recent(NUMBER, NOW - RETENTION))[0].at == NOW  # the newest are kept


async def test_same_call_recorded_twice_is_stored_once(redis: Redis) -> None:
    s = store(redis)
    x = contact(timedelta(minutes=1))
    await s.record(NUMBER, x)
    await s.record(NUMBER, x)
    assert await s.recent(NUMBER, NOW - RETENTION) == [x]


async def test_unreadable_members_are_skipped(redis: Redis) -> None:
    s = store(redis)
    good = contact(timedelta(minutes=1))
    await s.record(NUMBER, good)
    ts = NOW.timestamp()
    await redis.zadd(s.key(NUMBER), {"not json": ts, '{"t":1}': ts, '{"t":"x","d":"in","a":1}': ts})
    assert await s.recent(NUMBER, NOW - RETENTION) == [good]


@pytest.mark.parametrize(
    "bad", ["79161234567", "89161234567", "+7916*", "+79161234567\r\nFLUSHALL", "", "+0123456789", "*"]
)
async def test_key_is_never_built_from_non_e164(redis: Redis, bad: str) -> None:
    s = store(redis)
    with pytest.raises(ValueError):
        await s.record(bad, contact(timedelta(0)))
    with pytest.raises(ValueError):
        await s.recent(bad, NOW - RETENTION)
    with pytest.raises(ValueError):
        await s.record_many([(NUMBER, contact(timedelta(0))), (bad, contact(timedelta(0)))])
    with pytest.raises(ValueError):
        await s.record(bad, contact(RETENTION * 2))  # even when the contact would be dropped
    assert await redis.dbsize() == 0  # a bad number in a batch writes nothing


async def test_redis_errors_become_history_unavailable() -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        s = store(client)
        with pytest.raises(HistoryUnavailable):
            await s.recent(NUMBER, NOW - RETENTION)
        with pytest.raises(HistoryUnavailable):
            await s.record(NUMBER, contact(timedelta(0)))
    finally:
        await client.aclose()


async def test_from_settings(redis: Redis) -> None:
    s = RedisHistoryStore.from_settings(redis, HistorySettings(key_prefix="t:", old_window="7d", max_contacts=1))
    assert s.key(NUMBER) == "t:" + NUMBER
    await s.record(NUMBER, Contact(datetime.now(UTC), Direction.INBOUND, False))
    assert 0 < await redis.ttl("t:" + NUMBER) <= 7 * 86400


# --- pure -------------------------------------------------------------------------------

@given(st.builds(
    Contact,
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    direction=st.sampled_from(list(Direction)),
    answered=st.booleans(),
    manager=st.none() | st.text(max_size=20),
    duration_s=st.integers(0, 86_399),
    talks=st.lists(st.builds(Talk, person=st.text(max_size=20), seconds=st.integers(0, 86_399)),
                   max_size=MAX_TALKS).map(tuple),
))
def test_encode_decode_round_trip(x: Contact) -> None:
    member, score = encode_contact(x)
    assert decode_contact(member) == x and decode_contact(member.encode()) == x
    assert score == round(x.at.timestamp(), 6)
    assert encode_contact(x)[0] == member  # deterministic: equal contacts dedupe in the set


async def test_memory_store() -> None:
    m = MemoryHistoryStore()
    x, y = contact(timedelta(days=2)), contact(timedelta(hours=1))
    assert await m.record_many([(NUMBER, x), (NUMBER, y)]) == 2
    assert await m.recent(NUMBER, NOW - timedelta(days=1)) == [y]
    with pytest.raises(ValueError):
        await m.record("8916", x)


def test_store_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        RedisHistoryStore(None, retention=timedelta(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RedisHistoryStore(None, retention=RETENTION, max_contacts=10, max_per_number=5)  # type: ignore[arg-type]


# --- settings ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2h", timedelta(hours=2)), ("1d", timedelta(days=1)), ("180d", timedelta(days=180)),
     ("90m", timedelta(minutes=90)), ("30s", timedelta(seconds=30)), ("2w", timedelta(days=14)),
     (3600, timedelta(hours=1)), ("3600", timedelta(hours=1)), (1.5, timedelta(seconds=1.5)),
     (" 1 d ", timedelta(days=1))],
)
def test_parse_duration(raw: object, expected: timedelta) -> None:
    assert parse_duration(raw) == expected


@pytest.mark.parametrize("raw", ["2x", "h", "", "-1h", -1, True, None, float("nan"), "1.5h", [1], 10**12])
def test_parse_duration_rejects(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(raw)


def test_settings_defaults_and_windows() -> None:
    w = HistorySettings().windows()
    assert (w.callback, w.repeat, w.old) == (timedelta(hours=2), timedelta(days=1), timedelta(days=180))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("repeat_window: 2d\nold_window: 1d\n", ""),
        ("callback_window: 0\n", ""),
        ("old_window: 9999d\n", ""),
        ("repeat_window: soon\n", "repeat_window"),
        ("key_prefix: 'a b'\n", "key_prefix"),
        ("max_contacts: 0\n", "max_contacts"),
        ("colour: red\n", "colour"),
    ],
)
def test_settings_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "history.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_model(path, HistorySettings)
    assert err.value.key == key and err.value.file == str(path)


def test_settings_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "history.yaml"
    path.write_text("callback_window: 30m\nrepeat_window: 1h\nold_window: 7d\nmax_contacts: 20\n")
    s = load_model(path, HistorySettings)
    assert s.windows().repeat == timedelta(hours=1) and s.max_contacts == 20
