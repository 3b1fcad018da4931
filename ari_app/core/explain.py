"""explain: a decision told in words for ops staff (`caseline explain`, the console), and
the same as one JSON-ready object (`caseline explain --json`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from ari_app.core.decide import caller_local_time, is_night
from ari_app.core.models import (
    CallerProfile,
    CrmRecord,
    Decision,
    Direction,
    HistoryClass,
    SourceStatus,
    StepKind,
)
from ari_app.core.policy import Policy


def explain(decision: Decision) -> str:
    """Multi-line, human-readable account of a decision for ops staff."""
    lines = [f"Service: {decision.service}, priority {decision.priority}" + (", callback requested" if decision.callback_request else ""), "Route:"]
    for i, s in enumerate(decision.route):
        if s.kind in (StepKind.MANAGER, StepKind.SUPERVISOR):
            text = f"ring {s.kind} {s.target} for {s.ring_timeout_s} s (busy -> {s.on_busy}, no answer -> {s.on_no_answer}, unavailable -> {s.on_unavailable})"
        elif s.kind is StepKind.PLAYBACK:
            text = f"play {s.target}, then {i + 1}"
        elif s.kind is StepKind.HANGUP:
            text = "hang up [end]"
        elif s.kind is StepKind.CALLBACK:
            text = "file a callback request" + (f", play {s.target}" if s.target else "") + ", hang up [end]"
        else:
            text = f"{s.kind} {s.target} [end]"
        lines.append(f"  {i}. {text}")
    lines.append("Why:")
    lines.extend(f"  [{r.rule}] {r.text}" for r in decision.reasons)
    return "\n".join(lines)


def crm_status(profile: CallerProfile, *, crm_configured: bool) -> str:
    """The CRM's answer as `caseline explain --json` reports it:
    ok | not_found | timeout | error | disabled."""
    status = profile.crm.status
    if status is SourceStatus.OK:
        return "ok"
    if status is SourceStatus.UNKNOWN:
        return "not_found"
    if status is SourceStatus.TIMEOUT:
        return "timeout"
    if status is SourceStatus.SKIPPED:
        # not asked: no CRM configured, or no number to ask about
        return "not_found" if crm_configured else "disabled"
    return "error"


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def explain_data(profile: CallerProfile, decision: Decision, policy: Policy, at: datetime, *,
                 crm_configured: bool, crm_record: CrmRecord | None = None) -> dict[str, Any]:
    """`caseline explain --json`: who the caller is, as of `at`, and where their call goes.
    `crm_record`: the CRM's record as returned (Routed.crm_record), with the `extra` that
    decide's `profile` leaves out."""
    h, env, rec = profile.history, profile.environment, crm_record or profile.crm.record
    local = caller_local_time(profile, at)
    status = crm_status(profile, crm_configured=crm_configured)
    crm: dict[str, Any] = {"status": status}
    if profile.crm.detail:
        crm["detail"] = profile.crm.detail
    if rec is not None:
        crm.update({"client_id": rec.client_id, "name": rec.name, "client_status": rec.status,
                    "abc": rec.abc, "responsible": rec.responsible, "open_deals": rec.open_deals,
                    "open_orders": rec.open_orders, "open_claims": rec.open_claims,
                    "most_urgent": rec.most_urgent, "delivery_today": rec.delivery_today,
                    "vip": rec.vip, "extra": dict(rec.extra)})
    legal = env.legal_entity
    return {
        "number": profile.number,
        "at": at.isoformat(),
        "class": str(h.cls),
        "callback_kind": str(h.callback_kind) if h.callback_kind else None,
        "repeat_after_missed": h.cls is HistoryClass.REPEAT and bool(h.previous_missed),
        "owner": profile.case_holder,
        "owner_source": profile.case_holder_source,
        "owner_why": holder_story(profile),
        "last_contact": _iso(h.last_contact_at),
        "history_status": str(h.status),
        "abc": profile.abc,
        "country": env.country,
        "region": env.region,
        "carrier": env.carrier,
        "timezone": env.timezone,
        # profiles kept before the numbering plan had only phonenumbers' zones
        "timezone_source": (env.timezone_source or "phonenumbers") if env.timezone else None,
        "local_time": _iso(local),
        "night": is_night(policy, local),
        "company": {"id": legal.id, "name": legal.company, "parent": legal.parent,
                    "parent_id": legal.parent_id} if legal else None,
        "crm": crm,
        "crm_status": status,
        "decision": decision_data(decision),
    }


def decision_data(decision: Decision) -> dict[str, Any]:
    """A decision as JSON: service, priority, the route's steps with their fallbacks, reasons."""
    ringing = (StepKind.MANAGER, StepKind.SUPERVISOR)
    return {
        "service": str(decision.service),
        "priority": decision.priority,
        "callback_request": decision.callback_request,
        "route": [{"kind": str(s.kind), "target": s.target or None,
                   "timeout_s": s.ring_timeout_s if s.kind in ringing else None,
                   "on_busy": s.on_busy, "on_no_answer": s.on_no_answer,
                   "on_unavailable": s.on_unavailable} for s in decision.route],
        "reasons": [{"rule": r.rule, "text": r.text} for r in decision.reasons],
    }


def holder_story(profile: CallerProfile) -> str:
    """Where the case holder comes from, in words: "crm: responsible in the CRM (C-1001)",
    "history: mgr2 talked 3 min on 2026-12-07 after a transfer from op1".

    >>> from datetime import UTC, datetime
    >>> from ari_app.core.models import Contact, Direction, HistoryFacts, Talk
    >>> call = Contact(datetime(2026, 12, 7, 9, tzinfo=UTC), Direction.INBOUND, True, "mgr2",
    ...                220, (Talk("op1", 40), Talk("mgr2", 180)))
    >>> holder_story(CallerProfile("+79990001122", HistoryFacts(owner="mgr2", owner_contact=call)))
    'history: mgr2 talked 3 min on 2026-12-07 after a transfer from op1'
    """
    source = profile.case_holder_source
    holder = profile.case_holder
    if source == "crm" and profile.crm.record:
        return f"crm: responsible in the CRM ({profile.crm.record.client_id})"
    if source == "directory" and profile.environment.legal_entity:
        return f"directory: manager of {profile.environment.legal_entity.company}"
    contact = profile.history.owner_contact
    if source in ("history", "callback") and contact is not None:
        day = contact.at.date().isoformat()
        if contact.direction is Direction.OUTBOUND:
            return f"{source}: {holder} called the client on {day}"
        talk = next((t for t in reversed(contact.talks) if t.person == holder), None)
        seconds = talk.seconds if talk else contact.duration_s
        before = [t.person for t in contact.talks[: contact.talks.index(talk)]] if talk else []
        after = f" after a transfer from {before[-1]}" if before else ""
        return f"{source}: {holder} talked {_span(seconds)} on {day}{after}"
    return f"{source}: {holder}" if holder else "none"


def _span(seconds: int) -> str:
    return f"{round(seconds / 60)} min" if seconds >= 90 else f"{seconds} s"
