"""The ops API with the console, in-process, over real parts: a real Redis decision log, a
LiveConfig over a copy of the shipped config (hours off, comments kept), the real reload,
replay, explain and routing editor; only the live calls come from a fake the test drives.
Used by tests/unit/test_console_api.py and the browser tests in tests/console/.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig
from ari_app.core.clock import SystemClock
from ari_app.core.decide import decide
from ari_app.core.models import (
    CallerProfile,
    CrmFacts,
    CrmRecord,
    HistoryClass,
    HistoryFacts,
    Outcome,
    OutcomeResult,
    SourceStatus,
)
from ari_app.core.policy import Policy
from ari_app.history.store import MemoryHistoryStore
from ari_app.main import replay_hook
from ari_app.ops.api import OpsServer, create_app
from ari_app.ops.callbacks_api import CallbackHooks
from ari_app.ops.config_reload import ConfigReloads
from ari_app.ops.live_events import LiveFeed
from ari_app.ops.metrics import Metrics
from ari_app.record.console_data import console_hooks
from ari_app.record.outcomes import DECISION_LOG, LEARNED_KEY, decision_entry
from ari_app.router import Router

PROJECT = Path(__file__).resolve().parents[2]
TOKEN = "console-test-token-0001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = "<img src=x onerror=alert(1)>"  # a caller name and a CRM name, to be shown as text
A_CLIENT = "+79161234567"  # the CRM knows them as HOSTILE: A, mgr1
NEW_CALLER = "+79990001123"


def config_copy(folder: Path) -> Path:
    """config/ without the Asterisk files, open 24/7 (so decisions do not depend on the hour);
    routing.yaml keeps its comments, as ops staff see it."""
    shutil.copytree(PROJECT / "config", folder, ignore=shutil.ignore_patterns("asterisk"))
    routing = folder / "routing.yaml"
    text = routing.read_text(encoding="utf-8")
    hours_on = "hours:\n  enabled: true"
    assert hours_on in text, "config/routing.yaml: hours.enabled moved; update tests/support/console_app.py"
    routing.write_text(text.replace(hours_on, "hours:\n  enabled: false", 1), encoding="utf-8")
    return folder


class FakeLive:
    """The live-call source (StasisApp.live_calls as ari_app.record.live_view shows it) and
    the feed it reports to, driven by the test."""

    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed
        self.calls: dict[str, dict[str, Any]] = {}

    def __call__(self) -> list[dict[str, Any]]:
        return [dict(c) for c in self.calls.values()]

    def start(self, call_id: str, *, number: str = "***4567", name: str = "", cls: str = "new",
              service: str = "operator", step: str = "queue:operators", priority: int = 20,
              client: str = "") -> None:
        self.calls[call_id] = {"call_id": call_id, "step": step, "number": number, "name": name,
                               "class": cls, "service": service, "priority": priority,
                               "route": [step], "client": client, "holder": ""}
        self.feed.decided(call_id)

    def step(self, call_id: str, step: str) -> None:
        self.calls[call_id]["step"] = step  # the stream sees it within its refresh

    def end(self, call_id: str, outcome: str = "answered") -> None:
        self.feed.ended(call_id, outcome)
        del self.calls[call_id]


async def crm(number: str) -> CrmFacts:
    if number == A_CLIENT:  # `extra` is display only: explain shows it, decide is not given it
        return CrmFacts(SourceStatus.OK, CrmRecord("C-1001", name=HOSTILE, abc="A", responsible="mgr1",
                                                   extra={"segment": "fleet"}))
    return CrmFacts(SourceStatus.UNKNOWN)


def a_client() -> CallerProfile:
    return CallerProfile(A_CLIENT, HistoryFacts(SourceStatus.OK, HistoryClass.OLD),
                         CrmFacts(SourceStatus.OK, CrmRecord("C-1001", name=HOSTILE, abc="A", responsible="mgr1")))


def new_caller(number: str = NEW_CALLER) -> CallerProfile:
    return CallerProfile(number, HistoryFacts(SourceStatus.OK, HistoryClass.NEW), CrmFacts(SourceStatus.UNKNOWN))


@dataclass
class Seed:
    call_id: str
    profile: CallerProfile
    minutes_ago: int
    outcome: OutcomeResult = OutcomeResult.QUEUE
    steps: tuple[str, ...] = ("queue:operators",)
    fallbacks: tuple[str, ...] = ()
    answered_by: str | None = None
    talks: tuple[tuple[str, int], ...] = ()  # learned from CDRs: (person, seconds)
    holder: str | None = None


def default_seeds() -> list[Seed]:
    """A small day: new callers to the operators, an A client whose manager was busy, a shed."""
    return [
        Seed("c-new-1", new_caller("+79990001123"), 50),
        Seed("c-new-2", new_caller("+79990002234"), 40, talks=(("op1", 30),), holder="op1"),
        Seed("c-a-1", a_client(), 30, OutcomeResult.ANSWERED, ("mgr1:busy", "sup1:answered"),
             ("busy",), "sup1", talks=(("sup1", 42), ("mgr1", 180)), holder="mgr1"),
        Seed("c-shed", new_caller("+79990003345"), 20, OutcomeResult.DIALPLAN, ()),
        Seed("c-old", new_caller("+79990004456"), 26 * 60),  # older than a day
    ]


async def seed_log(redis: Redis, policy: Policy, seeds: list[Seed], now: datetime | None = None) -> None:
    """Decision-log entries as OutcomeRecorder writes them (decided under `policy` at their
    time), and what the CDR listener learned about who talked."""
    now = now or datetime.now(UTC)
    for seed in sorted(seeds, key=lambda s: -s.minutes_ago):
        at = now - timedelta(minutes=seed.minutes_ago)
        outcome = Outcome(seed.outcome, seed.answered_by, sum(s for _, s in seed.talks),
                          list(seed.steps), list(seed.fallbacks))
        entry = decision_entry(seed.call_id, at, seed.profile, decide(seed.profile, policy, at), outcome,
                               1.5, mask_numbers=True)
        # the stream id is when the entry was written: when the call ended
        await redis.xadd(DECISION_LOG, entry, id=f"{int(at.timestamp() * 1000) + 60_000}-*")
        if seed.talks:
            await redis.set(LEARNED_KEY + seed.call_id,
                            json.dumps({"talks": [list(t) for t in seed.talks], "holder": seed.holder}))


@dataclass
class ConsoleApp:
    url: str
    feed: LiveFeed
    live: FakeLive
    config: LiveConfig
    config_dir: Path
    server: OpsServer
    dialled: list[str] = field(default_factory=list)  # POST /callbacks/{id}/dial seen

    @property
    def routing_path(self) -> Path:
        return self.config_dir / "routing.yaml"


def callback_hooks(requests: list[dict[str, Any]], dialled: list[str]) -> CallbackHooks:
    """The real routes (ops/callbacks_api.py) over a fixed list; "dial now" is recorded."""
    async def listing(limit: int) -> list[dict[str, Any]]:
        return requests[:limit]

    async def file(number: str, reason: str) -> dict[str, Any]:
        return {"ok": False, "error": "not in this test"}

    async def dial(request_id: str) -> tuple[int, dict[str, Any]]:
        dialled.append(request_id)
        return 202, {"ok": True, "id": request_id, "status": "dialling", "person": "mgr1"}

    return CallbackHooks(listing=listing, file=file, dial=dial)


@asynccontextmanager
async def console_app(tmp_path: Path, redis: Redis, *, token: str | None = TOKEN,
                      callbacks: list[dict[str, Any]] | None = None,
                      feed: LiveFeed | None = None) -> AsyncIterator[ConsoleApp]:
    config_dir = config_copy(tmp_path / "config")
    config = LiveConfig(config_dir / "routing.yaml", config_dir / "legal_entities.yaml",
                        numbering_path=config_dir / "numbering" / "ru.csv")
    reloads = ConfigReloads(config)
    feed = feed or LiveFeed()
    live = FakeLive(feed)
    router = Router(config=config, history=MemoryHistoryStore(), crm=crm, clock=SystemClock(),
                    windows=HistorySettings().windows(), history_budget_s=1.0, crm_budget_s=1.0,
                    default_region="RU")

    async def invalidate(number: str | None) -> dict[str, Any]:
        return {"ok": True, "invalidated": 0}

    dialled: list[str] = []
    app = create_app(token=token, metrics=Metrics(), checks={}, reload=reloads.reload, live_calls=live,
                     invalidate=invalidate, replay=replay_hook(redis, config),
                     callbacks=callback_hooks(callbacks, dialled) if callbacks is not None else None,
                     console=console_hooks(redis=redis, router=router, config=config, reload=reloads.reload,
                                           feed=feed, crm_configured=True))
    server = OpsServer(app, port=0)
    await server.start()
    try:
        yield ConsoleApp(f"http://127.0.0.1:{server.port}", feed, live, config, config_dir, server, dialled)
    finally:
        await server.close()
        await reloads.aclose()
