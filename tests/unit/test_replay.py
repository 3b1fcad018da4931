"""Replay: past calls re-decided under a candidate policy, from the profiles in the decision log."""
from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis

from ari_app.config.files import ConfigError
from ari_app.config.live import LiveConfig
from ari_app.config.policy import load_policy, parse_policy
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
from ari_app.main import replay_hook
from ari_app.record import replay as replay_mod
from ari_app.record.outcomes import DECISION_LOG, decision_entry
from ari_app.record.replay import Routing, entries_since, replay, routing_of

CONFIG = Path(__file__).resolve().parents[2] / "config"
RUNNING = load_policy(CONFIG / "routing.yaml")
RAW: dict[str, Any] = yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8"))
OPEN = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)  # Monday 12:00 Moscow
CLOSED = datetime(2026, 6, 14, 9, 0, tzinfo=UTC)  # Sunday: closed


def client(abc: str, responsible: str = "mgr1") -> CallerProfile:
    return CallerProfile("+79161234567", HistoryFacts(SourceStatus.OK, HistoryClass.OLD),
                         CrmFacts(SourceStatus.OK, CrmRecord("C-1", abc=abc, responsible=responsible)))


NEW = CallerProfile("+79990001123", HistoryFacts(SourceStatus.OK, HistoryClass.NEW), CrmFacts(SourceStatus.UNKNOWN))


def entry(call_id: str, profile: CallerProfile, at: datetime) -> dict[str, str]:
    return decision_entry(call_id, at, profile, decide(profile, RUNNING, at), Outcome(OutcomeResult.QUEUE), 1.0,
                          mask_numbers=True)


def candidate(**changes: Any) -> Any:
    data = copy.deepcopy(RAW)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    return parse_policy(data)


def test_same_policy_changes_nothing() -> None:
    report = replay([entry("a", client("A"), OPEN), entry("b", NEW, OPEN)], RUNNING, RUNNING, OPEN)
    assert (report.calls, report.replayed, report.changed, report.changes) == (2, 2, 0, {})


def test_changes_are_grouped_by_service_first_target_and_priority() -> None:
    a_to_operators = candidate(rules__abc__A={"target": "queue:operators", "priority": 80})
    entries = [entry(f"a{i}", client("A"), OPEN) for i in range(7)] + [entry("b", client("B"), OPEN),
                                                                         entry("n", NEW, OPEN)]
    report = replay(entries, RUNNING, a_to_operators, OPEN - timedelta(hours=1))
    assert (report.calls, report.replayed, report.changed) == (9, 9, 7)
    data = report.as_dict()
    assert data["unchanged"] == 2
    [change] = data["changes"]
    assert change["from"] == {"service": "manager", "first_target": "manager:mgr1", "priority": 70}
    assert change["to"] == {"service": "operator", "first_target": "queue:operators", "priority": 80}
    assert change["count"] == 7 and change["examples"] == ["a0", "a1", "a2", "a3", "a4"]
    assert "7  manager manager:mgr1 prio 70  ->  operator queue:operators prio 80" in report.text()


def test_each_call_is_decided_at_its_own_time() -> None:
    always_open = candidate(hours__enabled=False)
    report = replay([entry("day", client("B"), OPEN), entry("sunday", client("B"), CLOSED)],
                    RUNNING, always_open, CLOSED)
    assert report.changed == 1
    [change] = report.sorted_changes()
    assert change.examples == ["sunday"]
    assert change.before.service == "self_service" and change.after.first_target == "manager:mgr1"


def test_entries_without_a_profile_are_counted_not_replayed() -> None:
    old = {k: v for k, v in entry("old", NEW, OPEN).items() if k != "profile"}
    damaged = entry("bad", NEW, OPEN) | {"profile": "{"}
    report = replay([old, damaged, entry("ok", NEW, OPEN)], RUNNING, RUNNING, OPEN)
    assert (report.calls, report.replayed, report.without_profile) == (3, 1, 2)


def test_routing_of_skips_the_intro_recording() -> None:
    c_client = decide(client("C"), RUNNING, OPEN)  # c_info recording, then the IVR
    assert routing_of(c_client) == Routing("self_service", "ivr:main", 10)


async def test_entries_since_reads_the_stream_in_pages(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_mod, "PAGE", 2)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    await redis.xadd(DECISION_LOG, {"call_id": "too-old"}, id=f"{now_ms - 3_600_000}-0")
    for i in range(5):
        await redis.xadd(DECISION_LOG, {"call_id": f"c{i}"}, id=f"{now_ms - 1000 + i}-0")
    got = await entries_since(redis, datetime.now(UTC) - timedelta(minutes=10))
    assert [e["call_id"] for e in got] == ["c0", "c1", "c2", "c3", "c4"]


async def test_replay_hook_of_the_ops_api(redis: Redis) -> None:
    await redis.xadd(DECISION_LOG, entry("a1", client("A"), OPEN))
    await redis.xadd(DECISION_LOG, entry("n1", NEW, OPEN))
    hook = replay_hook(redis, LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml"))
    cand = (CONFIG / "routing.yaml").read_text().replace("mode: retention", "mode: expansion")
    report = await hook(cand.encode(), timedelta(hours=1))
    assert (report["calls"], report["replayed"], report["changed"]) == (2, 2, 2)
    changes = {(c["from"]["priority"], c["to"]["priority"]) for c in report["changes"]}
    assert changes == {(70, 60), (20, 70)}  # expansion: new callers first, A after them
    with pytest.raises(ConfigError) as err:
        await hook(cand.replace('target: "queue:operators"', 'target: "manager:ghost"', 1).encode(),
                   timedelta(hours=1))
    assert err.value.file == "<candidate routing.yaml>" and err.value.line is not None
    assert "manager:ghost not found" in err.value.reason
