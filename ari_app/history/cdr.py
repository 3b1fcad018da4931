"""Bootstrap history from Asterisk CSV CDRs (cdr_csv, Master.csv; times in UTC unless told
otherwise: with cdr.conf's `usegmtime=no` they are the PBX's local time).

Columns (Debian cdr.conf, loguniqueid and loguserfield on): accountcode, src, dst, dcontext,
clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec,
disposition, amaflags, uniqueid, userfield. The last two are optional.

The parser is pure and never raises on bad input: a bad row is counted with its line
number and reason, and the import goes on.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from ari_app.core.dialplan import INBOUND_CONTEXT
from ari_app.core.models import Contact, Direction
from ari_app.core.numbers import normalize, sanitize_for_log
from ari_app.core.ports import HistoryStore
from ari_app.history.store import BatchHistoryWriter

MAX_DURATION_S = 86_400  # a "call" of a day or more is a stuck channel, not data
MAX_PROBLEMS = 100  # reasons kept for the report; all bad rows are still counted
DISPOSITIONS = frozenset({"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"})
# PJSIP/101-0000002a, SIP/alice-00000001 (suffix: 8 hex digits), Local/101@from-queue-0000001f;1
_CHANNEL_RE = re.compile(r"[A-Za-z0-9]+/([^@;/]+?)(?:@[^;/]*)?-[0-9a-fA-F]{8}(?:;[12])?", re.ASCII)
_COL = {name: i for i, name in enumerate(
    "accountcode src dst dcontext clid channel dstchannel lastapp lastdata start answer end "
    "duration billsec disposition amaflags uniqueid userfield".split()
)}


@dataclass
class CdrReport:
    rows: int = 0
    inbound: int = 0
    outbound: int = 0
    skipped: int = 0  # well-formed, but not a call between a client and a manager
    bad: int = 0
    merged: int = 0  # further legs of a call already counted (same uniqueid): rows add up
    written: int = 0  # stored (calls older than the retention are not)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def add_bad(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((line, reason))


def endpoint_of(channel: str) -> str | None:
    """The endpoint (or Local extension) in an Asterisk channel name, or None."""
    m = _CHANNEL_RE.fullmatch(channel)
    return m.group(1) if m else None


def _seconds(value: str, name: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) >= MAX_DURATION_S:
        raise ValueError(f"{name} must be an integer in 0..{MAX_DURATION_S - 1}")
    return int(value)


def _parse_row(
    row: Sequence[str],
    managers: Mapping[str, str],
    inbound_contexts: Collection[str],
    region: str,
    cdr_timezone: tzinfo = UTC,
) -> tuple[str, Contact] | None:
    """(number, contact) for a client call, None for other calls; ValueError if malformed."""
    if not 16 <= len(row) <= 18:
        raise ValueError(f"expected 16-18 columns, got {len(row)}")
    col = {name: row[i].strip() if i < len(row) else "" for name, i in _COL.items()}
    try:
        at = datetime.strptime(col["start"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=cdr_timezone)
        at = at.astimezone(UTC)  # history keeps UTC
    except (ValueError, OverflowError):
        raise ValueError("start must be YYYY-MM-DD HH:MM:SS") from None
    _seconds(col["duration"], "duration")
    billsec = _seconds(col["billsec"], "billsec")
    if col["disposition"] not in DISPOSITIONS:
        raise ValueError(f"unknown disposition {sanitize_for_log(col['disposition'], 20)}")
    answered = col["disposition"] == "ANSWERED"

    if col["dcontext"] in inbound_contexts:
        number = normalize(col["src"], region)
        direction = Direction.INBOUND
        # An IVR or voicemail also "answers"; a client was served only if a channel was bridged.
        answered = answered and bool(col["dstchannel"])
        manager = managers.get(endpoint_of(col["dstchannel"]) or "")
    elif (caller := managers.get(endpoint_of(col["channel"]) or "")) is not None:
        number = normalize(col["dst"], region)
        direction = Direction.OUTBOUND
        manager = caller
    else:
        return None
    if number is None:  # withheld caller, or a manager dialling an internal extension
        return None
    return number, Contact(at, direction, answered, manager, billsec if answered else 0)


def _merge(a: Contact, b: Contact) -> Contact:
    """Two CDRs of one call (a queue rings several managers): answered if either was."""
    won = b if b.answered and not a.answered else a
    return Contact(a.at, a.direction, a.answered or b.answered, won.manager or a.manager or b.manager,
                   max(a.duration_s, b.duration_s))


def parse_cdr_rows(
    lines: Iterable[str],
    *,
    managers: Mapping[str, str],
    inbound_contexts: Collection[str] = (INBOUND_CONTEXT,),
    default_region: str = "RU",
    report: CdrReport | None = None,
    cdr_timezone: tzinfo = UTC,
) -> Iterator[tuple[str, Contact]]:
    """Yield (E.164 number, contact) per client call. `managers` maps endpoint -> manager id.

    Consecutive rows with the same uniqueid are one call and yield one contact. Start times
    are read in `cdr_timezone` (UTC: cdr.conf's `usegmtime=yes`).
    """
    report = report if report is not None else CdrReport()
    reader = csv.reader(lines)
    pending: tuple[str, str, Contact] | None = None  # (uniqueid, number, contact)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            report.rows += 1
            report.add_bad(reader.line_num, f"unreadable CSV: {sanitize_for_log(str(e), 60)}")
            continue
        if not row or row == [""]:
            continue  # blank line
        report.rows += 1
        try:
            parsed = _parse_row(row, managers, inbound_contexts, default_region, cdr_timezone)
        except ValueError as e:
            report.add_bad(reader.line_num, str(e))
            continue
        if parsed is None:
            report.skipped += 1
            continue
        number, contact = parsed
        uid = row[_COL["uniqueid"]].strip() if len(row) > _COL["uniqueid"] else ""
        if pending and uid and pending[0] == uid and pending[1] == number \
                and pending[2].direction is contact.direction:
            pending = (uid, number, _merge(pending[2], contact))
            report.merged += 1
            continue
        if pending:
            yield _count(report, pending)
        pending = (uid, number, contact)
    if pending:
        yield _count(report, pending)


def _count(report: CdrReport, pending: tuple[str, str, Contact]) -> tuple[str, Contact]:
    _, number, contact = pending
    if contact.direction is Direction.INBOUND:
        report.inbound += 1
    else:
        report.outbound += 1
    return number, contact


async def import_cdr_file(
    path: Path,
    store: HistoryStore,
    *,
    managers: Mapping[str, str],
    inbound_contexts: Collection[str] = (INBOUND_CONTEXT,),
    default_region: str = "RU",
    batch_size: int = 500,
    cdr_timezone: tzinfo = UTC,
    report: CdrReport | None = None,
) -> CdrReport:
    """Parse `path` and write its client calls to `store`, `batch_size` per round trip.

    Re-importing the same file is harmless: an identical contact is stored once.
    Raises HistoryUnavailable if the store fails, OSError if the file cannot be read; a
    `report` passed in then still counts what was written before the failure.
    """
    report = report if report is not None else CdrReport()
    batch: list[tuple[str, Contact]] = []
    # errors="replace": one bad byte must cost one row, not the whole import.
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        for item in parse_cdr_rows(f, managers=managers, inbound_contexts=inbound_contexts,
                                   default_region=default_region, report=report,
                                   cdr_timezone=cdr_timezone):
            batch.append(item)
            if len(batch) >= batch_size:
                report.written += await _write(store, batch)
                batch = []
    if batch:
        report.written += await _write(store, batch)
    return report


async def _write(store: HistoryStore, batch: list[tuple[str, Contact]]) -> int:
    if isinstance(store, BatchHistoryWriter):
        return await store.record_many(batch)
    for number, contact in batch:
        await store.record(number, contact)
    return len(batch)
