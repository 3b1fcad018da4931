"""Who is on a call: Asterisk's endpoint view plus our own claims, shared through Redis.

Asterisk knows the channels on an endpoint; Redis knows which manager another Caseline
instance is about to ring, so two instances never ring the same manager at once.
"""
from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("caseline.stasis.presence")

KEY = "caseline:busy:"
# Release only our own claim: another call may have claimed the manager since.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisPresence:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def claim(self, person: str, call_id: str, ttl_s: int) -> bool:
        """True if `person` was free and is now ours. Redis down: True (Asterisk's view decides)."""
        try:
            return bool(await self.redis.set(KEY + person, call_id, nx=True, ex=ttl_s))
        except (RedisError, OSError) as e:
            log.warning("presence: Redis unavailable (%s); relying on Asterisk's view", type(e).__name__)
            return True

    async def release(self, person: str, call_id: str) -> None:
        try:
            await self.redis.eval(_RELEASE, 1, KEY + person, call_id)
        except (RedisError, OSError) as e:
            log.warning("presence: could not release %s (%s); it expires", person, type(e).__name__)
