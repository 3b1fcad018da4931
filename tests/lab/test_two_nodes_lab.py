"""The scale-out lab's two Asterisk nodes (issue 23 item 4): both boot from the lab's root
with the project's config on their own addresses, and a call for a phone registered on node B
crosses node A's PJSIP trunk into B's `[caseline-internode]` with the client's number.

Only the nodes and their trunk here; Caseline on both nodes comes with the scale-out tests."""
from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from redis.asyncio import Redis

from labkit import root as lab_root
from labkit import sipp
from labkit.caseline_process import CaselineProcess
from labkit.config_copy import copy_config
from labkit.nodes import Node, drop_contacts, start_nodes
from labkit.redis_server import RedisServer, RedisUnavailable
from tests.conftest import need
from tests.support.eventually import eventually

pytestmark = pytest.mark.lab

PJSIP = Path(__file__).resolve().parents[2] / "config/asterisk/pjsip.conf"
ALL_PHONES = tuple(re.findall(r"(?m)^\[([a-z0-9]+)\]\(phone\)$", PJSIP.read_text()))
CLIENT = "+79161234567"


@pytest.fixture(scope="module")
def nodes(lab) -> Iterator[dict[str, Node]]:
    """mgr1's phone on node B, every other phone on node A (the main lab stays as it is)."""
    try:
        started = start_nodes({"a": tuple(p for p in ALL_PHONES if p != "mgr1"), "b": ("mgr1",)}, ALL_PHONES)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        need("two Asterisk nodes", f"{type(e).__name__}: {e}")
    try:
        yield {node.name: node for node in started}
    finally:
        for node in started:
            node.stop()


def originate(node: Node, endpoint: str, caller: str) -> tuple[int, dict]:
    """POST /channels on a node's ARI: ring `endpoint` showing `caller`; (status, body)."""
    password = lab_root.lab_secrets()["CASELINE_ARI_PASSWORD"]
    query = urllib.parse.urlencode({"endpoint": endpoint, "callerId": caller, "timeout": "10",
                                    "context": "caseline-two-nodes-probe", "extension": "s",
                                    "channelId": f"probe-{secrets.token_hex(4)}"})
    request = urllib.request.Request(
        f"{node.ari_url}/ari/channels?{query}", method="POST",
        headers={"Authorization": "Basic " + base64.b64encode(f"caseline:{password}".encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {"message": e.read().decode(errors="replace")}


def test_the_trunk_template_and_contacts_are_rendered_per_node() -> None:
    a, b = Node("a"), Node("b", ("mgr1",))
    shipped = PJSIP.read_text()
    for_a, for_b = a.adapt("pjsip.conf", shipped, ALL_PHONES), b.adapt("pjsip.conf", shipped, ALL_PHONES)
    assert "bind = 127.0.2.1:5060" in for_a and "bind = 127.0.2.2:5060" in for_b
    assert "[node-b](endpoint-common)" in for_a and "contact = sip:127.0.2.2:5060" in for_a
    assert "contact = sip:mgr1@127.0.1.1:5201" in for_b and "sip:mgr1@" not in for_a
    assert drop_contacts(shipped, set()) == shipped


async def test_a_call_for_a_phone_on_node_b_crosses_the_trunk_with_the_clients_number(nodes, tmp_path) -> None:
    phone = sipp.Phone("mgr1", tmp_path).start()
    try:
        # node A has no contact for mgr1 (its phone is on B): it cannot ring the phone itself
        status, body = originate(nodes["a"], "PJSIP/mgr1", CLIENT)
        assert status >= 400, body
        assert sipp.read_events(phone.log) == []
        # through the trunk, node B rings it, and the phone sees the client's number
        status, body = originate(nodes["a"], "PJSIP/mgr1@node-b", CLIENT)
        assert status == 200, body
        await eventually(lambda: (CLIENT, "answered") in sipp.read_events(phone.log), timeout=10)
    finally:
        phone.stop()


# --- Caseline on both nodes -----------------------------------------------------------------

@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer.start()
    except RedisUnavailable as e:
        need("Redis", str(e))
    try:
        yield server
    finally:
        server.stop()


def caseline_on(node: Node, workdir: Path, redis: RedisServer) -> CaselineProcess:
    """`caseline run` for one node: its own Asterisk, the shared Redis, presence shared."""
    workdir.mkdir()
    config = copy_config(workdir / "config")
    settings = yaml.safe_load((config / "caseline.yaml").read_text())
    settings["node"] = {"id": node.name, "trunks": {node.other: node.trunk}}
    settings["presence"] = {"shared": True, "ttl_s": 5}
    (config / "caseline.yaml").write_text(yaml.safe_dump(settings))
    return CaselineProcess(workdir, [], config, extra_env={
        "CASELINE_REDIS_URL": redis.url, "CASELINE_ARI_URL": node.ari_url,
        "CASELINE_AMI_HOST": node.ip, "CASELINE_AGI_HOST": node.ip, "CASELINE_OPS_HOST": node.ip,
        "CASELINE_NODE_ID": node.name})


async def test_the_manager_busy_on_node_b_makes_an_a_client_on_node_a_escalate(nodes, redis_server, tmp_path) -> None:
    """Issue 23 item 5: mgr1 (registered on B) is on a call there; an A client of mgr1 calls
    node A: Caseline A sees mgr1 busy through the shared presence and rings sup1 (on A)."""
    mgr1 = sipp.Phone("mgr1", tmp_path).start()  # on B (the `nodes` fixture)
    sup1 = sipp.Phone("sup1", tmp_path).start()  # nobody's contact on B: on A only
    processes = [caseline_on(node, tmp_path / node.name, redis_server) for node in nodes.values()]
    redis = Redis.from_url(redis_server.url)
    try:
        for process in processes:
            await process.registered()
        # mgr1 takes a call on B that lasts (a dialplan Wait on B's side of it)
        nodes["b"].cli("channel originate PJSIP/mgr1 application Wait 20")
        await eventually(_busy_on_b, redis, timeout=10)
        run = await sipp.place_calls(tmp_path, [CLIENT], hold_ms=1000, target=f"{nodes['a'].ip}:5060")
        await sipp.wait_for_event(sup1, CLIENT, "answered", timeout=20)
        await run.wait(30)
        assert [e for e in sipp.read_events(mgr1.log) if e[0] == CLIENT] == []  # never rung for the client
        # busy (B's channel, seen through Redis), not unavailable (A has no contact for mgr1)
        await eventually(lambda: '"steps":["mgr1:busy","sup1:answered"]' in processes[0].log.read_text(), timeout=10)
    finally:
        await redis.aclose()
        for process in processes:
            process.stop()
        mgr1.stop()
        sup1.stop()
        await sipp.stop_callers()


async def _busy_on_b(redis: Redis) -> bool:
    value = await redis.hget("caseline:{presence}:node:b", "PJSIP/mgr1")
    return value is not None and not value.decode().endswith("|0")
