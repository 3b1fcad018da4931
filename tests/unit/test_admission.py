"""Admission control's pure half (core/admission.py): bounds, hysteresis, recovery, the
windowed means, and the priority a shed call gets without I/O; its settings."""
from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.config.crm_settings import CrmSettings
from ari_app.config.files import ConfigError, load_model
from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig
from ari_app.config.settings import Settings, load_settings
from ari_app.core.admission import (
    ARI_LATENCY,
    CALLS_IN_PROGRESS,
    LOOP_LAG,
    Bounds,
    Gate,
    Load,
    ShedTarget,
    WindowMean,
    shed_target,
)
from ari_app.core.clock import FixedClock
from ari_app.core.models import CrmRecord, LegalEntity
from ari_app.crm import CrmService, build_crm
from ari_app.history.store import MemoryHistoryStore
from ari_app.router import Router
from tests.support.fake_world import NOW, policy_with

CONFIG = Path(__file__).resolve().parents[2] / "config"
BOUNDS = Bounds(calls_in_progress=10, loop_lag_s=0.05, ari_latency_s=0.1, resume_below=0.8, hold_s=1.0)
POLICY = policy_with()  # the shipped routing.yaml (retention: A 70, B 50, unknown 20, C 10)


# -- the gate -------------------------------------------------------------------------------


def test_below_every_bound_calls_are_admitted() -> None:
    gate = Gate(BOUNDS)
    assert gate.update(Load(9, 0.049, 0.099), now=0.0) is None


@pytest.mark.parametrize(("load", "reason"), [
    (Load(calls_in_progress=10), CALLS_IN_PROGRESS),  # 10 held: the 11th would pass the bound
    (Load(loop_lag_s=0.05), LOOP_LAG),
    (Load(ari_latency_s=0.1), ARI_LATENCY),
])
def test_each_measure_at_its_bound_sheds_with_its_reason(load: Load, reason: str) -> None:
    assert Gate(BOUNDS).update(load, now=0.0) == reason


def test_several_measures_over_name_the_first_and_shed_until_all_are_back() -> None:
    gate = Gate(BOUNDS)
    assert gate.update(Load(12, 0.2, 0.5), now=0.0) == CALLS_IN_PROGRESS
    assert gate.update(Load(0, 0.2, 0.5), now=0.1) == LOOP_LAG  # calls drained, lag still high
    assert gate.update(Load(0, 0.0, 0.5), now=0.5) == LOOP_LAG  # lag back down, but held
    assert gate.update(Load(0, 0.0, 0.0), now=1.1) == ARI_LATENCY  # lag's hold is over, not latency's
    assert gate.update(Load(0, 0.0, 0.0), now=1.5) is None


def test_a_bound_set_to_none_is_not_watched() -> None:
    gate = Gate(Bounds(calls_in_progress=None, loop_lag_s=None, ari_latency_s=None))
    assert gate.update(Load(100_000, 60.0, 60.0), now=0.0) is None


def test_calls_resume_below_the_fraction_at_once_and_not_in_the_band() -> None:
    gate = Gate(BOUNDS)
    assert gate.update(Load(10), now=0.0) == CALLS_IN_PROGRESS
    assert gate.update(Load(9), now=100.0) == CALLS_IN_PROGRESS  # between 8 and 10: no flapping
    assert gate.update(Load(8), now=100.0) == CALLS_IN_PROGRESS  # 0.8 x 10 is not below it
    assert gate.update(Load(7), now=100.0) is None  # no hold for an exact count
    assert gate.update(Load(9), now=100.0) is None  # admitting again: 9 is under the bound


def test_lag_resumes_after_the_hold_without_reaching_the_bound() -> None:
    gate = Gate(BOUNDS)
    assert gate.update(Load(loop_lag_s=0.06), now=0.0) == LOOP_LAG
    assert gate.update(Load(loop_lag_s=0.0), now=0.5) == LOOP_LAG  # back down, but held
    assert gate.update(Load(loop_lag_s=0.05), now=1.0) == LOOP_LAG  # reached it again: hold restarts
    assert gate.update(Load(loop_lag_s=0.0), now=1.75) == LOOP_LAG
    assert gate.update(Load(loop_lag_s=0.0), now=2.0) is None  # 1 s since it last reached 0.05


def test_latency_hovering_in_the_band_keeps_shedding_then_recovers_within_the_hold() -> None:
    gate = Gate(BOUNDS)
    assert gate.update(Load(ari_latency_s=0.15), now=0.0) == ARI_LATENCY
    assert gate.update(Load(ari_latency_s=0.09), now=30.0) == ARI_LATENCY  # above 0.08: still over
    assert gate.update(Load(ari_latency_s=0.002), now=30.0) is None
    assert not gate.shedding(ARI_LATENCY)


# -- the measures ---------------------------------------------------------------------------


def test_window_mean_covers_the_last_one_to_two_windows_and_empties_when_idle() -> None:
    mean = WindowMean(window_s=1.0)
    assert mean.value(0.0) == 0.0
    mean.add(0.010, 0.0)
    mean.add(0.030, 0.5)
    assert mean.value(0.9) == pytest.approx(0.020)
    mean.add(0.050, 1.2)  # a new window: the first one is still counted
    assert mean.value(1.5) == pytest.approx(0.030)
    assert mean.value(2.3) == pytest.approx(0.050)  # the first window has aged out
    assert mean.value(4.0) == 0.0  # nothing for two windows: no evidence of any load


# -- where a shed call goes -----------------------------------------------------------------


def test_an_unidentified_caller_gets_the_unknown_base_priority_in_the_operators_queue() -> None:
    table = POLICY.strategy.table
    assert shed_target(POLICY, "+79057778899") == ShedTarget(table.unknown, "operators")
    assert shed_target(POLICY, None) == ShedTarget(table.unknown, "operators")


def test_a_cached_crm_category_or_a_directory_entry_raises_the_priority() -> None:
    table = POLICY.strategy.table
    assert shed_target(POLICY, "+7", CrmRecord("C-1", abc="A")).priority == table.A
    assert shed_target(POLICY, "+7", CrmRecord("C-3", abc="C")).priority == table.C
    # a VIP is served at least as vip.serve_as (A), whatever its own category
    assert shed_target(POLICY, "+7", CrmRecord("C-4", abc="C", vip=True)).priority == table.A
    assert shed_target(POLICY, "+7", legal_entity=LegalEntity("Co", abc="B")).priority == table.B


def test_the_queue_is_the_policys_operators_queue() -> None:
    policy = policy_with(queues__operators__asterisk_queue="benchq")
    assert shed_target(policy, None).queue == "benchq"


async def test_the_router_reads_the_crm_cache_and_never_asks_the_crm() -> None:
    crm = CrmService(build_crm(CrmSettings(adapter="file", file={"path": "clients.yaml"}), CONFIG))
    router = Router(config=LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml"),
                    history=MemoryHistoryStore(), crm=crm.facts, clock=FixedClock(NOW),
                    windows=HistorySettings().windows(), history_budget_s=1.0, crm_budget_s=1.0,
                    default_region="RU", crm_cache=crm.cached)
    table = router.config.current.policy.strategy.table
    vip_a = "+79161234567"  # clients.yaml: C-1001, A and VIP

    assert router.shed_target(vip_a).priority == table.unknown  # not in the cache yet
    assert crm.stats["requests"] == 0
    await router.route(vip_a, "call-1")  # a routed call fills the cache
    assert router.shed_target("8 916 123-45-67").priority == table.A
    assert router.shed_target("+74957770000").priority == table.A  # legal_entities.yaml: Avtodom, A
    assert crm.stats["requests"] == 1


# -- settings -------------------------------------------------------------------------------


def test_the_shipped_config_sets_the_documented_bounds() -> None:
    settings = load_settings(CONFIG, env={}).admission
    assert settings.enabled
    assert settings.bounds() == Bounds(calls_in_progress=500, loop_lag_s=0.05, ari_latency_s=0.1,
                                       resume_below=0.8, hold_s=1.0)


def test_null_switches_a_bound_off_and_nonsense_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "caseline.yaml"
    path.write_text("admission: {max_loop_lag_ms: null, max_ari_latency_ms: null}\n")
    bounds = load_model(path, Settings).admission.bounds()
    assert (bounds.loop_lag_s, bounds.ari_latency_s, bounds.calls_in_progress) == (None, None, 500)
    path.write_text("admission: {resume_below: 1.5}\n")
    with pytest.raises(ConfigError):
        load_model(path, Settings)
