"""What the ops console reads, wired for the ops API (ConsoleHooks): the decision log, its
entries for the pictures, explain for a number at a moment, the routing file editor."""
from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from ari_app.config.live import LiveConfig
from ari_app.core.clock import FixedClock
from ari_app.core.explain import explain_data
from ari_app.ops.console_api import ConsoleHooks
from ari_app.ops.decision_query import DecisionQuery
from ari_app.ops.live_events import LiveFeed
from ari_app.ops.routing_edit import Reload, RoutingEditor
from ari_app.record.decision_log import find_decisions
from ari_app.record.replay import entries_since
from ari_app.router import Router


def explain_hook(router: Router, *, crm_configured: bool):
    """`caseline explain --json` as a function: the running router, its clock fixed at `at`."""
    async def explain_number(number: str, at: datetime | None) -> dict[str, Any]:
        if at is not None and at.tzinfo is None:  # like --at: company time
            at = at.replace(tzinfo=ZoneInfo(router.config.current.policy.company.timezone))
        asked = copy.copy(router)  # same config, history and CRM; one clock reading
        asked.clock = FixedClock(at or router.clock.now())
        now = asked.clock.now()
        routed = await asked.route(number)
        return explain_data(routed.profile, routed.decision, routed.snapshot.policy, now,
                            crm_configured=crm_configured, crm_record=routed.crm_record)
    return explain_number


def console_hooks(*, redis: Redis, router: Router, config: LiveConfig, reload: Reload,
                  feed: LiveFeed, crm_configured: bool) -> ConsoleHooks:
    async def decisions(query: DecisionQuery) -> list[dict[str, str]]:
        return await find_decisions(redis, query)

    async def since(start: datetime) -> list[dict[str, str]]:
        return await entries_since(redis, start)

    return ConsoleHooks(feed=feed, decisions=decisions, entries_since=since,
                        explain=explain_hook(router, crm_configured=crm_configured),
                        routing=RoutingEditor(config, reload))
