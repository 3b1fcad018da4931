"""Admission control, pure: given the load and a monotonic time, admit a new call or shed it.

Past its ceiling the system collapses rather than slows (docs/benchmarks.md): so when a
measure passes its bound, a new call skips the route and goes straight on in the dialplan
to the operators' queue (docs/reliability.md, "Overload: admission control"). Calls
already in progress are never touched. Three measures, each with its own bound (None: not
watched):

- calls in progress: calls in our ARI app plus FastAGI sessions being answered; shed when
  a new call would exceed the bound;
- event-loop lag: how late a fixed-interval timer wakes, mean over the last window;
- ARI latency: mean duration of the ARI requests of the last window.

Hysteresis, per measure, so shedding does not flap: it starts when the measure reaches its
bound and stops once the measure is below `resume_below` x bound, for lag and latency also
only after `hold_s` without reaching the bound (their means are noisy). The call count is
exact: a hold would only keep shedding after the calls have drained.
"""
from __future__ import annotations

from dataclasses import dataclass

from ari_app.core.decide import base_priority
from ari_app.core.dialplan import DEFAULT_QUEUE
from ari_app.core.models import (
    CallerProfile,
    CrmFacts,
    CrmRecord,
    EnvironmentFacts,
    HistoryFacts,
    LegalEntity,
    SourceStatus,
)
from ari_app.core.policy import Policy

CALLS_IN_PROGRESS = "calls_in_progress"
LOOP_LAG = "loop_lag"
ARI_LATENCY = "ari_latency"
REASONS = (CALLS_IN_PROGRESS, LOOP_LAG, ARI_LATENCY)  # the order a shed call's reason is named in


@dataclass(frozen=True, slots=True)
class Bounds:
    calls_in_progress: int | None = None
    loop_lag_s: float | None = None
    ari_latency_s: float | None = None
    resume_below: float = 0.8  # fraction of a bound under which routing resumes
    hold_s: float = 1.0  # lag and latency: this long without reaching the bound first


@dataclass(frozen=True, slots=True)
class Load:
    calls_in_progress: int = 0  # not counting the new call
    loop_lag_s: float = 0.0
    ari_latency_s: float = 0.0


class Gate:
    """The shed/admit state across calls: `update(load, now)` is O(1)."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self._over_at: dict[str, float] = {}  # measure shedding -> when it last reached its bound

    def update(self, load: Load, now: float) -> str | None:
        """Why a new call must be shed now (the first measure in REASONS order), or None."""
        b = self.bounds
        for reason, value, bound, hold in (
                (CALLS_IN_PROGRESS, load.calls_in_progress, b.calls_in_progress, 0.0),
                (LOOP_LAG, load.loop_lag_s, b.loop_lag_s, b.hold_s),
                (ARI_LATENCY, load.ari_latency_s, b.ari_latency_s, b.hold_s)):
            if bound is None:
                continue
            if value >= bound:
                self._over_at[reason] = now
            elif (reason in self._over_at and value < bound * b.resume_below
                  and now - self._over_at[reason] >= hold):
                del self._over_at[reason]
        return next((r for r in REASONS if r in self._over_at), None)

    def shedding(self, reason: str) -> bool:
        return reason in self._over_at


class WindowMean:
    """The mean of the samples of the current window and the one before (so over the last
    1-2 windows), 0.0 without any: old samples age out even when no new ones come."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self._start: float | None = None
        self._sum = self._prev_sum = 0.0
        self._count = self._prev_count = 0

    def add(self, sample: float, now: float) -> None:
        self._roll(now)
        self._sum += sample
        self._count += 1

    def value(self, now: float) -> float:
        self._roll(now)
        count = self._count + self._prev_count
        return (self._sum + self._prev_sum) / count if count else 0.0

    def _roll(self, now: float) -> None:
        if self._start is None:
            self._start = now
            return
        elapsed = now - self._start
        if elapsed < self.window_s:
            return
        if elapsed < 2 * self.window_s:  # the current window becomes the previous one
            self._prev_sum, self._prev_count = self._sum, self._count
            self._start += self.window_s
        else:  # nothing for a whole window: both are empty
            self._prev_sum, self._prev_count = 0.0, 0
            self._start = now
        self._sum, self._count = 0.0, 0


@dataclass(frozen=True, slots=True)
class ShedTarget:
    """Where a shed call goes: the operators' Asterisk queue, at this QUEUE_PRIO."""

    priority: int
    queue: str


def shed_target(policy: Policy, number: str | None, crm_record: CrmRecord | None = None,
                legal_entity: LegalEntity | None = None) -> ShedTarget:
    """The best priority without I/O: decide's base priority for a caller whose history is
    unavailable (the `unknown` segment, as when Redis is down), raised to the category of a
    CRM record still in the in-memory cache or of the number's legal-entity directory entry
    (a VIP counts too); the operators' queue of the policy.

    No rule runs (no hours, claims, callbacks, repeats): those need the history, the CRM
    or the clock, which a shed call does not wait for.
    """
    crm = CrmFacts(SourceStatus.OK, crm_record) if crm_record else CrmFacts(SourceStatus.UNAVAILABLE)
    profile = CallerProfile(number, HistoryFacts(status=SourceStatus.UNAVAILABLE), crm,
                            EnvironmentFacts(legal_entity=legal_entity))
    queue = policy.queues.get(DEFAULT_QUEUE)
    return ShedTarget(base_priority(policy, profile),
                      queue.asterisk_queue if queue is not None else DEFAULT_QUEUE)
