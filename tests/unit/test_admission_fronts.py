"""Admission control on both fronts, wired as ari_app.main wires it: over the calls bound a
new call skips the route and goes straight to the operators' queue with a priority, the
calls in progress go on untouched, and routing returns once they end.

ARI: the whole app on the in-memory ARI (tests/support/fake_world.py). FastAGI: the real
server over a real socket, with a client that writes what Asterisk writes."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

from agi.server import AgiServer
from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig
from ari_app.core.admission import CALLS_IN_PROGRESS, Bounds
from ari_app.core.clock import FixedClock
from ari_app.core.dialplan import OPERATORS_CONTEXT, priority_extension
from ari_app.core.models import OutcomeResult
from ari_app.history.store import MemoryHistoryStore
from ari_app.main import agi_endpoint_of, agi_route, shed_calls
from ari_app.ops.load import Admission
from ari_app.ops.metrics import Metrics
from ari_app.router import Router
from tests.support.fake_world import (
    A_CLIENT,
    B_CLIENT,
    NEW_CALLER,
    NOW,
    crm,
    policy_with,
    running,
)
from tests.unit.test_agi_server import READ_TIMEOUT, FakeAsterisk, environment

CONFIG = Path(__file__).resolve().parents[2] / "config"
TWO_CALLS = Bounds(calls_in_progress=2)  # lag and latency not watched here
UNKNOWN = policy_with().strategy.table.unknown  # 20: an unidentified caller's base priority


def shed_count(metrics: Metrics, reason: str = CALLS_IN_PROGRESS) -> float:
    return metrics.registry.get_sample_value("caseline_calls_shed_total", {"reason": reason}) or 0


async def test_ari_over_the_calls_bound_a_new_call_is_continued_to_the_operators_in_one_request() -> None:
    async with running(admission=TWO_CALLS) as world:
        fake, metrics = world.ari, world.admission.metrics
        fake.phone("PJSIP/mgr1").keeps_ringing()
        fake.phone("PJSIP/mgr2").keeps_ringing()
        held = [fake.caller_arrives(A_CLIENT), fake.caller_arrives(B_CLIENT)]
        legs = [await fake.ringing("PJSIP/mgr1"), await fake.ringing("PJSIP/mgr2")]
        before = len(fake.requests)

        shed = fake.caller_arrives(NEW_CALLER)
        await fake.until(lambda: fake.live_channels[shed].context == OPERATORS_CONTEXT)

        # no answer, no ring, no variable, no route: one `continue`, the priority in the extension
        assert fake.requests[before:] == [("continue_in_dialplan", {
            "channel_id": shed, "context": OPERATORS_CONTEXT, "extension": f"{UNKNOWN:03d}", "priority": 1})]
        assert shed_count(metrics) == 1
        assert shed not in world.app.calls and shed not in world.outcomes
        # the calls in progress are untouched: still ringing, still ours
        assert sorted(world.app.calls) == sorted(held)
        assert [fake.live_channels[leg].state for leg in legs] == ["Ringing", "Ringing"]

        for call_id in held:
            fake.hang_up(call_id)
            await world.outcome(call_id)
        call_id, outcome = await world.call("+79057778800")  # a new caller, routed again

    assert outcome.result is OutcomeResult.QUEUE
    assert {"channel_id": call_id, "name": "CASELINE_PRIORITY", "value": str(UNKNOWN)} in fake.sent("set_variable")
    assert shed_count(metrics) == 1


async def test_ari_a_shed_call_names_the_policys_queue_when_it_is_not_the_dialplans_default() -> None:
    policy = policy_with(queues__operators__asterisk_queue="benchq")
    async with running(policy=policy, admission=Bounds(calls_in_progress=1)) as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").keeps_ringing()
        fake.caller_arrives(A_CLIENT)
        await fake.ringing("PJSIP/mgr1")
        before = len(fake.requests)
        shed = fake.caller_arrives(NEW_CALLER)
        await fake.until(lambda: fake.live_channels[shed].context == OPERATORS_CONTEXT)
        sent = [name for name, _ in fake.requests[before:]]

    assert sent == ["set_variable", "continue_in_dialplan"]
    assert fake.live_channels[shed].variables["CASELINE_QUEUE"] == "benchq"


async def test_fastagi_over_the_calls_bound_answers_the_shed_variables_without_routing() -> None:
    config = LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml")
    router = Router(config=config, history=MemoryHistoryStore(), crm=crm, clock=FixedClock(NOW),
                    windows=HistorySettings().windows(), history_budget_s=1.0, crm_budget_s=1.0,
                    default_region="RU")
    route = agi_route(router)
    entered, release = asyncio.Event(), asyncio.Event()
    routed: list[str] = []

    async def held_first(raw: str | None, call_id: str):
        routed.append(call_id)
        if call_id == "1718000000.1":  # the call in progress: routing until released
            entered.set()
            await release.wait()
        return await route(raw, call_id)

    metrics = Metrics()
    # as ari_app.main wires it: the count reads the server, bound below
    admission = Admission(Bounds(calls_in_progress=1), lambda: server.routing, metrics=metrics)
    server = AgiServer(held_first, agi_endpoint_of(config), "127.0.0.1", 0, metrics=metrics,
                       route_timeout=READ_TIMEOUT, shed=shed_calls(admission, router))
    await server.start()
    clients: list[FakeAsterisk] = []
    try:
        first = await FakeAsterisk.connect(server.port)
        clients.append(first)
        in_progress = asyncio.create_task(first.session(environment(caller=A_CLIENT, uniqueid="1718000000.1")))
        async with asyncio.timeout(READ_TIMEOUT):
            await entered.wait()

        clients.append(second := await FakeAsterisk.connect(server.port))
        shed = await second.session(environment(caller=NEW_CALLER, uniqueid="1718000000.2"))
        # the operators at a priority computed without I/O, in one command like a decision
        assert shed == {"CASELINE_ROUTE": f"shed:{UNKNOWN}::1|q:operators"}
        assert routed == ["1718000000.1"]  # the shed session never reached the route
        assert shed_count(metrics) == 1

        release.set()
        assert (await in_progress)["CASELINE_ROUTE"].startswith("ok:")  # untouched by the shedding
        clients.append(third := await FakeAsterisk.connect(server.port))
        again = await third.session(environment(caller=NEW_CALLER, uniqueid="1718000000.3"))
        assert again["CASELINE_ROUTE"].startswith("ok:") and routed[-1] == "1718000000.3"
    finally:
        for client in clients:
            await client.close()
        await server.close()
    assert metrics.registry.get_sample_value("caseline_agi_sessions_total", {"result": "shed"}) == 1


def test_the_dialplan_queues_a_shed_call_at_the_priority_its_extension_carries() -> None:
    """What the two fronts hand a shed call to (no Asterisk here: the lab runs it)."""
    dialplan = CONFIG.parent / "dialplan"
    operators = (dialplan / "extensions.conf").read_text().split("\n[operators]\n", 1)[1].split("\n[", 1)[0]
    shed = operators[operators.index("exten => _XXX,1,"):]
    assert shed.startswith("exten => _XXX,1,Set(CASELINE_PRIORITY=${EXTEN})\n")
    assert "same => n,Goto(s,1)" in shed  # then the same Queue() as every queued call
    assert all(re.fullmatch(r"[0-9]{3}", priority_extension(p)) for p in range(-5, 200))
    agi = (dialplan / "caseline-agi.conf").read_text()
    assert 'REGEX("^(ok|fallback|shed):[0-9]+:' in agi  # walked like a decision: q:<queue>, its priority
