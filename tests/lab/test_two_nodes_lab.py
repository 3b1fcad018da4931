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

from labkit import root as lab_root
from labkit import sipp
from labkit.nodes import Node, drop_contacts, start_nodes
from tests.conftest import need
from tests.support.eventually import eventually

pytestmark = pytest.mark.lab

PJSIP = Path(__file__).resolve().parents[2] / "config/asterisk/pjsip.conf"
ALL_PHONES = tuple(re.findall(r"(?m)^\[([a-z0-9]+)\]\(phone\)$", PJSIP.read_text()))
CLIENT = "+79161234567"


@pytest.fixture(scope="module")
def nodes(lab) -> Iterator[dict[str, Node]]:
    """Node A with no phone of its own, node B with mgr1 (the main lab stays as it is)."""
    try:
        started = start_nodes({"b": ("mgr1",)}, ALL_PHONES)
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
        # node A has no contact for mgr1: it cannot ring the phone itself
        status, body = originate(nodes["a"], "PJSIP/mgr1", CLIENT)
        assert status >= 400, body
        assert sipp.read_events(phone.log) == []
        # through the trunk, node B rings it, and the phone sees the client's number
        status, body = originate(nodes["a"], "PJSIP/mgr1@node-b", CLIENT)
        assert status == 200, body
        await eventually(lambda: (CLIENT, "answered") in sipp.read_events(phone.log), timeout=10)
    finally:
        phone.stop()
