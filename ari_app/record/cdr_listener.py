"""Calls Caseline does not execute itself, recorded live from Asterisk's CDR over AMI.

Why AMI `Cdr` events (cdr_manager) rather than ARI: a manager's own call to a client never
enters Stasis, and the CDR is the one record Asterisk writes for every call, with the
disposition and talk time; it is the same record `caseline history import-cdr` reads, so
one parser serves both. Rows we record:
  - outbound: a manager's endpoint called an external number (what makes `callback` work);
  - inbound calls handed to the operators' queue (the queue knows who answered).
Calls bridged by the ARI app are recorded by the app itself when they end.
"""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from panoramisk import Manager

from ari_app.config.settings import AmiSettings
from ari_app.core.dialplan import QUEUE_CONTEXTS
from ari_app.core.ports import HistoryStore
from ari_app.history.cdr import parse_cdr_rows
from ari_app.record.pending_writes import PendingWrites

log = logging.getLogger("caseline.record.cdr")

_FIELDS = ("AccountCode", "Source", "Destination", "DestinationContext", "CallerID", "Channel",
           "DestinationChannel", "LastApplication", "LastData", "StartTime", "AnswerTime",
           "EndTime", "Duration", "BillableSeconds", "Disposition", "AMAFlags", "UniqueID",
           "UserField")


def cdr_event_to_csv(event: Mapping[str, str], received: datetime) -> str:
    """One CSV line in cdr_csv's column order. The start time is taken from our clock
    (received - duration): cdr_manager prints local time without a zone."""
    values = [str(event.get(name, "")) for name in _FIELDS]
    try:
        duration = int(values[12])
    except ValueError:
        duration = 0
    values[9] = (received - timedelta(seconds=max(duration, 0))).strftime("%Y-%m-%d %H:%M:%S")
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()


class CdrListener:
    def __init__(self, settings: AmiSettings, history: HistoryStore,
                 managers: Callable[[], Mapping[str, str]], default_region: str,
                 pending: PendingWrites) -> None:
        self.settings = settings
        self.history = history
        self.pending = pending
        self.managers = managers  # endpoint resource -> manager id, from the live policy
        self.default_region = default_region
        self.manager: Manager | None = None

    async def start(self) -> None:
        self.manager = Manager(host=self.settings.host, port=self.settings.port,
                               username=self.settings.user,
                               secret=self.settings.secret.get_secret_value(),
                               ping_delay=5, ping_interval=5, reconnect_timeout=2)
        self.manager.register_event("Cdr", self._on_cdr)
        try:
            await self.manager.connect()
        except OSError as e:  # panoramisk retries on its own
            log.warning("AMI not reachable yet (%s); retrying", type(e).__name__)

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()

    async def _on_cdr(self, _manager: Manager, event: Mapping[str, str]) -> None:
        try:
            await self.record(event, datetime.now(UTC))
        except Exception:  # panoramisk would drop it silently: say so, keep listening
            log.exception("could not record a CDR event")

    async def record(self, event: Mapping[str, str], received: datetime) -> int:
        line = cdr_event_to_csv(event, received)
        written = 0
        for number, contact in parse_cdr_rows([line], managers=self.managers(),
                                              inbound_contexts=QUEUE_CONTEXTS,
                                              default_region=self.default_region):
            await self.pending.write(f"CDR of {event.get('UniqueID', '?')}",
                                     lambda n=number, c=contact: self.history.record(n, c))
            written += 1
        return written
