"""Bootstrap history from Asterisk CSV CDRs (cdr_csv, Master.csv; times in UTC unless told
otherwise: with cdr.conf's `usegmtime=no` they are the PBX's local time).

Columns (Debian cdr.conf, loguniqueid and loguserfield on): accountcode, src, dst, dcontext,
clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec,
disposition, amaflags, uniqueid, userfield. The last two are optional; the live listener
adds linkedid, which ties a transferred call's records together.

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

from ari_app.config.settings import Settings
from ari_app.core.dialplan import INBOUND_CONTEXT
from ari_app.core.learning import HOLDER_ROLES, Role, case_holder, merge_talks
from ari_app.core.models import Contact, Direction, Talk
from ari_app.core.numbers import normalize, sanitize_for_log
from ari_app.core.policy import Policy
from ari_app.core.ports import HistoryStore
from ari_app.history.store import BatchHistoryWriter

MAX_DURATION_S = 86_400  # a "call" of a day or more is a stuck channel, not data
MAX_PROBLEMS = 100  # reasons kept for the report; all bad rows are still counted
DISPOSITIONS = frozenset({"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"})
# PJSIP/101-0000002a, SIP/alice-00000001 (suffix: 8 hex digits), Local/101@from-queue-0000001f;1
_CHANNEL_RE = re.compile(r"[A-Za-z0-9]+/([^@;/]+?)(?:@[^;/]*)?-[0-9a-fA-F]{8}(?:;[12])?", re.ASCII)
_COL = {name: i for i, name in enumerate(
    "accountcode src dst dcontext clid channel dstchannel lastapp lastdata start answer end "
    "duration billsec disposition amaflags uniqueid userfield linkedid".split()
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


@dataclass(frozen=True, slots=True)
class CdrRow:
    """One CDR: party A (`channel`) and, if any, the party B it was bridged or dialled to."""

    src: str
    dst: str
    dcontext: str
    channel: str
    dstchannel: str
    start: datetime  # UTC
    billsec: int
    answered: bool
    uniqueid: str = ""
    linkedid: str = ""  # every channel of one call shares it (live events; not in Master.csv)
    userfield: str = ""  # what the dialplan noted ("caseline:shed": admission's dialplan gate)

    @property
    def call_key(self) -> str:
        return self.linkedid or self.uniqueid


def parse_row(row: Sequence[str], cdr_timezone: tzinfo = UTC) -> CdrRow:
    """One CSV row (16-19 columns: Master.csv's, plus the live listener's linkedid); ValueError
    naming the column if malformed."""
    if not 16 <= len(row) <= 19:
        raise ValueError(f"expected 16-19 columns, got {len(row)}")
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
    return CdrRow(src=col["src"], dst=col["dst"], dcontext=col["dcontext"], channel=col["channel"],
                  dstchannel=col["dstchannel"], start=at, billsec=billsec,
                  answered=col["disposition"] == "ANSWERED", uniqueid=col["uniqueid"],
                  linkedid=col["linkedid"], userfield=col["userfield"])


@dataclass(frozen=True)
class LearningRules:
    """What a CDR means at this site (config: `learning:` + routing.yaml's `people`)."""

    people: Mapping[str, str]  # endpoint resource ("mgr1", Local exten "101") -> person id
    roles: Mapping[str, Role] | None = None  # person id -> role; None: everyone a manager
    inbound_contexts: Collection[str] = (INBOUND_CONTEXT,)
    people_contexts: Collection[str] | None = None  # None: outbound from any context
    min_talk_s: int = 0
    region: str = "RU"

    def role(self, person: str) -> Role | None:
        return self.roles.get(person) if self.roles is not None else Role.MANAGER

    def person(self, channel: str) -> str | None:
        return self.people.get(endpoint_of(channel) or "")


def learning_rules(policy: Policy, settings: Settings) -> LearningRules:
    """The rules of this site: routing.yaml's people, caseline.yaml's `learning:`."""
    learning = settings.learning
    return LearningRules(people=policy.people.by_endpoint(), roles=policy.people.roles(),
                         inbound_contexts=learning.inbound_contexts,
                         people_contexts=learning.people_contexts,
                         min_talk_s=learning.min_talk_s, region=settings.numbers.default_region)


def _local_base(channel: str) -> str | None:
    """"Local/mgr3@internal-0000001f;1" -> "Local/mgr3@internal-0000001f" (both halves)."""
    if channel.startswith("Local/") and channel[-2:] in (";1", ";2"):
        return channel[:-2]
    return None


def _talks_with(caller: str, rows: Sequence[CdrRow], rules: LearningRules) -> list[Talk]:
    """Who talked with `caller` (a channel), in order: the rows of its bridges with our
    people. A Local channel (a transfer inside Caseline's bridge, a queue's Local member) is
    followed to what its other half talked to, when that half's rows are in `rows`."""
    talks: list[Talk] = []
    for row in rows:
        if row.channel != caller or not row.dstchannel:
            continue
        base = _local_base(row.dstchannel)
        beyond = [r for r in rows if base and r.channel == base + ";2" and r.dstchannel]
        if beyond:  # what the Local's far half bridged to: a person's own answer and talk
            talks += [Talk(p, r.billsec) for r in beyond
                      if r.answered and (p := rules.person(r.dstchannel))]
        elif row.answered and (person := rules.person(row.dstchannel)) and (
                row.billsec > 0 or not base):
            # A Local channel is "answered" as soon as it joins our bridge; its billsec counts
            # from its target's answer, so one whose target never answered (busy, no answer)
            # has none: a failed transfer is no talk. A person's own channel answered for real.
            talks.append(Talk(person, row.billsec))
    return talks


def learn_call(rows: Sequence[CdrRow], rules: LearningRules) -> tuple[str, Contact] | None:
    """(client number, contact) for the rows of one call, or None if it is not a client's.

    Inbound: the call's first channel is not one of our people and some of its rows are in
    an inbound context; the contact names everyone who talked with the client (a queue
    answer, each side of a transfer) and the case holder learned from them. Outbound: one
    of our people dialled a number outside from a people context.
    """
    if not rows:
        return None
    # The call's first channel: the one whose uniqueid is the linkedid (Asterisk gives a call
    # the id of its oldest channel), else the first record's party A.
    first = next((r for r in rows if r.linkedid and r.uniqueid == r.linkedid), rows[0])
    caller_person = rules.person(first.channel)
    if caller_person is None:
        if _local_base(first.channel):
            return None  # a Local half's own record: read through its other half
        own = [r for r in rows if r.channel == first.channel]
        # A transfer may leave the client's records only in a people context (Asterisk
        # rewrites the queue call's CDR to show the manager it was transferred to).
        contexts = set(rules.inbound_contexts) | set(rules.people_contexts or ())
        if not any(r.dcontext in contexts for r in own):
            return None
        number = normalize(first.src, rules.region)
        if number is None:  # withheld caller: nothing to key history on
            return None
        talks = merge_talks(_talks_with(first.channel, rows, rules))
        roles = rules.roles if rules.roles is not None else {t.person: Role.MANAGER for t in talks}
        holder = case_holder(talks, roles, rules.min_talk_s)
        # An IVR or voicemail also "answers"; a client was served only if a person talked.
        answered = bool(talks)
        talked = sum(t.seconds for t in talks)
        return number, Contact(first.start, Direction.INBOUND, answered, holder, talked, talks)
    if rules.role(caller_person) not in HOLDER_ROLES:
        return None
    for row in rows:
        if row.channel != first.channel or rules.person(row.dstchannel):
            continue  # another leg, or a call to a colleague
        if rules.people_contexts is not None and row.dcontext not in rules.people_contexts:
            continue
        number = normalize(row.dst, rules.region)
        if number is not None:
            return number, Contact(row.start, Direction.OUTBOUND, row.answered, caller_person,
                                   row.billsec if row.answered else 0)
    return None


def parse_cdr_rows(
    lines: Iterable[str],
    *,
    managers: Mapping[str, str] | None = None,
    rules: LearningRules | None = None,
    inbound_contexts: Collection[str] = (INBOUND_CONTEXT,),
    default_region: str = "RU",
    report: CdrReport | None = None,
    cdr_timezone: tzinfo = UTC,
) -> Iterator[tuple[str, Contact]]:
    """Yield (E.164 number, contact) per client call in a CDR file.

    `rules` say what the rows mean; `managers` (endpoint -> manager id, with
    `inbound_contexts`) is the short form where everyone is a manager. Consecutive rows of
    one call (same linkedid, else same uniqueid) yield one contact. Start times are read in
    `cdr_timezone` (UTC: cdr.conf's `usegmtime=yes`).
    """
    if rules is None:
        rules = LearningRules(people=managers or {}, inbound_contexts=inbound_contexts,
                              region=default_region)
    report = report if report is not None else CdrReport()
    reader = csv.reader(lines)
    group: list[CdrRow] = []
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
            parsed = parse_row(row, cdr_timezone)
        except ValueError as e:
            report.add_bad(reader.line_num, str(e))
            continue
        if group and not _same_call(group[0], parsed):
            if (item := _learn(group, rules, report)) is not None:
                yield item
            group = []
        group.append(parsed)
    if group and (item := _learn(group, rules, report)) is not None:
        yield item


def _same_call(first: CdrRow, row: CdrRow) -> bool:
    """Consecutive rows of one call: same linkedid; without one (Master.csv), same uniqueid
    and so the same party A channel (rows that disagree there are separate calls)."""
    if first.linkedid or row.linkedid:
        return first.linkedid == row.linkedid
    return bool(row.uniqueid) and row.uniqueid == first.uniqueid and row.channel == first.channel


def _learn(rows: list[CdrRow], rules: LearningRules, report: CdrReport) -> tuple[str, Contact] | None:
    """learn_call, counted: every row is one of inbound/outbound/skipped/merged."""
    learned = learn_call(rows, rules)
    if learned is None:
        report.skipped += len(rows)
        return None
    if learned[1].direction is Direction.INBOUND:
        report.inbound += 1
    else:
        report.outbound += 1
    report.merged += len(rows) - 1
    return learned


async def import_cdr_file(
    path: Path,
    store: HistoryStore,
    *,
    managers: Mapping[str, str] | None = None,
    rules: LearningRules | None = None,
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
        for item in parse_cdr_rows(f, managers=managers, rules=rules,
                                   inbound_contexts=inbound_contexts,
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
