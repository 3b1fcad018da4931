"""Live calls as the console shows them: GET /calls's view plus who is calling.

`name` is the caller's own display name from SIP (whatever the remote party wrote, so the
console renders it as text), with any phone number in it masked like everywhere else;
`client` is the CRM's name for them and `holder` whom their case belongs to.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ari_app.core.numbers import mask

MAX_NAME = 80
_NUMBER_RE = re.compile(r"\+?\d[\d\s().-]{3,}\d")


def shown_name(raw: object) -> str:
    """A display name, printable, bounded, numbers masked.

    >>> shown_name("Ivan +7 916 123-45-67")
    'Ivan ***4567'
    >>> shown_name("<img src=x onerror=alert(1)>")
    '<img src=x onerror=alert(1)>'
    """
    text = "".join(c if c.isprintable() else " " for c in str(raw or "")[:4 * MAX_NAME])

    def masked(m: re.Match[str]) -> str:
        digits = sum(c.isdigit() for c in m.group())
        return mask(m.group()) if digits > 4 else m.group()

    return _NUMBER_RE.sub(masked, text).strip()[:MAX_NAME]


def live_view(live_calls: Callable[[], list[dict[str, Any]]],
              calls: Mapping[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    """`live_calls` (StasisApp.live_calls) with name, client and holder from `calls` (its
    table of Call objects, read only)."""
    def view() -> list[dict[str, Any]]:
        out = live_calls()
        for entry in out:
            call = calls.get(entry.get("call_id", ""))
            if call is None:
                continue
            entry["name"] = shown_name((getattr(call, "channel", {}).get("caller") or {}).get("name"))
            routed = getattr(call, "routed", None)
            if routed is not None:
                record = routed.profile.crm.record
                entry["client"] = record.name if record is not None else ""
                entry["holder"] = routed.profile.case_holder or ""
        return out
    return view
