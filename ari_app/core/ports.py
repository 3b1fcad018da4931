"""The ports of the core: what identify + decide need from the outside world, as Protocols.

Adapters implement them (history/: Redis; crm/: file, HTTP, Bitrix24; stasis/presence.py and
stasis/shared_presence.py: Redis; core/clock.py: the system clock); tests and replays use
in-memory ones.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ari_app.core.models import Contact, CrmFacts


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class HistoryStore(Protocol):
    """The PBX's own call history, per client number."""

    async def recent(self, number: str, since: datetime) -> list[Contact]:
        """Contacts of `number` that started at or after `since`, newest first (bounded)."""
        ...

    async def record(self, number: str, contact: Contact) -> None: ...


class CrmLookup(Protocol):
    """What the CRM says about a number, within its own budget; never raises for a CRM fault."""

    async def __call__(self, number: str) -> CrmFacts: ...


class Presence(Protocol):
    """Who is about to be rung or is talking, shared by every Caseline instance."""

    async def claim(self, person: str, call_id: str, ttl_s: int) -> bool: ...
    async def release(self, person: str, call_id: str) -> None: ...


class NodePresence(Protocol):
    """Where each phone is registered and who is on a call, across every Asterisk node
    (issue 23). Never raises: without the shared view it answers from this node's own."""

    async def busy(self, endpoint: str) -> bool:
        """A channel on `endpoint` ("PJSIP/mgr1") on any live node."""
        ...

    async def where(self, endpoint: str) -> tuple[str | None, bool]:
        """(node, online): the node to reach `endpoint` through, and whether it is registered."""
        ...
