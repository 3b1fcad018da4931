"""Caseline in one process over the in-memory ARI (ari_app/ari/fake.py).

`running()` wires it as ari_app.main does: StasisApp -> CallRouting -> a real Router (the
shipped config/routing.yaml, MemoryHistoryStore, a CRM of a few clients, a clock inside
working hours) -> Executor. Only the ARI and the presence are in memory; outcomes are
kept by the World, and recorded only if the test passes the real OutcomeRecorder.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ari_app.ari.fake import FakeAri
from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig, Snapshot
from ari_app.config.policy import parse_policy
from ari_app.core.admission import Bounds
from ari_app.core.clock import FixedClock
from ari_app.core.models import CrmFacts, CrmRecord, Outcome, SourceStatus
from ari_app.core.policy import Policy
from ari_app.history.store import MemoryHistoryStore
from ari_app.main import shed_calls
from ari_app.ops.load import Admission
from ari_app.ops.metrics import Metrics
from ari_app.router import Routed, Router
from ari_app.stasis.app import StasisApp
from ari_app.stasis.call import Call
from ari_app.stasis.execute import Executor, leave_to_dialplan
from ari_app.stasis.handler import CallRouting

CONFIG = Path(__file__).resolve().parents[2] / "config"
NOW = datetime(2025, 3, 12, 8, 0, tzinfo=UTC)  # Wednesday 11:00 in Moscow: open

# What the CRM knows, and the route the shipped routing.yaml gives each caller
A_CLIENT = "+79161234567"  # A, mgr1, chain vip: mgr1 -> sup1 -> operators, priority 70
B_CLIENT = "+79031112200"  # B, mgr2, chain standard: mgr2 -> operators
C_CLIENT = "+79265554433"  # C, mgr2: the c_info recording, then IVR main
NEW_CALLER = "+79057778899"  # unknown: the operators at the `new` priority (20)
CLIENTS = {A_CLIENT: CrmRecord("C-1", abc="A", responsible="mgr1"),
           B_CLIENT: CrmRecord("C-2", abc="B", responsible="mgr2"),
           C_CLIENT: CrmRecord("C-3", abc="C", responsible="mgr2")}


def policy_with(**changes: object) -> Policy:
    """The shipped policy with changes, validated: policy_with(chains__vip__on_busy="step_down")."""
    data = yaml.safe_load((CONFIG / "routing.yaml").read_text())
    for key, value in changes.items():
        *path, last = key.split("__")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    return parse_policy(data)


async def crm(number: str) -> CrmFacts:
    record = CLIENTS.get(number)
    return CrmFacts(SourceStatus.OK if record else SourceStatus.UNKNOWN, record)


class MemoryPresence:
    """The Presence port in memory, with RedisPresence's rules (SET NX; release if ours)."""

    def __init__(self) -> None:
        self.claims: dict[str, str] = {}  # person -> call id

    async def claim(self, person: str, call_id: str, ttl_s: int) -> bool:
        if person in self.claims:
            return False
        self.claims[person] = call_id
        return True

    async def release(self, person: str, call_id: str) -> None:
        if self.claims.get(person) == call_id:
            del self.claims[person]


class NoRecorder:
    """OutcomeRecorder's interface, remembering nothing (the World keeps the outcomes)."""

    async def record(self, *args: Any) -> None:
        pass


@dataclass
class World:
    ari: FakeAri
    app: StasisApp
    task: asyncio.Task[None]  # app.run()
    config: LiveConfig
    presence: Any
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    routed: dict[str, Routed] = field(default_factory=dict)
    admission: Admission | None = None  # with `admission=Bounds(...)`: counting into its own Metrics

    @property
    def policy(self) -> Policy:
        return self.config.current.policy

    def use_policy(self, policy: Policy) -> None:
        """Calls that start from now on route with `policy`."""
        self.config.current = Snapshot(policy, self.config.current.directory)

    async def outcome(self, call_id: str, timeout: float = 2.0) -> Outcome:
        """The call's outcome once its task has finished (recorded or not)."""
        await self.ari.until(lambda: call_id in self.outcomes, timeout)
        return self.outcomes[call_id]

    async def talking(self, call_id: str) -> str:
        """The leg of the person the caller talks to, once both are in one bridge."""
        def other() -> str | None:
            for bridge in self.ari.live_bridges.values():
                if call_id in bridge.channels and len(bridge.channels) == 2:
                    return next(c for c in bridge.channels if c != call_id)
            return None
        await self.ari.until(other)
        return other() or ""

    async def call(self, number: str) -> tuple[str, Outcome]:
        """A caller arrives; returns their channel id and, once routed to the end, the outcome."""
        call_id = self.ari.caller_arrives(number)
        return call_id, await self.outcome(call_id)


@asynccontextmanager
async def running(ari: FakeAri | None = None, *, policy: Policy | None = None,
                  presence: Any = None, recorder: Any = None,
                  admission: Bounds | None = None, nodes: Any = None,
                  node_id: str = "", trunks: dict[str, str] | None = None) -> AsyncIterator[World]:
    """Caseline connected to `ari` (a new FakeAri by default); stopped on exit. With
    `admission`, new calls pass admission control as in ari_app.main (ARI calls counted);
    with `nodes`, busy checks ask it too (shared presence, stasis/shared_presence.py), and with
    `trunks` too, a person registered on another node is rung through its trunk."""
    ari = ari or FakeAri()
    config = LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml")
    if policy is not None:
        config.current = Snapshot(policy, config.current.directory)
    router = Router(config=config, history=MemoryHistoryStore(), crm=crm, clock=FixedClock(NOW),
                    windows=HistorySettings().windows(), history_budget_s=1.0, crm_budget_s=1.0,
                    default_region="RU")
    presence = presence if presence is not None else MemoryPresence()
    outcomes: dict[str, Outcome] = {}
    routes: dict[str, Routed] = {}

    def finished(call_id: str, routed: Routed, outcome: Outcome) -> None:
        routes[call_id], outcomes[call_id] = routed, outcome
        ari.touch()  # wakes World.outcome

    handler = CallRouting(router, Executor(presence, nodes=nodes, node_id=node_id, trunks=trunks), recorder or NoRecorder(),
                          on_finished=finished)

    async def on_call_error(call: Call, error: BaseException) -> None:
        await leave_to_dialplan(call, f"caseline_error:{type(error).__name__}")

    # backoff_cap_s=0: a dropped websocket is re-opened at once, not after a real pause
    gate = Admission(admission, lambda: len(app.calls), metrics=Metrics()) if admission else None
    app = StasisApp(ari, handler, backoff_cap_s=0, on_call_error=on_call_error,
                    shed=shed_calls(gate, router) if gate else None)
    task = asyncio.create_task(app.run(), name="stasis-app")
    try:
        async with asyncio.timeout(2):
            await app.connected.wait()
        yield World(ari, app, task, config, presence, outcomes, routes, gate)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
