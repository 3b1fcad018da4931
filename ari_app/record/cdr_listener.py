"""Learning from every call, live, from Asterisk's CDRs over AMI (`Cdr` events, cdr_manager).

Why CDRs: they are the one record Asterisk writes for every call, whatever path it took (our
ARI bridge, the operators' queue, a blind or attended transfer, the FastAGI front's Dial, a
manager's own outbound call), each with who was bridged to whom and for how long. A
transferred call has several records tied by linkedid (cdr_manager.conf maps it into the
event); this listener gathers them per call and, once a call's records have been quiet for
`settle_s`, learns from them with the same code as `caseline import-cdr`
(history/cdr.py learn_call). Learning never touches the routing path: no ARI request, no
work while a call is being routed.

Gap: records posted while no AMI session is connected (Caseline restarting, AMI down) are not
seen live; `caseline import-cdr` of Master.csv fills them in (README, "How a case holder is
learned").
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from panoramisk import Manager
from redis.asyncio import Redis

from ari_app.config.settings import AmiSettings
from ari_app.core.models import Contact
from ari_app.core.ports import HistoryStore
from ari_app.history.cdr import CdrRow, LearningRules, learn_call, parse_row
from ari_app.record.outcomes import LEARNED_KEY
from ari_app.record.pending_writes import PendingWrites

log = logging.getLogger("caseline.record.cdr")

_FIELDS = ("AccountCode", "Source", "Destination", "DestinationContext", "CallerID", "Channel",
           "DestinationChannel", "LastApplication", "LastData", "StartTime", "AnswerTime",
           "EndTime", "Duration", "BillableSeconds", "Disposition", "AMAFlags", "UniqueID",
           "UserField", "LinkedID")
MAX_OPEN_CALLS = 10_000  # calls whose records are still arriving; beyond: learn the oldest now
MAX_CALL_S = 4 * 3600 + 60  # records of a call kept at most this long (a stuck channel)
MAX_ROWS_PER_CALL = 50  # a call with more records than this is a loop, not a conversation
LEARNED_TTL_S = 7 * 86_400


def cdr_event_row(event: Mapping[str, str], received: datetime) -> CdrRow:
    """A Cdr event as a CdrRow; ValueError if it is not a well-formed record.

    The start time is taken from our clock (received - duration): cdr_manager prints the
    PBX's local time without a zone.
    """
    values = [str(event.get(name, "")) for name in _FIELDS]
    try:
        duration = int(values[12])
    except ValueError:
        raise ValueError("Duration is not a number") from None
    values[9] = (received - timedelta(seconds=max(duration, 0))).strftime("%Y-%m-%d %H:%M:%S")
    return parse_row(values)


@dataclass
class _OpenCall:
    rows: list[CdrRow] = field(default_factory=list)
    first_seen: float = 0.0
    last_seen: float = 0.0
    # Asterisk posts each channel's records when that channel ends: a transfer's Local half
    # may post before or after the client's channel. The call is complete once the records
    # of its first channel (uniqueid == linkedid) are in and nothing came for settle_s.
    origin_seen: bool = False


class CdrListener:
    def __init__(self, settings: AmiSettings, history: HistoryStore,
                 rules: Callable[[], LearningRules], pending: PendingWrites, *,
                 redis: Redis | None = None, settle_s: float = 2.0,
                 on_bad_event: Callable[[], None] | None = None,
                 on_row: Callable[[CdrRow], None] | None = None,
                 on_call: Callable[[list[CdrRow]], Awaitable[None]] | None = None,
                 on_calls: Callable[[list[list[CdrRow]]], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.history = history
        self.rules = rules  # from the live policy's people and the `learning:` settings
        self.pending = pending
        self.redis = redis
        self.settle_s = settle_s
        self.on_bad_event = on_bad_event
        self.on_row = on_row  # every well-formed record (counts what the dialplan did)
        self.on_call = on_call  # each call's records once complete
        self.on_calls = on_calls  # the same, every call of one flush at once (FastAGI outcomes)
        self.clock = clock
        self.open: dict[str, _OpenCall] = {}  # call key -> its records so far (bounded)
        self._ready: list[list[CdrRow]] = []  # calls pushed out of `open` early, to learn next
        self.manager: Manager | None = None
        self._settler: asyncio.Task | None = None

    @property
    def gathering(self) -> int:
        """Calls whose records are held now (the soak checks this goes back to 0)."""
        return len(self.open) + len(self._ready)

    async def start(self) -> None:
        self.manager = Manager(host=self.settings.host, port=self.settings.port,
                               username=self.settings.user,
                               secret=self.settings.secret.get_secret_value(),
                               ping_delay=5, ping_interval=5, reconnect_timeout=2)
        self.manager.register_event("Cdr", self._on_cdr)
        self._settler = asyncio.create_task(self.settle_forever(), name="cdr-settle")
        try:
            await self.manager.connect()
        except OSError as e:  # panoramisk retries on its own
            log.warning("AMI not reachable yet (%s); retrying", type(e).__name__)

    async def close(self) -> None:
        if self.manager is not None:
            self.manager.close()
        if self._settler is not None:
            self._settler.cancel()
            await asyncio.gather(self._settler, return_exceptions=True)
        await self.flush(everything=True)  # learn what has arrived rather than lose it

    async def _on_cdr(self, _manager: Manager, event: Mapping[str, str]) -> None:
        try:
            self.add(event, datetime.now(UTC))
        except Exception:  # panoramisk would drop it silently: say so, keep listening
            log.exception("could not take a CDR event")

    def add(self, event: Mapping[str, str], received: datetime) -> None:
        """Keep one record until its call is quiet. A garbled record is counted and dropped."""
        try:
            row = cdr_event_row(event, received)
        except ValueError as e:
            log.warning("CDR event dropped: %s", e)
            if self.on_bad_event:
                self.on_bad_event()
            return
        if self.on_row:
            self.on_row(row)
        key = row.call_key or f"row-{id(row)}"
        call = self.open.get(key)
        if call is None:
            if len(self.open) >= MAX_OPEN_CALLS:  # bounded: the oldest call is learned early
                oldest = next(iter(self.open))
                self._ready.append(self.open.pop(oldest).rows)
            call = self.open[key] = _OpenCall(first_seen=self.clock())
        if len(call.rows) < MAX_ROWS_PER_CALL:
            call.rows.append(row)
        call.last_seen = self.clock()
        call.origin_seen = call.origin_seen or not row.linkedid or row.uniqueid == row.linkedid

    async def settle_forever(self) -> None:
        """Learn from every call whose records have been quiet for settle_s (cancel to stop)."""
        while True:
            await asyncio.sleep(min(self.settle_s, 0.5))  # the settle check's period
            await self.flush()

    async def flush(self, *, everything: bool = False) -> int:
        """Learn from the calls that are done (all of them with everything=True)."""
        now = self.clock()
        done = [key for key, call in self.open.items()
                if everything or (call.origin_seen and now - call.last_seen >= self.settle_s)
                or now - call.first_seen >= MAX_CALL_S]
        batches, self._ready = [*self._ready, *(self.open.pop(key).rows for key in done)], []
        learned = await self.learn_many(batches)
        if self.on_calls is not None and batches:
            try:
                await self.on_calls(batches)
            except Exception:  # the decision log must not stop learning
                log.exception("could not take the outcomes of %d call(s)", len(batches))
        for rows in batches:
            if self.on_call is not None:
                try:
                    await self.on_call(rows)
                except Exception:  # one call's decision-log entry must not stop learning
                    log.exception("could not take the outcome of call %s", rows[0].call_key)
        return learned

    async def learn_many(self, calls: list[list[CdrRow]]) -> int:
        """Record the contacts of the calls that are done in history (and who talked, for the
        decision log): one Redis round trip for all of them, not one per call per key (at
        50 calls/s a flush holds ~25 calls; issue 22)."""
        rules = self.rules()
        contacts: list[tuple[str, Contact]] = []
        talks: dict[str, str] = {}
        for rows in calls:
            learned = learn_call(rows, rules)  # in the order Asterisk posted them
            if learned is None:
                continue
            contacts.append(learned)
            number, contact = learned
            if contact.talks and rows[0].linkedid:
                talks[LEARNED_KEY + rows[0].linkedid] = json.dumps(
                    {"talks": [[t.person, t.seconds] for t in contact.talks], "holder": contact.manager})
        if contacts:
            what = f"history of call {calls[0][0].call_key}" + (
                f" and {len(contacts) - 1} more" if len(contacts) > 1 else "")
            await self.pending.write(what, lambda: self.history.record_many(contacts))
        if talks and self.redis is not None:
            await self.pending.write(f"who talked in {len(talks)} call(s)", lambda: self._remember_talks(talks))
        return len(contacts)

    async def _remember_talks(self, talks: dict[str, str]) -> None:
        redis = self.redis
        assert redis is not None
        async with redis.pipeline(transaction=False) as pipe:
            for key, value in talks.items():
                pipe.set(key, value, ex=LEARNED_TTL_S)
            await pipe.execute()
