"""What a running Caseline wrote to its Redis: the decision log and call history."""
from __future__ import annotations

from redis.asyncio import Redis

from ari_app.record.outcomes import last_decisions
from tests.support.eventually import eventually


async def decisions(caseline, count: int = 10) -> list[dict[str, str]]:
    """The newest `count` entries of the decision log (`caseline calls`), newest first."""
    redis = Redis.from_url(caseline.redis_url)
    try:
        return await last_decisions(redis, count)
    finally:
        await redis.aclose()


async def wait_decision(caseline, call_count: int, timeout: float = 15) -> list[dict[str, str]]:
    """The decision log (up to 50 entries, newest first) once it holds `call_count` entries."""
    async def logged() -> list[dict[str, str]]:
        entries = await decisions(caseline, max(50, call_count))
        assert len(entries) >= call_count, f"{len(entries)} of {call_count} calls logged"
        return entries

    return await eventually(logged, timeout=timeout)


async def history_recorded(redis_url: str, number: str, timeout: float = 10) -> None:
    """Until Caseline's history holds a contact with `number`."""
    redis = Redis.from_url(redis_url)
    try:
        await eventually(redis.exists, f"caseline:hist:{number}", timeout=timeout,
                         message=f"history of {number} in Redis")
    finally:
        await redis.aclose()


async def learned(caseline, number: str, *, calls: int = 1, timeout: float = 15):  # type: ignore[no-untyped-def]
    """The newest contact of `number` in Caseline's history once `calls` contacts are there:
    what was learned from the call's CDRs (who talked, and the case holder)."""
    from datetime import UTC, datetime, timedelta

    from ari_app.history.store import RedisHistoryStore

    redis = Redis.from_url(caseline.redis_url)
    store = RedisHistoryStore(redis, retention=timedelta(days=30))
    try:
        async def recorded():  # type: ignore[no-untyped-def]
            contacts = await store.recent(number, datetime.now(UTC) - timedelta(hours=1))
            assert len(contacts) >= calls, f"{len(contacts)} of {calls} calls of {number} learned"
            return contacts[0]

        return await eventually(recorded, timeout=timeout)
    finally:
        await redis.aclose()
