"""What a caller is worth to decide: the category they are served as and their segment of
the strategy's priority table. Pure; docs/routing.md, "What decide reads from the CRM".

The category is the CRM's ABC (else the legal-entity directory's), raised to
`vip.serve_as` for a CRM VIP, and capped by `client_status` when the CRM's status is
listed there (a listed status also switches the VIP flag off: a client we defend against
is not served as a VIP). Open deals or orders make a caller an active client: never `new`,
whatever the PBX's history says.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ari_app.core.models import CallerProfile, HistoryClass, SourceStatus
from ari_app.core.policy import Policy

_ABC = ("A", "B", "C")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class Value:
    """One caller's value, assessed once per decision."""

    own: str | None  # the CRM's category, else the directory's (A/B/C only)
    category: str | None  # the category served: rule 6, chain_by_value, base priority
    vip: bool  # the CRM's VIP flag applies (vip.serve_as, vip.boost)
    status: str | None  # the CRM status, as listed in client_status, that capped the category
    active: bool  # open deals or orders in the CRM
    new: bool  # rule 7's `new`: history says new (or could not say) and no open business
    segment: str  # key into the strategy's priority table
    vip_boost: int


def assess(profile: CallerProfile, policy: Policy) -> Value:
    rec, h = profile.crm.record, profile.history
    raw = profile.abc
    own = raw.strip().upper() if isinstance(raw, str) else None
    own = own if own in _ABC else None
    status = rec.status.strip().casefold() if rec is not None and isinstance(rec.status, str) else ""
    cap = policy.client_status.get(status) if status else None
    vip = cap is None and rec is not None and rec.vip is True
    served = own
    if cap is not None:  # at most the listed category ("A" < "C": A ranks highest)
        served = cap if own is None or own < cap else own
    elif vip and policy.vip.serve_as is not None and (own is None or policy.vip.serve_as < own):
        served = policy.vip.serve_as
    active = rec is not None and (rec.open_deals > 0 or rec.open_orders > 0)
    new = h.cls is HistoryClass.NEW and not active
    if served is not None:
        segment = served
    elif active:
        segment = "old"
    else:
        segment = _history_segment(profile)
    return Value(own, served, vip, status if cap is not None else None, active, new, segment,
                 policy.vip.boost if vip else 0)


def _history_segment(profile: CallerProfile) -> str:
    if profile.number is None or profile.history.status not in (SourceStatus.OK, SourceStatus.UNKNOWN):
        return "unknown"
    return "new" if profile.history.cls is HistoryClass.NEW else "old"


# --- reasons: what these inputs changed ---------------------------------------------------


def vip_text(policy: Policy, profile: CallerProfile, value: Value) -> str:
    rec = profile.crm.record
    own = rec.abc.strip().upper() if rec is not None and isinstance(rec.abc, str) and rec.abc.strip() else None
    text = "CRM: VIP client"
    if value.category is not None and value.category != own:
        text += f", served as {value.category} (own category {_short(own, 8) if own else 'none'})"
    if policy.vip.boost:
        text += f", base priority {policy.vip.boost:+d}"
    return text


def status_text(profile: CallerProfile, value: Value) -> str | None:
    """The `client_status` reason, when the CRM's status is listed."""
    if value.status is None:
        return None
    text = f"CRM status '{_short(value.status, 40)}': served as {value.category} (" + (
        "its own category" if value.own == value.category else f"own category {value.own or 'none'}") + ")"
    rec = profile.crm.record
    if rec is not None and rec.vip is True:
        text += ", VIP flag not applied"
    return text


def business_text(profile: CallerProfile, value: Value) -> str | None:
    """The `open_business` reason, when open deals or orders made a new caller's segment
    `old` (a caller with a category is ranked by it; rule 7 says the rest)."""
    if not value.active or profile.history.cls is not HistoryClass.NEW or value.category is not None:
        return None
    return f"CRM: {business(profile)}: an active client, served as old, not {_history_segment(profile)}"


def business(profile: CallerProfile) -> str:
    """Open orders and deals in words, for the reasons: "1 open order, 2 open deals"."""
    rec = profile.crm.record
    if rec is None:
        return "no open business"
    parts = [f"{n} open {what}{'s' if n != 1 else ''}"
             for n, what in ((rec.open_orders, "order"), (rec.open_deals, "deal")) if n > 0]
    return ", ".join(parts) or "no open business"


def _short(text: str, limit: int) -> str:
    """One line of at most `limit` characters: a CRM's text never breaks the reasons."""
    text = _SPACE.sub(" ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
