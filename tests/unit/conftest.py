from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from labkit.redis_server import RedisServer, RedisUnavailable


@pytest.fixture(scope="session")
def redis_session_server() -> Iterator[RedisServer]:
    """One real redis-server for all unit tests. Missing Redis skips locally, FAILS in CI."""
    try:
        server = RedisServer.start()
    except RedisUnavailable as e:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"CI needs redis-server: {e}", pytrace=False)
        pytest.skip(f"redis-server unavailable: {e}")
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_session_server: RedisServer) -> AsyncIterator[Redis]:
    """A client on an empty database, closed after the test."""
    client = Redis.from_url(redis_session_server.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
