"""The route's callback step: file a callback request for the caller, confirm, hang up.

A rule (`target: callback`), the after-hours action `callback_request` or an IVR option
("press 2 to be called back instead of waiting") lead here. The request keeps the caller's
priority (what QUEUE_PRIO would have been); one without a holder then waits its turn in the
operators' queue itself (stasis/callback_dialer.py, `callbacks.keep_turn`).
"""
from __future__ import annotations

import logging

from ari_app.core.models import CallerProfile, Outcome, OutcomeResult, RouteStep
from ari_app.core.numbers import mask
from ari_app.core.policy import Policy
from ari_app.record.callbacks import CallbackFiler, holder_for
from ari_app.stasis.call import Call
from ari_app.stasis.media import play

log = logging.getLogger("caseline.stasis.callback")


def reason_of(call: Call, outcome: Outcome) -> str:
    """The rule that decided, and the IVR choice that led here if one did:
    "hours.after_hours", "ivr:main:2 (abc.C)"."""
    rule = call.routed.decision.rule if call.routed is not None else ""
    choice = next((s for s in reversed(outcome.steps) if s.startswith("ivr:") and s.count(":") == 2), None)
    if choice is None:
        return rule or "route"
    return f"{choice} ({rule})" if rule else choice


async def file_callback(call: Call, step: RouteStep, policy: Policy, profile: CallerProfile,
                        outcome: Outcome, filer: CallbackFiler | None) -> bool:
    """File the request and play the step's confirmation. False when nothing could be filed
    (no number, no filer configured): the executor then hands the caller to the operators."""
    if filer is None or profile.number is None:
        log.warning("call %s: callback step without %s", call.id,
                    "a number to call back" if filer else "callback requests configured")
        outcome.steps.append("callback:not_filed")
        return False
    req = filer.new(profile.number, holder=holder_for(policy, profile),
                    reason=reason_of(call, outcome), priority=call.priority, call_id=call.id)
    open_id = await filer.file(req)
    if open_id is None:
        outcome.steps.append("callback:pending")  # lands when Redis is back
    elif open_id != req.id:
        outcome.steps.append(f"callback:{open_id}:already_open")
    else:
        outcome.steps.append(f"callback:{open_id}")
    log.info("call %s: callback request %s for %s (%s)", call.id, open_id or "pending",
             mask(profile.number), req.reason)
    if step.target:
        await play(call, step.target)
    outcome.result = OutcomeResult.CALLBACK
    return True
