"""The caller profile as decide saw it, as compact JSON: kept in each decision-log entry so
that `caseline replay` can re-decide a past call under another policy without asking the
CRM or history again. profile_from_json(profile_to_json(p)) == decide_input(p), but for
the call that taught the history owner (HistoryFacts.owner_contact): what decide does not
read is not kept. A key of older entries that decide no longer reads (the CRM record's
`extra`, `most_urgent`) is ignored.

Values equal to their defaults are left out; every field is named (no positional arrays),
so entries written today stay readable when a field is added later.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, fields, is_dataclass
from datetime import datetime
from typing import Any

from ari_app.core.identify import decide_input
from ari_app.core.models import (
    CallbackKind,
    CallerProfile,
    CrmFacts,
    CrmRecord,
    EnvironmentFacts,
    HistoryClass,
    HistoryFacts,
    LegalEntity,
    SourceStatus,
)

VERSION = 1


def _compact(obj: Any) -> dict[str, Any]:
    """A dataclass's fields that differ from their defaults; datetimes as ISO 8601, nested
    dataclasses (the CRM record, the legal entity) as objects of their own."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.default is not MISSING and value == f.default:
            continue
        if f.default_factory is not MISSING and value == f.default_factory():
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif is_dataclass(value):
            value = _compact(value)
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out


def profile_to_json(profile: CallerProfile, *, number: str | None = None) -> str:
    """`number` replaces the profile's number (the decision log keeps masked numbers)."""
    data: dict[str, Any] = {"v": VERSION, "number": profile.number if number is None else number}
    profile = decide_input(profile)
    history = _compact(profile.history)
    # the call that taught the owner is for explain only: decide reads `owner`, not the call
    history.pop("owner_contact", None)
    if history:
        data["history"] = history
    crm = _compact(profile.crm)
    if crm:
        data["crm"] = crm
    env = _compact(profile.environment)
    if env:
        data["environment"] = env
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _opt(value: object, kind: type) -> Any:
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise ValueError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _when(value: object) -> datetime | None:
    text = _opt(value, str)
    if text is None:
        return None
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError("a time without a zone")
    return at


def _mapping(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


def profile_from_json(text: str | bytes) -> CallerProfile:
    """The profile in an entry; ValueError when it is not one (or of an unknown version)."""
    data = _mapping(json.loads(text))
    if data.get("v") != VERSION:
        raise ValueError(f"unknown profile version {data.get('v')!r}")
    h = _mapping(data.get("history"))
    history = HistoryFacts(
        status=SourceStatus(h.get("status", SourceStatus.SKIPPED)),
        cls=HistoryClass(h.get("cls", HistoryClass.NEW)),
        callback_kind=CallbackKind(h["callback_kind"]) if h.get("callback_kind") is not None else None,
        previous_missed=_opt(h.get("previous_missed"), bool),
        owner=_opt(h.get("owner"), str),
        last_contact_at=_when(h.get("last_contact_at")),
    )
    c = _mapping(data.get("crm"))
    r = c.get("record")
    record = None
    if r is not None:
        r = _mapping(r)
        record = CrmRecord(
            client_id=_opt(r.get("client_id"), str) or "",
            name=_opt(r.get("name"), str) or "",
            status=_opt(r.get("status"), str) or "",
            abc=_opt(r.get("abc"), str),
            responsible=_opt(r.get("responsible"), str),
            open_deals=_opt(r.get("open_deals"), int) or 0,
            open_orders=_opt(r.get("open_orders"), int) or 0,
            open_claims=_opt(r.get("open_claims"), int) or 0,
            delivery_today=_opt(r.get("delivery_today"), bool) or False,
            vip=_opt(r.get("vip"), bool) or False,
        )
    crm = CrmFacts(status=SourceStatus(c.get("status", SourceStatus.SKIPPED)), record=record,
                   detail=_opt(c.get("detail"), str) or "")
    e = _mapping(data.get("environment"))
    le = e.get("legal_entity")
    legal = None
    if le is not None:
        le = _mapping(le)
        legal = LegalEntity(company=_opt(le.get("company"), str) or "", manager=_opt(le.get("manager"), str),
                            abc=_opt(le.get("abc"), str), id=_opt(le.get("id"), str),
                            parent=_opt(le.get("parent"), str), parent_id=_opt(le.get("parent_id"), str))
    offset = e.get("utc_offset_hours")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int | float)):
        raise ValueError("utc_offset_hours is not a number")
    env = EnvironmentFacts(country=_opt(e.get("country"), str), region=_opt(e.get("region"), str),
                           timezone=_opt(e.get("timezone"), str), carrier=_opt(e.get("carrier"), str),
                           utc_offset_hours=offset, legal_entity=legal,
                           timezone_source=_opt(e.get("timezone_source"), str))
    return CallerProfile(number=_opt(data.get("number"), str), history=history, crm=crm, environment=env)
