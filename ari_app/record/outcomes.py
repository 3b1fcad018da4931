"""The capped decision log (a Redis stream) that `caseline calls --last N` reads.

History (who talked with the client, and so who holds the case) is not written here: it is
learned from Asterisk's CDRs for every call, whatever path it took (record/cdr_listener.py).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from ari_app.core.models import (
    CallerProfile,
    Decision,
    Outcome,
)
from ari_app.core.numbers import mask
from ari_app.ops.decision_query import reasons_list
from ari_app.record.pending_writes import PendingWrites
from ari_app.record.profile_json import profile_to_json

DECISION_LOG = "caseline:decisions"
LEARNED_KEY = "caseline:learned:"  # + call id: who talked (record/cdr_listener.py)
def decision_entry(call_id: str, started: datetime, profile: CallerProfile, decision: Decision,
                   outcome: Outcome, decide_ms: float, *, mask_numbers: bool) -> dict[str, str]:
    number = profile.number
    shown = mask(number) if mask_numbers or not number else number
    return {
        "call_id": call_id,
        "at": started.isoformat(timespec="seconds"),
        "number": shown,
        "class": str(profile.history.cls),
        "callback_kind": str(profile.history.callback_kind or ""),
        "owner": profile.case_holder or "",
        "abc": profile.abc or "",
        "crm": str(profile.crm.status),
        "history": str(profile.history.status),
        "service": str(decision.service),
        "priority": str(decision.priority),
        "route": " > ".join(f"{s.kind}:{s.target}" for s in decision.route),
        # a stream field holds text: JSON of [rule, text] pairs; read_entry() gives a list back
        "reasons": json.dumps([[r.rule, r.text] for r in decision.reasons], ensure_ascii=False),
        "outcome": outcome.result,
        "answered_by": outcome.answered_by or "",
        "talk_s": str(outcome.talk_s),
        "steps": " > ".join(outcome.steps),
        "fallbacks": ",".join(outcome.fallbacks),
        "decide_ms": f"{decide_ms:.2f}",
        # what decide saw (number masked like above), so `caseline replay` can re-decide the
        # call under another policy at its own time (`at`) without the CRM
        "profile": profile_to_json(profile, number=shown if number else None),
    }


class OutcomeRecorder:
    def __init__(self, redis: Redis, *, max_entries: int, pending: PendingWrites,
                 mask_numbers: bool = True) -> None:
        self.redis = redis
        self.max_entries = max_entries
        self.pending = pending
        self.mask_numbers = mask_numbers

    async def record(self, call_id: str, started: datetime, profile: CallerProfile,
                     decision: Decision, outcome: Outcome, decide_ms: float) -> None:
        entry = decision_entry(call_id, started, profile, decision, outcome, decide_ms,
                               mask_numbers=self.mask_numbers)
        await self.pending.write(f"decision log of call {call_id}", lambda: self.redis.xadd(
            DECISION_LOG, entry, maxlen=self.max_entries, approximate=True))

    async def record_many(self, calls: list[tuple[str, datetime, CallerProfile, Decision, Outcome, float]]) -> None:
        """Several calls' entries in one round trip (the FastAGI outcomes of one CDR flush)."""
        if not calls:
            return
        entries = [decision_entry(*call, mask_numbers=self.mask_numbers) for call in calls]

        async def write() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.xadd(DECISION_LOG, entry, maxlen=self.max_entries, approximate=True)
                await pipe.execute()
        more = f" and {len(calls) - 1} more" if len(calls) > 1 else ""
        await self.pending.write(f"decision log of call {calls[0][0]}{more}", write)


def read_entry(fields: Mapping[bytes | str, bytes | str]) -> dict[str, Any]:
    """One stream entry as every reader gives it: text fields, `reasons` a list of
    {"rule", "text"} (the stored JSON text decoded; an unreadable one is [])."""
    entry: dict[str, Any] = {_text(k): _text(v) for k, v in fields.items()}
    entry["reasons"] = reasons_list(entry.get("reasons"))
    return entry


async def last_decisions(redis: Redis, count: int) -> list[dict[str, Any]]:
    """The newest `count` entries (read_entry), each with who talked with the client once the
    call's records were learned (record/cdr_listener.py): `talks` ("op1 40s > mgr2 180s"),
    `holder`, and `answered_by` = the last who talked (a transfer changes it)."""
    rows = await redis.xrevrange(DECISION_LOG, count=count)
    return await with_learned(redis, [read_entry(fields) for _, fields in rows])


async def with_learned(redis: Redis, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`entries` (decision-log fields) with who talked and the holder learned since (above)."""
    if not entries:
        return entries
    learned = await redis.mget([LEARNED_KEY + e.get("call_id", "") for e in entries])
    for entry, raw in zip(entries, learned, strict=True):
        entry.setdefault("talks", "")
        entry.setdefault("holder", "")
        talks, holder = _learned(raw)
        if talks:
            entry["talks"] = " > ".join(f"{person} {seconds}s" for person, seconds in talks)
            entry["answered_by"] = talks[-1][0]
            entry["holder"] = holder or ""
    return entries


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _learned(raw: bytes | str | None) -> tuple[list[tuple[str, int]], str | None]:
    """(talks, holder) written by the CDR listener; nothing for a value that is not ours."""
    if raw is None:
        return [], None
    try:
        data = json.loads(raw)
        talks = [(str(p), int(s)) for p, s in data["talks"]]
        holder = data.get("holder")
    except (ValueError, TypeError, KeyError):
        return [], None
    return talks, holder if isinstance(holder, str) else None
