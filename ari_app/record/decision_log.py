"""Searching the decision log for the console (GET /decisions): newest first, filtered, bounded.

The log is a capped Redis stream; a search reads it in pages from the newest entry (or
from the query's time range), keeps the entries the query matches, stops at the query's
limit or after SCAN_CAP entries, and adds who talked and the learned holder.
"""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from ari_app.ops.decision_query import DecisionQuery
from ari_app.record.outcomes import DECISION_LOG, read_entry, with_learned

PAGE = 500
SCAN_CAP = 20_000  # entries read per search at most (the shipped cap of the log is 10,000)


async def find_decisions(redis: Redis, query: DecisionQuery, *,
                         scan_cap: int = SCAN_CAP) -> list[dict[str, Any]]:
    low, high = query.stream_range()
    found: list[dict[str, Any]] = []
    scanned = 0
    while len(found) < query.limit and scanned < scan_cap:
        rows = await redis.xrevrange(DECISION_LOG, max=high, min=low, count=PAGE)
        for _, fields in rows:
            scanned += 1
            entry = read_entry(fields)
            if query.matches(entry):
                found.append(entry)
                if len(found) >= query.limit:
                    break
        if len(rows) < PAGE:
            break
        high = "(" + _text(rows[-1][0])  # exclusive: older than the last one read
    return await with_learned(redis, found)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
