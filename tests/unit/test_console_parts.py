"""The console's pure parts and small pieces: decision-log filters and route results, the
hourly counts, the live feed's view, the live view's names, the observer's events, the
routing file's atomic replacement."""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from ari_app.config.live import LiveConfig
from ari_app.core.decide import decide
from ari_app.core.models import Outcome, OutcomeResult
from ari_app.ops.decision_query import BadQuery, DecisionQuery, parse_moment, route_results
from ari_app.ops.live_events import LiveFeed
from ari_app.ops.metrics import Metrics
from ari_app.ops.routing_edit import RoutingEditor
from ari_app.ops.stats import hourly
from ari_app.record.live_view import live_view, shown_name
from ari_app.record.observer import CallObserver
from ari_app.router import Routed
from tests.support.console_app import PROJECT, a_client, config_copy

NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(("route", "steps", "results"), [
    ("manager:mgr1 > queue:operators", "mgr1:no_answer > queue:operators", ["no_answer", "reached"]),
    ("playback:c_info > ivr:main", "playback:c_info > ivr:main:1 > mgr2:answered", ["reached", "1"]),
    ("voicemail:main", "voicemail:1000@default", ["reached"]),
    ("hangup:", "hangup", ["reached"]),
    ("manager:mgr1 > supervisor:sup1 > queue:operators", "", ["not reached"] * 3),
    ("manager:mgr1 > manager:mgr1", "mgr1:busy > mgr1:answered", ["busy", "answered"]),
])
def test_route_results_pair_each_step_with_what_happened(route, steps, results):
    assert [r["result"] for r in route_results(route, steps)] == results


@pytest.mark.parametrize(("shown", "asked", "matches"), [
    ("***4567", "+7 916 123-45-67", True),
    ("***4567", "4567", True),
    ("***4567", "567", True),
    ("***4567", "1234", False),
    ("+79161234567", "4567", True),  # logs written with masking off
    ("+79161234567", "+79161234567", True),
    ("unidentified", "4567", False),
])
def test_number_filter_matches_on_the_digits_the_log_keeps(shown, asked, matches):
    query = DecisionQuery.from_params({"number": asked})
    assert query.matches({"number": shown}) is matches


def test_time_filters_take_iso_or_a_duration_back_from_now():
    assert parse_moment("2h", "since", NOW) == NOW - timedelta(hours=2)
    assert parse_moment("2026-06-15T10:00", "since") == datetime(2026, 6, 15, 10, tzinfo=UTC)
    assert parse_moment("2026-06-15T10:00:00Z", "since") == datetime(2026, 6, 15, 10, tzinfo=UTC)
    with pytest.raises(BadQuery, match="until"):
        parse_moment("soon", "until")
    query = DecisionQuery.from_params({"since": "2026-06-15T10:00+00:00", "until": "2026-06-15T11:00+00:00"})
    assert query.matches({"at": "2026-06-15T10:30:00+00:00"})
    assert not query.matches({"at": "2026-06-15T11:30:00+00:00"})
    assert not query.matches({"at": "garbage"})
    low, high = query.stream_range()
    assert low == f"{int(datetime(2026, 6, 15, 10, tzinfo=UTC).timestamp() * 1000)}-0"
    assert high == f"{int(datetime(2026, 6, 15, 17, tzinfo=UTC).timestamp() * 1000)}-0"  # + the longest call
    assert DecisionQuery.from_params({"limit": "999999"}).limit == 1000


def test_hourly_counts_by_the_hour_the_call_started():
    def at(hours_ago: float) -> str:
        return (NOW - timedelta(hours=hours_ago)).isoformat()

    entries = [
        {"at": at(0.1), "class": "new", "service": "operator"},
        {"at": at(0.2), "class": "repeat", "service": "manager", "fallbacks": "busy"},
        {"at": at(1.0), "class": "new", "service": "operator", "outcome": "dialplan", "crm": "timeout"},
        {"at": at(30), "class": "new", "service": "operator"},  # before the window
        {"at": "not a time"},
    ]
    stats = hourly(entries, NOW, hours=3)
    assert stats["hours"][-1] == int(datetime(2026, 6, 15, 12, tzinfo=UTC).timestamp())
    assert stats["total"] == 3
    assert stats["by_class"] == {"new": [0, 1, 1], "repeat": [0, 0, 1]}
    assert stats["by_service"] == {"manager": [0, 0, 1], "operator": [0, 1, 1]}
    assert (stats["fallbacks"], stats["sheds"], stats["degraded"]) == ([0, 0, 1], [0, 1, 0], [0, 1, 0])


def test_the_feed_view_gives_start_times_and_hides_calls_that_just_ended():
    clock = iter([100.0, 200.0, 300.0]).__next__
    feed = LiveFeed(clock=clock)
    feed.decided("a", started=90.0)
    feed.ended("b", "answered")  # clock 100: the ended event's time
    view = feed.view([{"call_id": "a"}, {"call_id": "b"}, {"call_id": "c"}])  # clock 200
    assert view == [{"call_id": "a", "started": 90.0}, {"call_id": "c", "started": 200.0}]
    assert feed.view([{"call_id": "c"}]) == [{"call_id": "c", "started": 200.0}]  # kept, not re-stamped


@pytest.mark.parametrize(("raw", "shown"), [
    ("Ivan Petrov", "Ivan Petrov"),
    ("+79161234567", "***4567"),
    ("Anna 8 (916) 123-45-67 work", "Anna ***4567 work"),
    ("Room 101", "Room 101"),
    ("line\r\nbreak\x00", "line  break"),
    ("x" * 500, "x" * 80),
    (None, ""),
])
def test_display_names_are_printable_bounded_and_numbers_masked(raw, shown):
    assert shown_name(raw) == shown


def test_live_view_adds_who_is_calling():
    profile = a_client()
    routed = SimpleNamespace(profile=profile)
    calls = {"c1": SimpleNamespace(channel={"caller": {"name": "Ivan", "number": "+79161234567"}}, routed=routed),
             "c2": SimpleNamespace(channel={}, routed=None)}
    view = live_view(lambda: [{"call_id": "c1"}, {"call_id": "c2"}, {"call_id": "gone"}], calls)
    assert view() == [{"call_id": "c1", "name": "Ivan", "client": profile.crm.record.name, "holder": "mgr1"},
                      {"call_id": "c2", "name": ""}, {"call_id": "gone"}]


def test_the_observer_tells_the_feed(tmp_path):
    config = LiveConfig(PROJECT / "config" / "routing.yaml", PROJECT / "config" / "legal_entities.yaml")
    profile = a_client()
    routed = Routed(profile, decide(profile, config.current.policy, NOW), config.current, 0.25)
    feed = LiveFeed()
    observer = CallObserver(Metrics(), feed=feed)
    with feed.subscribe() as events:
        observer.decided("c1", routed)
        observer.finished("c1", routed, Outcome(OutcomeResult.ANSWERED, "mgr1"))
        assert [e["type"] for e in events.drain()] == ["decided", "ended"]
    assert feed.view([{"call_id": "c1"}]) == []


async def test_apply_writes_through_a_symlink_and_keeps_the_mode(tmp_path):
    config_dir = config_copy(tmp_path / "real")
    os.chmod(config_dir / "routing.yaml", 0o640)
    linked = tmp_path / "linked"
    linked.mkdir()
    for name in ("routing.yaml", "legal_entities.yaml"):
        (linked / name).symlink_to(config_dir / name)
    config = LiveConfig(linked / "routing.yaml", linked / "legal_entities.yaml")
    reloads = []

    async def reload() -> dict:
        config.reload()
        reloads.append(1)
        return {"ok": True}

    text = (config_dir / "routing.yaml").read_text().replace("new: 20,", "new: 30,", 1)
    applied, answer = await RoutingEditor(config, reload).apply(text.encode())
    assert (applied, answer, reloads) == (True, {"ok": True, "error": None}, [1])
    assert (linked / "routing.yaml").is_symlink()
    assert (config_dir / "routing.yaml").read_text() == text
    assert oct((config_dir / "routing.yaml").stat().st_mode & 0o777) == "0o640"
