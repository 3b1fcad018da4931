"""The console's decision-log search (GET /decisions): filters, and each entry as JSON.

Pure: the wiring reads the log (record/decision_log.py) and hands entries here.
Numbers in the log are masked to their last 4 digits, so a number matches on those.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ari_app.config.history_settings import parse_duration

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_DIGITS = re.compile(r"\D")
_WORD = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)


class BadQuery(ValueError):
    """A filter that does not parse; its text names the parameter."""


def parse_moment(value: str, name: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (without an offset: UTC), or a duration back from now (`24h`, `90m`)."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            return (now or datetime.now(UTC)) - parse_duration(text)
        except ValueError:
            raise BadQuery(f"{name}: {value[:40]!r} is neither ISO 8601 nor a duration like 24h") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DecisionQuery:
    number: str = ""  # digits only
    cls: str = ""
    service: str = ""
    outcome: str = ""
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_params(cls, params: Mapping[str, str], now: datetime | None = None) -> DecisionQuery:
        def word(name: str) -> str:
            value = params.get(name, "").strip()
            if value and not _WORD.fullmatch(value):
                raise BadQuery(f"{name}: not a valid value")
            return value

        number = _DIGITS.sub("", params.get("number", ""))[:20]
        if params.get("number", "").strip() and not number:
            raise BadQuery("number: no digits")
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise BadQuery("limit: not a number") from None
        since = parse_moment(params["since"], "since", now) if params.get("since") else None
        until = parse_moment(params["until"], "until", now) if params.get("until") else None
        return cls(number, word("class"), word("service"), word("outcome"), since, until,
                   max(1, min(limit, MAX_LIMIT)))

    def matches(self, entry: Mapping[str, str]) -> bool:
        if self.cls and entry.get("class") != self.cls:
            return False
        if self.service and entry.get("service") != self.service:
            return False
        if self.outcome and entry.get("outcome") != self.outcome:
            return False
        if self.number:
            shown = _DIGITS.sub("", entry.get("number", ""))  # "***4567" -> "4567"
            if not shown or not (self.number.endswith(shown) or shown.endswith(self.number)):
                return False
        if self.since or self.until:
            try:
                at = datetime.fromisoformat(entry.get("at", ""))
            except ValueError:
                return False
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            if (self.since and at < self.since) or (self.until and at > self.until):
                return False
        return True

    def stream_range(self, longest_call: timedelta = timedelta(hours=6)) -> tuple[str, str]:
        """(min, max) stream ids to scan: an entry is written when its call ends, after `at`."""
        low = f"{int(self.since.timestamp() * 1000)}-0" if self.since else "-"
        high = f"{int((self.until + longest_call).timestamp() * 1000)}-0" if self.until else "+"
        return low, high


def route_results(route: str, steps: str) -> list[dict[str, str]]:
    """Each planned step with what happened there: `manager:mgr1` + `mgr1:busy` -> busy.

    >>> route_results("manager:mgr1 > queue:operators", "mgr1:busy > queue:operators")
    [{'step': 'manager:mgr1', 'result': 'busy'}, {'step': 'queue:operators', 'result': 'reached'}]
    >>> route_results("manager:mgr1 > queue:operators", "mgr1:answered")
    [{'step': 'manager:mgr1', 'result': 'answered'}, {'step': 'queue:operators', 'result': 'not reached'}]
    """
    done = [s for s in steps.split(" > ") if s]
    out = []
    for step in (s for s in route.split(" > ") if s):
        kind, _, target = step.partition(":")
        result = "not reached"
        for i, happened in enumerate(done):
            if kind in ("manager", "supervisor"):  # the executor writes "mgr1:busy"
                if not happened.startswith(f"{target}:"):
                    continue
                result = happened[len(target) + 1:]
            elif happened == kind or happened.startswith(f"{kind}:"):
                # "queue:operators", "ivr:main:1"; a mailbox is written by its address
                result = happened[len(step) + 1:] if happened.startswith(f"{step}:") else "reached"
                result = result or "reached"
            else:
                continue
            del done[i]
            break
        out.append({"step": step, "result": result})
    return out


def reasons_list(value: object) -> list[dict[str, str]]:
    """A decision's reasons as JSON output gives them: [{"rule", "text"}, ...].

    `value` is the decision log's stored field (a JSON text of [rule, text] pairs: a stream
    field holds only text) or an entry's reasons already read; anything unreadable is left out.

    >>> reasons_list('[["abc.A", "ABC A: the manager"]]')
    [{'rule': 'abc.A', 'text': 'ABC A: the manager'}]
    """
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value or "[]")
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        if isinstance(item, Mapping) and {"rule", "text"} <= item.keys():
            rule, text = item["rule"], item["text"]
        elif isinstance(item, list | tuple) and len(item) == 2:
            rule, text = item
        else:
            continue
        out.append({"rule": str(rule), "text": str(text)})
    return out


def entry_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A log entry for the console: reasons a list, the route with results, no stored profile."""
    out: dict[str, Any] = {k: v for k, v in entry.items() if k != "profile"}
    out["reasons"] = reasons_list(entry.get("reasons"))
    out["route_steps"] = route_results(entry.get("route", ""), entry.get("steps", ""))
    return out
