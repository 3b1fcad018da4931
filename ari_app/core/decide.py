"""decide(profile, policy, now) -> Decision: service, priority and route for one call.

Pure: no I/O, no clock, no randomness (time zone data is read through zoneinfo's cache,
public holidays are computed by the `holidays` package: core/public_holidays.py).
Rules run in this fixed order; the first that matches decides (docs/routing.md):

  1 hours          closed (own or public holiday / outside working hours) -> after-hours
                   action, unless rule 2 matches and overrides_after_hours is set
  2 night_far_tz   caller's local time is night and their UTC offset is far from ours
  3 context        open claim, then delivery today (CRM)
  4 callback       missed / after_talk (history)
  5 repeat         (history; bigger boost if we missed the previous call)
  6 abc            A / B / C (CRM or legal-entity directory; a CRM VIP at least `vip.serve_as`,
                   a listed CRM status at most its `client_status` category: client_value.py)
  7 classes        old (old, repeat, callback, or open deals / orders in the CRM) / new
  8 default        defaults.target (the operators queue)

A rule's target is a list of alternatives; person targets that do not resolve (no case
holder, unknown id) are skipped, and when none resolves the call falls through to
defaults.target with the rule's priority. decide never raises: an internal error yields
the safe default with a reason saying so.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from ari_app.core.client_value import (
    Value,
    assess,
    business,
    business_text,
    status_text,
    vip_text,
)
from ari_app.core.dialplan import DEFAULT_QUEUE
from ari_app.core.models import (
    CallbackKind,
    CallerProfile,
    Decision,
    HistoryClass,
    Reason,
    RouteStep,
    Service,
    SourceStatus,
    StepKind,
)
from ari_app.core.policy import (
    Chain,
    NightRule,
    Policy,
    Ref,
    RefKind,
    RepeatRule,
    Rule,
    parse_ref,
)
from ari_app.core.zones import zone

DEGRADED = frozenset(
    {SourceStatus.UNAVAILABLE, SourceStatus.TIMEOUT, SourceStatus.ERROR, SourceStatus.MALFORMED, SourceStatus.BREAKER_OPEN}
)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]+")


def decide(profile: CallerProfile, policy: Policy, now: datetime) -> Decision:
    """Service, priority and route for `profile` calling at `now` (aware; naive means UTC)."""
    try:
        return _decide(profile, policy, now)
    except Exception as e:  # a bug must never cost a call: fall back to the safe default
        return _safe_default(policy, f"{type(e).__name__}: {_clean(str(e), 120)}")


def route_for_target(policy: Policy, target: str | Ref | Sequence[str | Ref], profile: CallerProfile | None = None) -> tuple[RouteStep, ...]:
    """Route for a target chosen outside decide (an IVR option): same resolution and chains."""
    refs = [parse_ref(target)] if isinstance(target, str | Ref) else [parse_ref(t) for t in target]
    profile = profile or CallerProfile(number=None)
    resolved, _ = _resolve(policy, refs, profile)
    chain = policy.chains[_value_chain(policy, assess(profile, policy))]
    return _route(policy, None, resolved or policy.defaults.target, chain, policy.defaults.ring_timeout_s)


# --- the rules -------------------------------------------------------------------------


def _decide(profile: CallerProfile, policy: Policy, now: datetime) -> Decision:
    reasons: list[Reason] = []
    if now.tzinfo is None or now.utcoffset() is None:
        now = now.replace(tzinfo=UTC)
        reasons.append(Reason("clock.naive", "the call time had no time zone; taken as UTC"))
    company_local = _astz(now, zone(policy.company.timezone))
    caller_local, caller_off = _caller_time(profile, now)
    value = assess(profile, policy)  # once: every rule below reads it
    reasons.append(Reason("inputs", _inputs_text(profile, policy, value, company_local, caller_local, caller_off)))
    reasons.extend(_degraded(profile))
    if value.vip:
        reasons.append(Reason("vip", vip_text(policy, profile, value)))
    for rule_id, text in (("client_status", status_text(profile, value)),
                          ("open_business", business_text(profile, value))):
        if text is not None:
            reasons.append(Reason(rule_id, text))

    closed = _closed(policy, company_local)
    night = _night(policy, caller_local, caller_off, company_local)
    nr = policy.rules.night_far_tz
    if closed:
        if night and nr is not None and nr.overrides_after_hours:
            reasons.append(Reason(closed[0], f"{closed[1]}; overridden by the urgent night call rule"))
            return _fire(policy, profile, value, "night_far_tz", nr, night, reasons, closed=True)
        return _after_hours(policy, profile, value, closed, reasons)
    if company_local is None and policy.hours.enabled:
        reasons.append(Reason("hours.unknown", "call time out of range: working hours not checked, treated as open"))
    if night and nr is not None:
        return _fire(policy, profile, value, "night_far_tz", nr, night, reasons, closed=False)
    match = next(_candidates(policy, profile, value), None)
    if match is not None:
        return _fire(policy, profile, value, *match, reasons, closed=False)
    return _default(policy, value, reasons)


def _candidates(policy: Policy, profile: CallerProfile, value: Value) -> Iterator[tuple[str, Rule, str]]:
    """Rules 3..7 that match this caller, in order; disabled and absent rules are skipped."""
    r, rec, h = policy.rules, profile.crm.record, profile.history
    found: list[tuple[str, Rule | None, str]] = []
    if rec is not None and rec.open_claims > 0:
        found.append(("context.claim", r.context.claim, f"CRM: open claim ({rec.open_claims})"))
    if rec is not None and rec.delivery_today:
        found.append(("context.delivery_today", r.context.delivery_today, "CRM: delivery scheduled today"))
    if h.cls is HistoryClass.CALLBACK:
        if h.callback_kind is CallbackKind.AFTER_TALK:
            found.append(("callback.after_talk", r.callback.after_talk, "calling back after talking to our manager"))
        else:
            kind = "returning our missed call" if h.callback_kind is CallbackKind.MISSED else "callback of unknown kind, handled as missed"
            found.append(("callback.missed", r.callback.missed, kind))
    if h.cls is HistoryClass.REPEAT:
        found.append(("repeat", r.repeat, "repeat call" + (" after a call we missed" if h.previous_missed else "")))
    abc = value.category
    if abc:
        vip = " (VIP)" if value.vip else ""
        found.append((f"abc.{abc}", getattr(r.abc, abc), f"ABC category {abc}{vip}"))
    if value.new:
        found.append(("classes.new", r.classes.new, "new caller"))
    elif h.cls is HistoryClass.NEW:  # the CRM knows better than a history that never saw them
        found.append(("classes.old", r.classes.old, f"known caller (CRM: {business(profile)}; history class new)"))
    else:
        found.append(("classes.old", r.classes.old, f"known caller (class {h.cls})"))
    for rule_id, rule, why in found:
        if rule is not None and rule.enabled:
            yield rule_id, rule, why


def _fire(policy: Policy, profile: CallerProfile, value: Value, rule_id: str, rule: Rule, why: str,
          reasons: list[Reason], *, closed: bool) -> Decision:
    target, notes = _resolve(policy, rule.target, profile)
    seg = value.segment
    chain_id = rule.chain or _value_chain(policy, value)
    if closed and isinstance(rule, NightRule) and rule.closed_chain:
        chain_id = rule.closed_chain
    if target is None:
        target = policy.defaults.target
        notes.append(f"falls through to {target}")
    base = getattr(policy.strategy.table, seg)
    if rule.priority is not None:
        priority, ptext = rule.priority, f"{rule.priority} (fixed by {rule_id})"
    else:
        boost = rule.boost
        if isinstance(rule, RepeatRule) and profile.history.previous_missed:
            boost = rule.boost_if_previous_missed
        vip = value.vip_boost
        priority = _clamp(base + boost + vip)
        ptext = (f"{priority} ({policy.strategy.mode} mode, {seg} base {base}, boost {boost:+d}"
                 + (f", VIP {vip:+d})" if vip else ")"))
    route = _route(policy, rule.intro, target, policy.chains[chain_id], rule.ring_timeout_s or policy.defaults.ring_timeout_s)
    note = f" ({'; '.join(notes)})" if notes else ""
    reasons.append(Reason(rule_id, f"{why} -> {target}{note}"))
    reasons.append(Reason("priority", ptext))
    if target.kind in (RefKind.MANAGER, RefKind.SUPERVISOR):
        by_value = "" if rule.chain else f" (by client value {value.category or 'unknown'})"
        reasons.append(Reason("chain", f"fallback chain '{chain_id}'{by_value}"))
    return Decision(_service(route), priority, route, tuple(reasons),
                    callback_request=route[-1].kind is StepKind.CALLBACK, rule=rule_id)


def _default(policy: Policy, value: Value, reasons: list[Reason]) -> Decision:
    priority, ptext = _base_priority(policy, value)
    route = _route(policy, None, policy.defaults.target, policy.chains[policy.chain_by_value.unknown], policy.defaults.ring_timeout_s)
    reasons.append(Reason("default", f"no rule matched -> {policy.defaults.target}"))
    reasons.append(Reason("priority", ptext))
    return Decision(_service(route), priority, route, tuple(reasons), rule="default")


def base_priority(policy: Policy, profile: CallerProfile) -> int:
    """The segment's base priority (plus a VIP's boost), no rule applied: what admission
    control gives a shed call (core/admission.py)."""
    return _base_priority(policy, assess(profile, policy))[0]


def _base_priority(policy: Policy, value: Value) -> tuple[int, str]:
    """The segment's base priority (plus a VIP's boost) and how it was computed."""
    seg = value.segment
    base, vip = getattr(policy.strategy.table, seg), value.vip_boost
    text = f"{policy.strategy.mode} mode, {seg} base" + (f" {base}, VIP {vip:+d}" if vip else "")
    return _clamp(base + vip), f"{_clamp(base + vip)} ({text})"


def _after_hours(policy: Policy, profile: CallerProfile, value: Value, closed: tuple[str, str],
                 reasons: list[Reason]) -> Decision:
    ah = policy.hours.after_hours
    steps = [RouteStep(StepKind.PLAYBACK, policy.sound_of(ah.intro))] if ah.intro else []
    if ah.action == "ivr" and ah.ivr_menu:
        steps.append(RouteStep(StepKind.IVR, ah.ivr_menu))
    elif ah.action == "voicemail" and ah.mailbox:
        steps.append(RouteStep(StepKind.VOICEMAIL, policy.mailbox_of(ah.mailbox)))
    elif ah.action == "callback_request" and profile.number is not None:
        # the intro says we will call back; the executor files the request, then hangs up
        steps.append(RouteStep(StepKind.CALLBACK, ""))
    else:  # a withheld caller cannot be called back: the intro, then goodbye
        steps.append(RouteStep(StepKind.HANGUP, ""))
    priority, _ = _base_priority(policy, value)
    text = f"{closed[1]} -> after-hours action: {ah.action}"
    if ah.action == "callback_request" and profile.number is None:
        text += " (no number to call back: hang up)"
    reasons.append(Reason(closed[0], text))
    return Decision(_service(tuple(steps)), priority, tuple(steps), tuple(reasons),
                    callback_request=steps[-1].kind is StepKind.CALLBACK, rule=closed[0])


def _safe_default(policy: Policy, error: str) -> Decision:
    reason = Reason("decide.error", f"internal error, safe default used: {error}")
    try:
        route = (_terminal(policy, policy.defaults.target),)
    except Exception:
        route = (RouteStep(StepKind.QUEUE, DEFAULT_QUEUE),)  # the dialplan's own fallback queue
    return Decision(_service(route), 0, route, (reason,), rule="decide.error")


# --- targets and routes ----------------------------------------------------------------


def _resolve(policy: Policy, targets: Sequence[Ref], profile: CallerProfile) -> tuple[Ref | None, list[str]]:
    """The first target that resolves: dynamic person refs become manager:/supervisor: refs."""
    notes: list[str] = []
    for ref in targets:
        if ref.kind is RefKind.HOLDER:
            pid, label = profile.case_holder, "case holder"
        elif ref.kind is RefKind.HISTORY_OWNER:
            pid, label = profile.history.owner, "history owner"
        elif policy.person(ref.id) is None and ref.kind in (RefKind.MANAGER, RefKind.SUPERVISOR):
            notes.append(f"{ref} unknown")  # cannot happen with a cross-checked policy
            continue
        elif ref.kind is RefKind.CALLBACK and profile.number is None:
            notes.append("no number to call back")
            continue
        else:
            return ref, notes
        if not pid:
            notes.append(f"no {label}")
            continue
        found = policy.person(pid)
        if found is None:
            notes.append(f"{label} {_clean(pid, 40)!r} is not in people")
            continue
        return Ref(RefKind.MANAGER if found[0] == "manager" else RefKind.SUPERVISOR, pid), notes
    return None, notes


def _terminal(policy: Policy, ref: Ref) -> RouteStep:
    if ref.kind is RefKind.QUEUE:
        return RouteStep(StepKind.QUEUE, policy.asterisk_queue_of(ref.id))
    if ref.kind is RefKind.IVR:
        return RouteStep(StepKind.IVR, ref.id)
    if ref.kind is RefKind.VOICEMAIL:
        return RouteStep(StepKind.VOICEMAIL, policy.mailbox_of(ref.id))
    if ref.kind is RefKind.CALLBACK:
        return RouteStep(StepKind.CALLBACK, policy.sound_of(ref.id) if ref.id else "")
    return RouteStep(StepKind.HANGUP, "")


def _route(policy: Policy, intro: str | None, target: Ref, chain: Chain, ring_s: int) -> tuple[RouteStep, ...]:
    """[intro playback] + target; a person target gets the chain: [escalation], step-down."""
    steps = [RouteStep(StepKind.PLAYBACK, policy.sound_of(intro))] if intro else []
    if target.kind not in (RefKind.MANAGER, RefKind.SUPERVISOR):
        return (*steps, _terminal(policy, target))
    first = len(steps)
    esc = chain.escalate_to
    escalate = chain.escalates and esc is not None and esc.id != target.id
    down = first + (2 if escalate else 1)

    def index(action: str) -> int:
        return first + 1 if action == "escalate" and escalate else down

    kind = StepKind.MANAGER if target.kind is RefKind.MANAGER else StepKind.SUPERVISOR
    steps.append(RouteStep(kind, target.id, ring_s, index(chain.on_busy), index(chain.on_no_answer), index(chain.on_unavailable)))
    if escalate and esc is not None:
        ekind = StepKind.MANAGER if esc.kind is RefKind.MANAGER else StepKind.SUPERVISOR
        steps.append(RouteStep(ekind, esc.id, chain.escalate_ring_timeout_s, down, down, down))
    steps.append(_terminal(policy, chain.step_down_to))
    return tuple(steps)


def _service(route: Sequence[RouteStep]) -> Service:
    first = next((s for s in route if s.kind is not StepKind.PLAYBACK), route[-1])
    if first.kind in (StepKind.MANAGER, StepKind.SUPERVISOR):
        return Service.MANAGER
    if first.kind is StepKind.QUEUE:
        return Service.OPERATOR
    if first.kind is StepKind.IVR and route[0].kind is not StepKind.PLAYBACK:
        return Service.IVR
    return Service.SELF_SERVICE  # a recording first, voicemail, hang-up


# --- inputs ----------------------------------------------------------------------------


def _value_chain(policy: Policy, value: Value) -> str:
    """The fallback chain chosen by client value (ABC category, else `unknown`)."""
    return getattr(policy.chain_by_value, value.category or "unknown")


def _degraded(profile: CallerProfile) -> list[Reason]:
    out = []
    h, c = profile.history, profile.crm
    if h.status in DEGRADED:
        out.append(Reason(f"history.{h.status}", f"call history {h.status}: class and history owner may be missing"))
    if c.status in DEGRADED:
        detail = f" ({_clean(c.detail, 120)})" if c.detail else ""
        out.append(Reason(f"crm.{c.status}", f"CRM {c.status}{detail}: no ABC category, responsible manager or open cases"))
    return out


def _inputs_text(profile: CallerProfile, policy: Policy, value: Value, company_local: datetime | None,
                 caller_local: datetime | None, caller_off: float | None) -> str:
    h, c, rec = profile.history, profile.crm, profile.crm.record
    parts = [
        "caller ID withheld or unparseable" if profile.number is None else "caller identified",
        f"class={h.cls}" + (" (previous call missed)" if h.cls is HistoryClass.REPEAT and h.previous_missed else ""),
        f"callback={h.callback_kind or '-'}",
        f"abc={value.category or '-'}" + (" (VIP)" if value.vip else ""),
        f"holder={_clean(profile.case_holder or '-', 40)}",
        f"history={h.status}",
        f"crm={c.status}",
    ]
    if rec is not None:
        facts = [f"status '{_clean(rec.status, 40)}'"] if rec.status else []
        facts += [f"open claims {rec.open_claims}"] if rec.open_claims else []
        facts += [f"open orders {rec.open_orders}"] if rec.open_orders else []
        facts += [f"open deals {rec.open_deals}"] if rec.open_deals else []
        facts += ["delivery today"] if rec.delivery_today else []
        if facts:
            parts[-1] += f" ({', '.join(facts)})"
    if caller_local is not None and caller_off is not None:
        parts.append(f"caller local time {_hm(caller_local)} (UTC{caller_off:+g})")
    if company_local is not None:
        parts.append(f"company time {_DAYS[company_local.weekday()]} {_ymd_hm(company_local)} {policy.company.timezone}")
    return "; ".join(parts)


# --- time ------------------------------------------------------------------------------


def caller_local_time(profile: CallerProfile, now: datetime) -> datetime | None:
    """The caller's local time at `now` as decide sees it (the number's zone, else its UTC
    offset), or None when unknown. Naive `now` means UTC, as in decide."""
    if now.tzinfo is None or now.utcoffset() is None:
        now = now.replace(tzinfo=UTC)
    return _caller_time(profile, now)[0]


def is_open(policy: Policy, now: datetime) -> bool:
    """Whether the company is open at `now` as rule 1 sees it (working hours, own and public
    holidays, in the company's zone); naive `now` means UTC. The callback dialer's gate."""
    if now.tzinfo is None or now.utcoffset() is None:
        now = now.replace(tzinfo=UTC)
    return _closed(policy, _astz(now, zone(policy.company.timezone))) is None


def is_night(policy: Policy, caller_local: datetime | None) -> bool | None:
    """Whether the caller's local time is in the night range of `rules.night_far_tz`; None
    when that time is unknown or the policy has no (enabled) night rule."""
    rule = policy.rules.night_far_tz
    if caller_local is None or rule is None or not rule.enabled:
        return None
    return rule.night.contains(caller_local.hour * 60 + caller_local.minute)


def _astz(now: datetime, tz: timezone | ZoneInfo | None) -> datetime | None:
    if tz is None:
        return None
    try:
        return now.astimezone(tz)
    except (OverflowError, ValueError):  # at the edges of datetime's range
        return None


def _offset_h(dt: datetime | None) -> float | None:
    off = dt.utcoffset() if dt is not None else None
    return off.total_seconds() / 3600 if off is not None else None


def _caller_time(profile: CallerProfile, now: datetime) -> tuple[datetime | None, float | None]:
    env = profile.environment
    tz = zone(env.timezone) if isinstance(env.timezone, str) and env.timezone else None
    if tz is not None:
        local = _astz(now, tz)
        return local, _offset_h(local)
    off = env.utc_offset_hours
    if isinstance(off, int | float) and not isinstance(off, bool) and math.isfinite(off) and -14 <= off <= 14:
        local = _astz(now, timezone(timedelta(hours=off)))
        return local, (off if local is not None else None)
    return None, None


def _closed(policy: Policy, local: datetime | None) -> tuple[str, str] | None:
    """(rule id, text) when the company is closed at `local`, else None."""
    hours = policy.hours
    if not hours.enabled or local is None:
        return None
    day = local.date()
    if day in hours.holidays:
        return "hours.holiday", f"holiday {day.isoformat()} (hours.holidays)"
    public = policy.public_holiday(day)
    if public is not None:
        return "hours.holiday", f"public holiday {day.isoformat()}: {_clean(public, 60)} ({policy.holiday_country})"
    minute = local.hour * 60 + local.minute
    spans = hours.spans(local.weekday())
    if any(s.contains(minute) for s in spans):
        return None
    open_text = ", ".join(str(s) for s in spans) or "closed all day"
    return "hours.after_hours", f"outside working hours ({_DAYS[local.weekday()]} {_hm(local)}; open {open_text})"


def _night(policy: Policy, caller_local: datetime | None, caller_off: float | None, company_local: datetime | None) -> str | None:
    rule = policy.rules.night_far_tz
    company_off = _offset_h(company_local)
    if rule is None or not rule.enabled or caller_local is None or caller_off is None or company_off is None:
        return None
    diff = abs(caller_off - company_off)
    if not rule.night.contains(caller_local.hour * 60 + caller_local.minute) or diff < rule.min_offset_diff_h:
        return None
    return f"night call: caller's local time {_hm(caller_local)} is in {rule.night}, {diff:g} h from the company's zone"


def _hm(dt: datetime) -> str:
    """f"{dt:%H:%M}" without strftime (~1.5 µs less, twice per call)."""
    return f"{dt.hour:02d}:{dt.minute:02d}"


def _ymd_hm(dt: datetime) -> str:
    """f"{dt:%Y-%m-%d %H:%M}" without strftime (glibc's %Y does not pad years < 1000 either)."""
    return f"{dt.year}-{dt.month:02d}-{dt.day:02d} {_hm(dt)}"


def _clamp(p: int) -> int:
    return max(0, min(100, p))


def _clean(text: str, limit: int) -> str:
    text = _SPACE.sub(" ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
