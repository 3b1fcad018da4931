"""Calls through the FastAGI front as ari_app.main wires it, walked by the shipped dialplan in
the dialplan interpreter (tests/support/dialplan_sim.py): the real router, policy, server,
route program and decision log; only Asterisk is replaced, and the lab runs the real one."""
from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from agi.server import AgiServer, Route
from ari_app.config.callback_settings import CallbackSettings
from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig, Snapshot
from ari_app.core.clock import FixedClock
from ari_app.core.policy import Policy
from ari_app.history.cdr import CdrRow
from ari_app.history.store import MemoryHistoryStore
from ari_app.main import agi_compile, agi_route
from ari_app.ops.metrics import Metrics
from ari_app.record.agi_calls import AgiCalls
from ari_app.record.callbacks import CallbackFiler, CallbackStore
from ari_app.record.outcomes import OutcomeRecorder, last_decisions
from ari_app.record.pending_writes import PendingWrites
from ari_app.router import Router
from tests.support.dialplan_sim import Call, Dialplan
from tests.support.fake_world import CONFIG, NOW, crm

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan"
TRUNK = "PJSIP/trunk-00000001"
_ids = itertools.count(1)


@dataclass
class Walk:
    server: AgiServer
    calls: AgiCalls
    plan: Dialplan
    redis: Redis | None
    store: CallbackStore | None
    metrics: Metrics

    def globals(self) -> dict[str, str]:
        return {"CASELINE_AGI_URL": f"agi://127.0.0.1:{self.server.port}"}

    async def call(self, number: str, entry: tuple[str, str] = ("inbound", "9100"),
                   **script: Any) -> Call:
        """One caller through the dialplan from `entry`, until the channel is gone."""
        call = Call(self.plan, caller=number, uniqueid=f"1741766400.{next(_ids)}",
                    globals={**self.globals(), **script.pop("globals", {})}, **script)
        await call.run(*entry)
        return call

    async def cdrs_arrive(self, call: Call, talk_s: int = 42) -> None:
        """Asterisk posts the call's CDRs (record/cdr_listener.py hands them over)."""
        dialled = [e[1] for e in call.events if e[0] == "dial"]
        answered = call.vars.get("DIALSTATUS") == "ANSWER" and dialled
        rows = [CdrRow(src=call.callerid["num"], dst="9100", dcontext="caseline-agi", channel=TRUNK,
                       dstchannel=f"{endpoint}-0000000{n}", start=datetime.now(UTC),
                       billsec=talk_s if answered and n == len(dialled) else 0,
                       answered=bool(answered and n == len(dialled)), uniqueid=call.uniqueid,
                       linkedid=call.uniqueid, userfield=call.userfield if n == len(dialled) else "")
                for n, endpoint in enumerate(dialled, 1)]
        rows = rows or [CdrRow(src=call.callerid["num"], dst="9100", dcontext="caseline-agi",
                               channel=TRUNK, dstchannel="", start=datetime.now(UTC), billsec=0,
                               answered=True, uniqueid=call.uniqueid, linkedid=call.uniqueid,
                               userfield=call.userfield)]
        await self.calls.call_ended(rows)

    async def logged(self) -> list[dict[str, Any]]:
        assert self.redis is not None
        return await last_decisions(self.redis, 10)


@asynccontextmanager
async def walking(redis: Redis | None = None, *, policy: Policy | None = None,
                  callbacks: bool = True, route: Route | None = None,
                  **server_options: Any) -> AsyncIterator[Walk]:
    """The FastAGI front of `caseline run` on a free port, with the shipped config (or
    `policy`), NOW as the clock; with `redis`, the decision log and callback requests;
    `route` replaces the router's decision."""
    config = LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml")
    if policy is not None:
        config.current = Snapshot(policy, config.current.directory)
    router = Router(config=config, history=MemoryHistoryStore(), crm=crm, clock=FixedClock(NOW),
                    windows=HistorySettings().windows(), history_budget_s=1.0, crm_budget_s=1.0,
                    default_region="RU")
    recorder = store = filer = None
    if redis is not None:
        recorder = OutcomeRecorder(redis, max_entries=100, pending=PendingWrites())
        store = CallbackStore(redis)
        if callbacks:
            filer = CallbackFiler(store, CallbackSettings(), PendingWrites(), clock=FixedClock(NOW))
    calls = AgiCalls(recorder, filer, lambda: config.current.policy)
    metrics = Metrics()
    server = AgiServer(route or agi_route(router), lambda person: None, "127.0.0.1", 0, metrics=metrics,
                       compile=agi_compile(config), calls=calls, **server_options)
    await server.start()
    try:
        yield Walk(server, calls, Dialplan.load(DIALPLAN), redis, store, metrics)
    finally:
        await server.close()
