"""Presence across nodes (issue 23 item 2) on a real redis-server: two nodes, "a" and "b",
each with its own registry and feeder (its Asterisk an in-memory ARI connected as the
presence app), share one Redis. A manager on a call on node B is busy on node A, until the
call ends or node B stops counting; Redis down, each node answers from its own view."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from redis.asyncio import Redis
from redis.crc import key_slot

from ari_app.ari.fake import FakeAri
from ari_app.ari.http import HttpAri
from ari_app.config.callback_settings import CallbackSettings
from ari_app.config.files import ConfigError
from ari_app.config.settings import load_settings
from ari_app.core.clock import FixedClock
from ari_app.history.store import MemoryHistoryStore, redis_client
from ari_app.main import start_shared_presence
from ari_app.record.callbacks import CallbackFiler, CallbackRequest, CallbackStore
from ari_app.stasis.callback_dialer import CallbackDialer
from ari_app.stasis.presence_feed import EVENT_TYPES, PresenceFeed
from ari_app.stasis.shared_presence import NODES_KEY, SharedPresence, alive_key, node_key
from labkit.redis_server import RedisServer, RedisUnavailable, free_port
from tests.conftest import need
from tests.support.eventually import eventually
from tests.support.fake_world import A_CLIENT, NOW, MemoryPresence, policy_with, running

MGR1, MGR2 = "PJSIP/mgr1", "PJSIP/mgr2"
# vip chain (A clients): mgr1, busy -> sup1; no answer / unavailable -> the operators
SPLIT = policy_with(chains__vip__on_no_answer="step_down", chains__vip__on_unavailable="step_down")
CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    try:
        redis = RedisServer.start()
    except RedisUnavailable as e:
        need("Redis", str(e))
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
async def raw(server: RedisServer) -> AsyncIterator[Redis]:
    """The test's own look at Redis, beside the nodes' clients."""
    client = Redis.from_url(server.url)
    try:
        yield client
    finally:
        await client.aclose()


@dataclass
class Node:
    id: str
    ari: FakeAri  # the node's Asterisk, as its presence app sees it
    registry: SharedPresence
    redis: Redis
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def stop(self) -> None:
        """The node's Caseline dies: no more writes, no more heartbeats."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def busy(self, endpoint: str) -> bool:
        return await self.registry.busy(endpoint)

    async def free(self, endpoint: str) -> bool:
        return not await self.registry.busy(endpoint)

    async def where(self, endpoint: str) -> tuple[str | None, bool]:
        return await self.registry.where(endpoint)


@asynccontextmanager
async def node(server: RedisServer, node_id: str, *, ttl_s: float = 5.0,
               online: tuple[str, ...] = (), offline: tuple[str, ...] = ()) -> AsyncIterator[Node]:
    """A node fed from its own (in-memory) Asterisk with these phones, published once."""
    redis = redis_client(server.url)  # the call path's client: 0.5 s timeouts, one retry
    ari = FakeAri("caseline-presence", event_types=EVENT_TYPES)
    for endpoint in online:
        ari.phone(endpoint)
    for endpoint in offline:
        ari.phone(endpoint).unregistered()
    registry = SharedPresence(redis, node_id, ttl_s=ttl_s)
    feed = PresenceFeed(ari, registry, backoff_cap_s=0)
    running_node = Node(node_id, ari, registry, redis,
                        [asyncio.create_task(registry.run()), asyncio.create_task(feed.run())])
    try:
        async with asyncio.timeout(2):
            await feed.connected.wait()
        await eventually(redis.exists, alive_key(node_id), timeout=3)
        yield running_node
    finally:
        await running_node.stop()
        await redis.aclose()


async def test_a_call_on_node_b_makes_the_manager_busy_on_node_a_until_it_ends(server) -> None:
    async with node(server, "b", online=(MGR1,)) as b, node(server, "a") as a:
        assert not await a.busy(MGR1)
        channel = b.ari.existing_channel(MGR1, app_args=None)  # mgr1 takes a call on node B
        await eventually(a.busy, MGR1, timeout=3)
        assert await b.busy(MGR1)  # on its own node too
        assert not await a.busy(MGR2)  # nobody else
        b.ari.hang_up(channel.id)
        await eventually(a.free, MGR1, timeout=3)


async def test_where_names_the_node_the_phone_is_registered_on(server) -> None:
    async with node(server, "b", online=(MGR1,)) as b, node(server, "a", offline=(MGR1,)) as a:
        assert await a.where(MGR1) == ("b", True)
        assert await b.where(MGR1) == ("b", True)
        assert await a.where("PJSIP/nobody") == (None, False)
        b.ari.phone(MGR1).unregistered()  # registered nowhere now: known here, offline
        await eventually(lambda: _equals(a.where(MGR1), ("a", False)), timeout=3)
        b.ari.phone(MGR1).registers()
        await eventually(lambda: _equals(a.where(MGR1), ("b", True)), timeout=3)


async def _equals(answer, expected) -> bool:
    return await answer == expected


async def test_a_dead_nodes_data_stops_counting_when_its_heartbeat_expires(server, raw) -> None:
    async with node(server, "b", ttl_s=0.6, online=(MGR1,)) as b, node(server, "a") as a:
        b.ari.existing_channel(MGR1, app_args=None)
        await eventually(a.busy, MGR1, timeout=3)
        await asyncio.sleep(1.5)  # well past the TTL: a live node's heartbeat keeps it counting
        assert await a.busy(MGR1)
        assert await a.registry.live_nodes() == ["a", "b"]
        await b.stop()  # node B's Caseline dies with mgr1's call still in its hash
        assert await a.busy(MGR1)  # until the TTL runs out
        started = time.monotonic()
        await eventually(a.free, MGR1, timeout=3)
        assert time.monotonic() - started < 0.6 + 1.0  # the TTL, plus a loaded machine's slack
        assert await a.registry.live_nodes() == ["a"]
        assert not await raw.exists(alive_key("b"))
        # its last view is still there (for whoever investigates), and counts for nothing
        assert await raw.hget(node_key("b"), MGR1) == b"online|1"
        await eventually(lambda: _equals(raw.exists(node_key("b")), 0), timeout=4)  # then goes too


async def test_after_a_reconnect_the_feed_subscribes_again_and_a_snapshot_catches_up(server) -> None:
    async with node(server, "b", online=(MGR1,)) as b, node(server, "a") as a:
        b.ari.disconnect()  # node B's events stop; what happens now sends no event
        b.ari.existing_channel(MGR1, app_args=None)
        await eventually(a.busy, MGR1, timeout=3)  # the snapshot after the reconnect saw it
        assert [s["event_source"] for s in b.ari.sent("subscribe")] == ["endpoint:PJSIP"] * 2
        assert len(b.ari.sent("endpoints")) == 2


async def test_with_redis_down_a_node_answers_from_its_own_view_without_raising(
        server, raw, caplog: pytest.LogCaptureFixture) -> None:
    async with node(server, "b", online=(MGR1,)) as b, \
            node(server, "a", ttl_s=1.5, online=(MGR2,)) as a:
        b.ari.existing_channel(MGR1, app_args=None)
        a.ari.existing_channel(MGR2, app_args=None)
        await eventually(a.busy, MGR1, timeout=3)
        server.stop()
        started = time.monotonic()
        assert not await a.busy(MGR1)  # B's call is out of sight now
        assert await a.busy(MGR2)  # A's own is not
        assert await a.where(MGR2) == ("a", True)
        assert time.monotonic() - started < 3 * a.registry.read_budget_s + 1.0  # bounded, never hung
        a.ari.phone("PJSIP/sup1")  # a change while Redis is down: its write fails
        a.ari.existing_channel("PJSIP/sup1", app_args=None)
        await eventually(lambda: "cannot write node a" in caplog.text, timeout=3)
        assert not any(task.done() for task in a.tasks)  # the writer and the feeder go on
        back = RedisServer.start(port=server.port)  # empty: no persistence
        try:  # the failed write is retried as a whole: everything node A knows is back
            await eventually(lambda: _equals(raw.hgetall(node_key("a")), {
                MGR2.encode(): b"online|1", b"PJSIP/sup1": b"online|1"}), timeout=5)
            assert await raw.exists(alive_key("a"))
        finally:
            back.stop()


async def test_every_key_shares_one_hash_tag(server, raw) -> None:
    async with node(server, "b", online=(MGR1,)) as b, node(server, "a", online=(MGR2,)):
        b.ari.existing_channel(MGR1, app_args=None)
        await eventually(lambda: raw.hget(node_key("b"), MGR1), timeout=3)
        keys = sorted(k.decode() for k in await raw.keys("*"))
        assert keys == sorted([NODES_KEY, node_key("a"), node_key("b"), alive_key("a"), alive_key("b")])
        assert all(k.startswith("caseline:{presence}:") for k in keys)
        assert {key_slot(k.encode()) for k in keys} == {key_slot(b"{presence}")}  # one cluster slot
        assert 0 < await raw.pttl(alive_key("b")) <= 5000  # everything a node writes expires
        assert 5000 < await raw.pttl(node_key("b")) <= 4 * 5000
        assert await raw.hgetall(node_key("b")) == {MGR1.encode(): b"online|1"}


async def test_a_call_on_node_a_skips_the_manager_busy_on_node_b(server) -> None:
    async with node(server, "b", online=(MGR1,)) as b, node(server, "a") as a:
        theirs = b.ari.existing_channel(MGR1, app_args=None)
        await eventually(a.busy, MGR1, timeout=3)
        async with running(policy=SPLIT, nodes=a.registry) as world:
            fake = world.ari  # node A's call app: mgr1's phone answers, as far as A can tell
            fake.phone(MGR1).answers()
            fake.phone("PJSIP/sup1").answers()
            first = fake.caller_arrives(A_CLIENT)
            fake.hang_up(await world.talking(first))
            assert (await world.outcome(first)).steps == ["mgr1:busy", "sup1:answered"]
            b.ari.hang_up(theirs.id)
            await eventually(a.free, MGR1, timeout=3)
            second = fake.caller_arrives(A_CLIENT)
            fake.hang_up(await world.talking(second))
            assert (await world.outcome(second)).steps == ["mgr1:answered"]
        assert [r["endpoint"] for r in fake.sent("create_channel")] == ["PJSIP/sup1", MGR1]


async def test_a_holder_registered_on_node_b_is_rung_through_the_trunk_to_b(server) -> None:
    """Issue 23 item 3: the call arrives on node A; mgr1's phone is registered on B only.
    A rings PJSIP/mgr1@node-b (the trunk) with the client's number; once B is gone, A rings
    its own endpoint (unavailable here) and the route goes on on A."""
    async with node(server, "b", ttl_s=1.0, online=(MGR1,)) as b, node(server, "a", offline=(MGR1,)) as a:
        assert await a.where(MGR1) == ("b", True)
        async with running(policy=SPLIT, nodes=a.registry, node_id="a", trunks={"b": "node-b"}) as world:
            fake = world.ari
            fake.phone("PJSIP/mgr1@node-b").answers()
            first = fake.caller_arrives(A_CLIENT)
            fake.hang_up(await world.talking(first))
            assert (await world.outcome(first)).steps == ["mgr1:answered"]
            leg = fake.sent("create_channel")[0]
            assert leg["endpoint"] == "PJSIP/mgr1@node-b"
            assert leg["variables"]["CALLERID(num)"] == A_CLIENT

            await b.stop()  # node B's Caseline dies: its heartbeat expires, its data stops counting
            await eventually(_only_here, a, timeout=5)
            fake.phone(MGR1).unavailable()
            second = fake.caller_arrives(A_CLIENT)
            assert (await world.outcome(second)).steps[0] == "mgr1:unavailable"
            assert fake.sent("create_channel")[1]["endpoint"] == MGR1


async def _only_here(a: Node) -> bool:
    return await a.where(MGR1) == ("a", False)


async def test_the_callback_dialler_waits_while_the_holder_is_busy_on_another_node(server) -> None:
    settings = CallbackSettings(poll_s=300, keep_turn=False)
    async with AsyncExitStack() as stack:
        b = await stack.enter_async_context(node(server, "b", online=(MGR1,)))
        a = await stack.enter_async_context(node(server, "a"))
        world = await stack.enter_async_context(running())
        theirs = b.ari.existing_channel(MGR1, app_args=None)
        await eventually(a.busy, MGR1, timeout=3)
        store = CallbackStore(a.redis)
        dialer = CallbackDialer(world.app, store, policy=lambda: world.policy,
                                history=MemoryHistoryStore(), presence=MemoryPresence(),
                                settings=settings, clock=FixedClock(NOW), nodes=a.registry)
        task = asyncio.create_task(dialer.run())
        stack.push_async_callback(_cancel, task)
        req: CallbackRequest = CallbackFiler(store, settings, clock=FixedClock(NOW)).new(
            A_CLIENT, holder="mgr1", reason="test", priority=50)
        assert await store.file(req) == req.id
        await dialer.poll()
        assert not dialer.active  # not placed: it waits for the next poll
        assert await dialer.dial_now(req.id) == (409, {"error": "mgr1 is on a call", "id": req.id})
        assert world.ari.sent("create_channel") == []
        b.ari.hang_up(theirs.id)
        await eventually(a.free, MGR1, timeout=3)
        await dialer.poll()
        await world.ari.until(lambda: world.ari.sent("create_channel"))
        assert world.ari.sent("create_channel")[0]["endpoint"] == MGR1


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_shared_presence_is_off_unless_configured_and_validated(tmp_path: Path) -> None:
    assert load_settings(CONFIG, {}).presence.shared is False  # the shipped single-node install
    (tmp_path / "caseline.yaml").write_text("presence:\n  shared: true\n  ttl_s: 6\n")
    settings = load_settings(tmp_path, {})
    assert (settings.presence.shared, settings.presence.ttl_s) == (True, 6)
    (tmp_path / "caseline.yaml").write_text("presence:\n  shared: true\n  ttl_s: 0.2\n")
    with pytest.raises(ConfigError, match="ttl_s"):
        load_settings(tmp_path, {})


async def test_main_starts_shared_presence_only_when_configured_and_stops_it(server, tmp_path) -> None:
    redis = redis_client(server.url)
    core = SimpleNamespace(redis=redis)  # all start_shared_presence takes from the core
    try:
        async with AsyncExitStack() as stack:
            assert await start_shared_presence(load_settings(CONFIG, {}), core, stack) is None
            (tmp_path / "caseline.yaml").write_text(
                f"node: {{id: msk2}}\npresence: {{shared: true}}\nari: {{url: 'http://127.0.0.1:{free_port()}'}}\n")
            registry = await start_shared_presence(load_settings(tmp_path, {}), core, stack)
            assert registry is not None and registry.node == "msk2"
            names = {t.get_name() for t in asyncio.all_tasks()}
            assert {"presence-writer", "presence-feed"} <= names
            await asyncio.sleep(0.3)  # its Asterisk is unreachable: the feed retries, nothing raises
            assert not registry.live and not await redis.exists(alive_key("msk2"))
        names = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
        assert not {"presence-writer", "presence-feed"} & names  # stopped with the process
    finally:
        await redis.aclose()


async def test_the_http_client_subscribes_the_presence_app_and_lists_endpoints() -> None:
    """The wire of the two requests the feeder adds (ARI's applications and endpoints APIs)."""
    seen: list[tuple[str, str, dict[str, str]]] = []
    mgr1 = {"technology": "PJSIP", "resource": "mgr1", "state": "online", "channel_ids": ["1.1"]}

    async def subscription(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, dict(request.query)))
        return web.json_response({"name": request.match_info["app"], "endpoint_ids": ["PJSIP"]})

    async def endpoints(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, dict(request.query)))
        return web.json_response([mgr1])

    app = web.Application()
    app.router.add_post("/ari/applications/{app}/subscription", subscription)
    app.router.add_get("/ari/endpoints", endpoints)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with HttpAri(f"http://127.0.0.1:{runner.addresses[0][1]}", "u", "p",
                           "caseline-presence") as ari:
            await ari.subscribe("endpoint:PJSIP")
            assert await ari.endpoints() == [mgr1]
    finally:
        await runner.cleanup()
    assert seen == [("POST", "/ari/applications/caseline-presence/subscription",
                     {"eventSource": "endpoint:PJSIP"}),
                    ("GET", "/ari/endpoints", {})]
