"""FastAGI-routed calls in the decision log, as the ARI front's (record/outcomes.py), and
their callback requests.

The decision is kept here when it is made (the profile, the decision, the program the
dialplan walks); the outcome comes from the call's CDRs, which Caseline receives for every
call anyway (record/cdr_listener.py): the dialplan's hangup handler writes what each step
did into the userfield (core/route_trail.py). Why not an AGI request from the dialplan at
the end: a FastAGI session on a hung-up channel cannot be bounded (res_agi waits on the
socket alone, TIMEOUT(absolute) no longer applies), so a stalled Caseline would keep every
ending channel alive; the CDR costs the dialplan nothing and arrives even while Caseline is
busy. Then the entry is written once, like an ARI call's at its end: `caseline calls`,
`replay` and the console read it the same way.

Bounded: at most `max_open` decisions wait for their CDRs, each at most `max_age_s`; one
pushed out (or left at shutdown) is written with the outcome `unknown`, so no decision is
ever lost from the log.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ari_app.core.models import CallerProfile, Decision, Outcome, OutcomeResult, StepKind
from ari_app.core.numbers import mask
from ari_app.core.policy import Policy
from ari_app.core.route_program import RouteProgram
from ari_app.core.route_trail import USERFIELD_PREFIX, outcome_of, parse_userfield
from ari_app.history.cdr import CdrRow, endpoint_of
from ari_app.record.callbacks import CallbackFiler, holder_for
from ari_app.record.outcomes import OutcomeRecorder

log = logging.getLogger("caseline.record.agi")

MAX_OPEN = 10_000  # decided calls waiting for their CDRs
MAX_AGE_S = 4 * 3600 + 120  # a call's CDRs come when it ends; a stuck channel's never do


@dataclass
class _Decided:
    started: datetime
    profile: CallerProfile
    decision: Decision
    program: RouteProgram
    decide_ms: float
    at: float  # monotonic
    callback_id: str = ""


@dataclass
class AgiCalls:
    recorder: OutcomeRecorder | None
    filer: CallbackFiler | None
    policy: Callable[[], Policy]  # the running policy: who can call a client back
    max_open: int = MAX_OPEN
    max_age_s: float = MAX_AGE_S
    clock: Callable[[], float] = time.monotonic
    open: dict[str, _Decided] = field(default_factory=dict)  # call id -> decision, oldest first
    _expired: list[tuple[str, _Decided]] = field(default_factory=list)
    _writing: asyncio.Task[None] | None = None  # writes the expired ones, off the call's path

    def decided(self, call_id: str, started: datetime, profile: CallerProfile,
                decision: Decision, program: RouteProgram, decide_ms: float) -> None:
        """Keep a decision until its CDRs come. No I/O: this runs before the answer."""
        now = self.clock()
        while self.open:
            oldest = next(iter(self.open))
            if len(self.open) < self.max_open and now - self.open[oldest].at < self.max_age_s:
                break
            self._expired.append((oldest, self.open.pop(oldest)))
        self.open.pop(call_id, None)
        self.open[call_id] = _Decided(started, profile, decision, program, decide_ms, now)
        if self._expired and (self._writing is None or self._writing.done()):
            self._writing = asyncio.get_running_loop().create_task(
                self._write_expired(), name="agi-decisions-expired")

    async def file_callback(self, call_id: str, trail: str) -> str:
        """File the caller's request when the dialplan reaches a callback step: the request's
        id ("pending" while Redis is away), "" when none could be filed."""
        kept = self.open.get(call_id)
        number = kept.profile.number if kept is not None else None
        if self.filer is None or kept is None or number is None:
            log.warning("call %s: callback step without %s", call_id,
                        "its decision" if kept is None else "a number to call back"
                        if self.filer else "callback requests configured")
            return ""
        reason = _reason(kept, trail)
        req = self.filer.new(number, holder=holder_for(self.policy(), kept.profile),
                             reason=reason, priority=kept.decision.priority, call_id=call_id)
        kept.callback_id = await self.filer.file(req) or "pending"
        log.info("call %s: callback request %s for %s (%s)", call_id, kept.callback_id,
                 mask(number), reason)
        return kept.callback_id

    async def call_ended(self, rows: Sequence[CdrRow]) -> None:
        """A call's CDRs (record/cdr_listener.py): its entry, if it was ours."""
        await self.calls_ended([rows])

    async def calls_ended(self, calls: Sequence[Sequence[CdrRow]]) -> None:
        """The CDRs of the calls one listener flush completed: the entries of ours, written
        together (one Redis round trip for all of them)."""
        await self._write_expired()
        ended = [found for rows in calls if (found := self._ended(rows)) is not None]
        if not ended or self.recorder is None:
            return
        try:
            await self.recorder.record_many([(call_id, kept.started, kept.profile, kept.decision,
                                              outcome, kept.decide_ms) for call_id, kept, outcome in ended])
        except Exception:  # Redis errors wait in pending writes; anything else: say so
            log.exception("could not log the decisions of %d call(s)", len(ended))

    def _ended(self, rows: Sequence[CdrRow]) -> tuple[str, _Decided, Outcome] | None:
        if not rows:
            return None
        call_id = next((key for key in (rows[0].call_key, *(r.uniqueid for r in rows))
                        if key in self.open), None)
        if call_id is None:
            return None
        kept = self.open.pop(call_id)
        ours = [r.userfield for r in rows if r.userfield.startswith(USERFIELD_PREFIX)]
        parsed = parse_userfield(max(ours, key=len)) if ours else None  # the trail only grows
        outcome = outcome_of(kept.program, parsed[1], kept.callback_id) if parsed else Outcome()
        if parsed and outcome.result is OutcomeResult.UNKNOWN:
            # the walker notes every end but one: the caller leaving before any step ended
            outcome.result = OutcomeResult.CALLER_HUNG_UP
        if outcome.answered_by:
            outcome.talk_s = _talk_s(kept.program, outcome.answered_by, rows)
        return call_id, kept, outcome

    async def close(self) -> None:
        """At shutdown: every decision still waiting goes to the log (outcome unknown)."""
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        self._expired.extend(self.open.items())
        self.open.clear()
        await self._write_expired()

    async def _write_expired(self) -> None:
        expired, self._expired = self._expired, []
        for call_id, kept in expired:
            await self._record(call_id, kept, Outcome(OutcomeResult.UNKNOWN))

    async def _record(self, call_id: str, kept: _Decided, outcome: Outcome) -> None:
        if self.recorder is None:
            return
        try:
            await self.recorder.record(call_id, kept.started, kept.profile, kept.decision,
                                       outcome, kept.decide_ms)
        except Exception:  # one entry lost, not the others (Redis errors wait in pending writes)
            log.exception("could not log the decision of call %s", call_id)


def _reason(kept: _Decided, trail: str) -> str:
    """The rule that decided, and the IVR choice that led here if one did, as the ARI front
    words it (stasis/callback_step.reason_of): "hours.after_hours", "ivr:main:2 (abc.C)"."""
    rule = kept.decision.rule
    steps = outcome_of(kept.program, trail).steps
    choice = next((s for s in reversed(steps) if s.startswith("ivr:") and s.count(":") == 2), None)
    if choice is None:
        return rule or "route"
    return f"{choice} ({rule})" if rule else choice


def _talk_s(program: RouteProgram, person: str, rows: Sequence[CdrRow]) -> int:
    """The answered person's billable seconds with the caller, from the call's CDRs."""
    endpoints = {s.target.partition("/")[2] for s in program.steps
                 if s.label == person and s.kind in (StepKind.MANAGER, StepKind.SUPERVISOR)}
    return max((r.billsec for r in rows if r.answered and endpoint_of(r.dstchannel) in endpoints),
               default=0)
