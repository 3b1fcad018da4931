"""Presence across nodes, shared through Redis (issue 23 item 2): where each phone is
registered and whether it is on a call, as every node's own Asterisk reports it.

Keys: every one carries the hash tag `{presence}`, so under Redis Cluster they all hash to
one slot and the writer's MULTI and the reader's pipeline stay valid without migrating
any data (presence is a few hundred short fields per node: one slot holds it easily).

    caseline:{presence}:nodes        set    node ids that have published (readers' index)
    caseline:{presence}:node:<id>    hash   endpoint -> "<state>|<channels>" (core/presence_entries.py)
    caseline:{presence}:alive:<id>   string the node's heartbeat, with a TTL (`ttl_s`)

Each node writes only its own `node:<id>` and `alive:<id>` (and adds itself to `nodes`):
no two writers ever touch one key, so there is nothing to lock. The heartbeat is refreshed
every ttl/3 while the node's view is current (stasis/presence_feed.py: ARI connected and
a snapshot taken); a dead node, or one that lost its Asterisk, stops refreshing, and once
`alive:<id>` expires readers ignore its hash. The hash itself expires HASH_TTLS times later:
a dead node's last view stays a little for whoever investigates, then goes by itself.

Redis is never on the critical path alone: reads are bounded (`read_budget_s`) and on any
error answer from this node's own view (the feeder's, in memory), logged; writes happen in
one background task, and a failed one is retried as a full rewrite.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ari_app.core.presence_entries import Entry, busy_anywhere, entry_of, locate, parse

log = logging.getLogger("caseline.stasis.shared_presence")

PREFIX = "caseline:{presence}:"
NODES_KEY = PREFIX + "nodes"
HASH_TTLS = 4  # a node's hash outlives its heartbeat this many times (ignored meanwhile)
_REDIS_DOWN = (RedisError, OSError, TimeoutError)


def node_key(node: str) -> str:
    return f"{PREFIX}node:{node}"


def alive_key(node: str) -> str:
    return f"{PREFIX}alive:{node}"


class SharedPresence:
    """This node's part of the shared view (fed by the feeder, written by `run`) and the
    reader of every live node's part (`busy`, `where`: core/ports.py NodePresence)."""

    def __init__(self, redis: Redis, node: str, *, ttl_s: float = 15.0,
                 read_budget_s: float = 0.3, write_budget_s: float = 1.0) -> None:
        self.redis = redis
        self.node = node
        self.ttl_ms = max(100, int(ttl_s * 1000))
        self.hash_ttl_ms = HASH_TTLS * self.ttl_ms
        self.interval_s = ttl_s / 3  # three chances to refresh before the heartbeat lapses
        self.read_budget_s = read_budget_s
        self.write_budget_s = write_budget_s
        self.local: dict[str, Entry] = {}  # this node's endpoints, as its Asterisk reports them
        self.live = False  # `local` is current: the feeder is connected and took a snapshot
        self._dirty: dict[str, Entry] = {}  # changed since the last write
        self._full = True  # the next write rewrites the whole hash (start, snapshot, error)
        self._wake = asyncio.Event()

    # --- this node's view (stasis/presence_feed.py) -------------------------------------

    def replace_all(self, endpoints: Iterable[Mapping[str, Any]]) -> None:
        """A snapshot (GET /endpoints): the whole of this node's view, now current."""
        entries = (entry_of(e) for e in endpoints)
        self.local = dict(e for e in entries if e is not None)
        self._dirty.clear()
        self._full = True
        self.live = True
        self._wake.set()

    def update(self, endpoint: Mapping[str, Any]) -> None:
        """One EndpointStateChange: written at once by `run`."""
        found = entry_of(endpoint)
        if found is None:
            return
        name, entry = found
        if self.local.get(name) == entry:
            return
        self.local[name] = entry
        self._dirty[name] = entry
        self._wake.set()

    def lost(self) -> None:
        """This node's events stopped (ARI gone): stop vouching for `local`. The heartbeat
        lapses after `ttl_s` unless a new snapshot comes first (a short reconnect)."""
        self.live = False

    # --- writing (one task: writes stay in order) ---------------------------------------

    async def run(self) -> None:
        """Write changes as they come and rewrite everything every ttl/3, until cancelled."""
        next_full = 0.0
        while True:
            wait = max(0.0, next_full - time.monotonic())
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if not self.live:
                next_full = time.monotonic() + self.interval_s
                continue
            full = self._full or time.monotonic() >= next_full
            try:
                await self.publish(full=full)
            except Exception as e:  # Redis down, or a bug: the writer must outlive either
                if isinstance(e, _REDIS_DOWN):
                    log.warning("shared presence: cannot write node %s (%s); retrying in %.1f s",
                                self.node, type(e).__name__, self.interval_s)
                else:
                    log.exception("shared presence: writing node %s failed", self.node)
                # not sooner, however many events come: Redis is down, not slow to answer
                next_full = time.monotonic() + self.interval_s
                await asyncio.sleep(self.interval_s)
                continue
            if full:
                next_full = time.monotonic() + self.interval_s

    async def publish(self, *, full: bool = False) -> None:
        """One write: the whole hash with the heartbeat, or what changed. Raises on a Redis error."""
        dirty, self._dirty = self._dirty, {}
        key = node_key(self.node)
        try:
            async with asyncio.timeout(self.write_budget_s):
                pipe = self.redis.pipeline(transaction=True)  # one slot: valid in a cluster too
                if full:
                    self._full = False
                    pipe.delete(key)
                    if self.local:
                        pipe.hset(key, mapping={k: e.value() for k, e in self.local.items()})
                    pipe.pexpire(key, self.hash_ttl_ms)
                    pipe.set(alive_key(self.node), f"{time.time():.3f}", px=self.ttl_ms)
                    pipe.sadd(NODES_KEY, self.node)
                elif dirty:
                    pipe.hset(key, mapping={k: e.value() for k, e in dirty.items()})
                    pipe.pexpire(key, self.hash_ttl_ms)  # a hash re-created here must expire too
                else:
                    return
                await pipe.execute()
        except BaseException:
            self._full = True  # whatever was not written is in `local`: rewrite it all
            raise

    # --- reading ------------------------------------------------------------------------

    async def busy(self, endpoint: str) -> bool:
        """On a call on any live node; Redis down: on a call here."""
        return busy_anywhere((await self._entries(endpoint)).values())

    async def where(self, endpoint: str) -> tuple[str | None, bool]:
        """(node, online) of `endpoint`: core/presence_entries.py `locate`."""
        return locate(await self._entries(endpoint), self.node)

    async def live_nodes(self) -> list[str]:
        """The nodes whose heartbeat is current (raises on a Redis error)."""
        nodes, alive = await self._nodes_and(lambda pipe, node: pipe.exists(alive_key(node)))
        return [node for node, [up] in zip(nodes, alive) if up]

    async def _entries(self, endpoint: str) -> dict[str, Entry | None]:
        """Each live node's entry for `endpoint`; Redis down or slow: this node's own only."""
        try:
            nodes, answers = await self._nodes_and(
                lambda pipe, node: pipe.exists(alive_key(node)).hget(node_key(node), endpoint))
        except _REDIS_DOWN as e:
            log.warning("shared presence: Redis unavailable (%s); %s as node %s sees it",
                        type(e).__name__, endpoint, self.node)
            return {self.node: self.local.get(endpoint)}
        return {node: parse(value) for node, (up, value) in zip(nodes, answers) if up}

    async def _nodes_and(self, ask: Any) -> tuple[list[str], list[list[Any]]]:
        """The published nodes, and for each the answers of the commands `ask` queues:
        two round trips, bounded together."""
        async with asyncio.timeout(self.read_budget_s):
            members = await self.redis.smembers(NODES_KEY)
            nodes = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            if not nodes:
                return [], []
            pipe = self.redis.pipeline(transaction=False)
            for node in nodes:
                ask(pipe, node)
            flat = await pipe.execute()
        per_node = len(flat) // len(nodes)
        return nodes, [flat[i * per_node:(i + 1) * per_node] for i in range(len(nodes))]
