"""Building bounded `CrmRecord`s: every adapter goes through here, so limits hold everywhere.

A CRM is outside our control; a 5 MB "name" or 10k extra fields must not reach the logs,
the decision reasons or the cache.
"""
from __future__ import annotations

from collections.abc import Mapping

from ari_app.core.models import CrmRecord

MAX_ID = 128
MAX_NAME = 200
MAX_STATUS = 64
MAX_MANAGER = 64
MAX_EXTRA_KEYS = 16
MAX_EXTRA_KEY = 64
MAX_EXTRA_VALUE = 256
MAX_COUNT = 1_000_000

ABC = frozenset({"A", "B", "C"})


def clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


def normalise_abc(value: str | None) -> str | None:
    """'a', ' B ' -> 'A', 'B'; anything that is not A/B/C -> None (unclassified, not an error)."""
    if value is None:
        return None
    v = value.strip().upper()
    return v if v in ABC else None


def bounded_extra(items: Mapping[str, object] | None) -> dict[str, str]:
    """First MAX_EXTRA_KEYS scalar entries, keys and values clipped; nested values dropped."""
    out: dict[str, str] = {}
    if not items:
        return out
    for key, value in items.items():
        if len(out) >= MAX_EXTRA_KEYS:
            break
        if value is None or isinstance(value, dict | list | tuple):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        out[clip(str(key), MAX_EXTRA_KEY)] = clip(text, MAX_EXTRA_VALUE)
    return out


def build_record(
    *,
    client_id: str,
    name: str = "",
    status: str = "",
    abc: str | None = None,
    responsible: str | None = None,
    open_deals: int = 0,
    open_orders: int = 0,
    open_claims: int = 0,
    delivery_today: bool = False,
    vip: bool = False,
    extra: Mapping[str, object] | None = None,
) -> CrmRecord:
    deals, orders, claims = (min(max(n, 0), MAX_COUNT) for n in (open_deals, open_orders, open_claims))
    responsible = responsible.strip() if responsible else None
    return CrmRecord(
        client_id=clip(client_id, MAX_ID),
        name=clip(name, MAX_NAME),
        status=clip(status, MAX_STATUS),
        abc=normalise_abc(abc),
        responsible=clip(responsible, MAX_MANAGER) if responsible else None,
        open_deals=deals,
        open_orders=orders,
        open_claims=claims,
        delivery_today=delivery_today,
        vip=vip,
        extra=bounded_extra(extra),
    )
