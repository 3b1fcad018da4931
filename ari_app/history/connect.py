"""The Redis client for the configured topology: one server (`redis.url`), or the master a
set of Sentinels names (`redis.sentinel`), found again after a failover.

Both get the call path's short timeouts and one immediate retry (history/store.py,
`redis_client`). Through Sentinel, a connection that finds a replica where the master was
(READONLY after a failover) is dropped and the master asked for again by redis-py's
SentinelConnectionPool; writes meanwhile fail fast and go to the pending-write buffer
(record/pending_writes.py), which replays them once the new master answers.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from ari_app.config.settings import RedisSettings
from ari_app.history.store import redis_client


class SentinelMaster(Redis):
    """The master's client; closing it closes its Sentinel connections too."""

    sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            await self.sentinel.aclose()


def _url_credentials(url: str) -> dict[str, Any]:
    """db, username and password of a redis:// URL (its host is the Sentinels' business)."""
    parts = urlsplit(url)
    db = parts.path.strip("/")
    out: dict[str, Any] = {"db": int(db) if db.isdigit() else 0}
    if parts.password is not None:
        out["password"] = unquote(parts.password)
    if parts.username:
        out["username"] = unquote(parts.username)
    return out


def redis_for(settings: RedisSettings, *, timeout_s: float = 0.5, max_connections: int = 32) -> Redis:
    if settings.sentinel is None:
        return redis_client(settings.url, timeout_s=timeout_s, max_connections=max_connections)
    bounds = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    sentinel = Sentinel(settings.sentinel.hosts(), sentinel_kwargs=bounds)
    client = sentinel.master_for(settings.sentinel.master, redis_class=SentinelMaster,
                                 retry=Retry(NoBackoff(), 1), health_check_interval=30,
                                 max_connections=max_connections, **bounds,
                                 **_url_credentials(settings.url))
    client.sentinel = sentinel
    return client
