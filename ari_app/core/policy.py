"""Typed model of config/routing.yaml. Reference: docs/routing.md.

Field checks live here (pydantic); checks across sections (does `manager:mgr9` exist?)
live in loader.py. The loaded Policy is immutable and shared by every call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    field_validator,
    model_validator,
)

from ari_app.core import dialplan
from ari_app.core.learning import Role
from ari_app.core.public_holidays import holiday_name

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Id = Annotated[str, Field(pattern=_ID_RE.pattern)]
# Names the dialplan receives: one character set, the dialplan's (core/dialplan.py).
# Asterisk sound name, no extension, no "..": "demo-thanks", "custom/closed".
Sound = Annotated[str, Field(pattern=f"^{dialplan.SOUND}$", max_length=128)]
Endpoint = Annotated[str, Field(pattern=f"^{dialplan.ENDPOINT}$", max_length=128)]  # "PJSIP/mgr_1"
Mailbox = Annotated[str, Field(pattern=f"^{dialplan.MAILBOX}$", max_length=64)]  # "1000@sales-dept"
AsteriskName = Annotated[str, Field(pattern=f"^{dialplan.NAME}$", max_length=64)]  # a queue, a MOH class
Digits = Annotated[str, Field(pattern=r"^[0-9*#]{1,4}$")]
Priority = Annotated[int, Field(ge=0, le=100)]  # Asterisk QUEUE_PRIO: higher is served first
Boost = Annotated[int, Field(ge=-100, le=100)]
RingTimeout = Annotated[int, Field(ge=1, le=120)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]  # ISO 3166-1 alpha-2
Abc = Literal["A", "B", "C"]


class RefKind(StrEnum):
    HOLDER = "holder"  # the case holder (CRM responsible > directory > history)
    HISTORY_OWNER = "history_owner"  # who handled this number last time (PBX history)
    MANAGER = "manager"
    SUPERVISOR = "supervisor"
    QUEUE = "queue"
    IVR = "ivr"
    VOICEMAIL = "voicemail"
    HANGUP = "hangup"
    # file a callback request, play the recording `id` if given, hang up; resolves only for a
    # caller with a number, so it is a rule's or an IVR option's alternative, never a fallback
    CALLBACK = "callback"


DYNAMIC_REFS = frozenset({RefKind.HOLDER, RefKind.HISTORY_OWNER})
# may not resolve for a caller (no case holder, no number): the next alternative is tried
CONDITIONAL_REFS = DYNAMIC_REFS | {RefKind.CALLBACK}
TERMINAL_REFS = frozenset({RefKind.QUEUE, RefKind.IVR, RefKind.VOICEMAIL, RefKind.HANGUP})


@dataclass(frozen=True, slots=True)
class Ref:
    """A routing target written as "kind:id" ("queue:operators") or a bare kind ("holder")."""

    kind: RefKind
    id: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else str(self.kind)


def parse_ref(value: object) -> Ref:
    if isinstance(value, Ref):
        return value
    if not isinstance(value, str):
        raise ValueError("a target is a string such as 'queue:operators' or 'holder'")
    kind_s, sep, ident = value.strip().partition(":")
    try:
        kind = RefKind(kind_s)
    except ValueError:
        raise ValueError(f"unknown target kind {kind_s!r}; use one of: {', '.join(RefKind)}") from None
    if kind in DYNAMIC_REFS or kind is RefKind.HANGUP:
        if sep:
            raise ValueError(f"'{kind}' takes no ':id'")
        return Ref(kind)
    if kind is RefKind.CALLBACK and not sep:
        return Ref(kind)  # "callback": no confirmation recording; "callback:<recording>"
    if not _ID_RE.match(ident):
        raise ValueError(f"'{kind}' needs an id, e.g. '{kind}:name'")
    return Ref(kind, ident)


TargetRef = Annotated[Ref, PlainValidator(parse_ref), PlainSerializer(str)]
# One target or a list of alternatives: the first that resolves wins.
Targets = Annotated[
    tuple[TargetRef, ...],
    BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
    Field(min_length=1, max_length=8),
]


@dataclass(frozen=True, slots=True)
class Span:
    """A time-of-day range "HH:MM-HH:MM" in minutes from midnight; `end` may be 24:00."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    def contains(self, minute: int) -> bool:
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end  # wraps midnight (night ranges)


def _parse_span(value: object, *, wrap: bool) -> Span:
    if isinstance(value, Span):
        return value
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value) if isinstance(value, str) else None
    if not m:
        raise ValueError("expected 'HH:MM-HH:MM'")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError("hour 0..23 (24:00 allowed as an end), minute 0..59")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end or (not wrap and start > end):
        raise ValueError("start must be before end" + ("" if wrap else " (split overnight ranges across days)"))
    return Span(start, end)


DaySpan = Annotated[Span, PlainValidator(lambda v: _parse_span(v, wrap=False)), PlainSerializer(str)]
NightSpan = Annotated[Span, PlainValidator(lambda v: _parse_span(v, wrap=True)), PlainSerializer(str)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Model):
    endpoint: Endpoint  # e.g. "PJSIP/mgr1"
    name: str = ""


class People(_Model):
    managers: dict[Id, Person] = {}
    supervisors: dict[Id, Person] = {}
    # queue members: never a route target, but known, so a call they talked is learned
    operators: dict[Id, Person] = {}

    def roles(self) -> dict[str, Role]:
        """person id -> role, for learning who holds a case."""
        return {**{pid: Role.OPERATOR for pid in self.operators},
                **{pid: Role.SUPERVISOR for pid in self.supervisors},
                **{pid: Role.MANAGER for pid in self.managers}}

    def by_endpoint(self) -> dict[str, str]:
        """endpoint resource ("mgr1" of "PJSIP/mgr1") -> person id, everyone included."""
        return {person.endpoint.partition("/")[2]: pid
                for group in (self.operators, self.supervisors, self.managers)
                for pid, person in group.items()}


class Queue(_Model):
    asterisk_queue: AsteriskName  # the name in queues.conf
    name: str = ""


class IvrMenu(_Model):
    prompt: Sound
    invalid_prompt: Sound = "pbx-invalid"
    timeout_s: int = Field(5, ge=1, le=60)  # wait for a digit after the prompt
    retries: int = Field(2, ge=0, le=10)  # replays after no input / invalid input
    options: dict[Digits, Targets] = Field(min_length=1)
    on_timeout: Targets = (Ref(RefKind.HANGUP),)  # after the retries are used up


class Company(_Model):
    name: str = ""
    timezone: str
    country: Country | None = None  # where the company is: whose public holidays close it
    # shown to clients we call back (E.164); unset: the trunk's own caller ID
    caller_id: str | None = Field(None, pattern=r"^\+[1-9][0-9]{6,14}$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except Exception:  # ZoneInfoNotFoundError, ValueError for odd strings
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v


class AfterHours(_Model):
    action: Literal["ivr", "voicemail", "callback_request"]
    intro: Id | None = None  # recording played first (required for callback_request)
    ivr_menu: Id | None = None  # for action ivr
    mailbox: Id | None = None  # for action voicemail


class Hours(_Model):
    enabled: bool = True  # false: always open
    mon: tuple[DaySpan, ...] = ()
    tue: tuple[DaySpan, ...] = ()
    wed: tuple[DaySpan, ...] = ()
    thu: tuple[DaySpan, ...] = ()
    fri: tuple[DaySpan, ...] = ()
    sat: tuple[DaySpan, ...] = ()
    sun: tuple[DaySpan, ...] = ()
    # public holidays (the `holidays` package) of this country; default company.country;
    # "none": only the dates below
    country: Country | Literal["none"] | None = None
    subdivision: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,8}$")  # regional holidays
    holidays: tuple[date, ...] = ()  # our own closed days, on top of the public holidays
    working_days: tuple[date, ...] = ()  # public holidays on which we work anyway
    after_hours: AfterHours

    def spans(self, weekday: int) -> tuple[Span, ...]:
        return (self.mon, self.tue, self.wed, self.thu, self.fri, self.sat, self.sun)[weekday]


class PriorityTable(_Model):
    """Base priority by client segment: ABC category if known, else history class."""

    A: Priority
    B: Priority
    C: Priority
    new: Priority
    old: Priority  # old, repeat and callback callers without a category
    unknown: Priority  # unidentified caller or history unreachable


class Strategy(_Model):
    """Which callers go first (mission.md): expansion serves the new callers the company paid
    to attract first; retention the valuable clients it already has."""

    mode: Literal["expansion", "retention"]
    expansion: PriorityTable
    retention: PriorityTable

    @field_validator("expansion")
    @classmethod
    def _new_first(cls, t: PriorityTable) -> PriorityTable:
        above = [k for k in ("A", "B", "C", "old") if getattr(t, k) > t.new]
        if above:
            raise ValueError(f"{', '.join(above)} above new ({t.new}): expansion mode serves new callers first")
        return t

    @field_validator("retention")
    @classmethod
    def _valuable_first(cls, t: PriorityTable) -> PriorityTable:
        below = [k for k in ("A", "B", "old") if getattr(t, k) < t.new]
        if below:
            raise ValueError(f"new ({t.new}) above {', '.join(below)}: retention mode serves "
                             "valuable existing clients first")
        return t

    @property
    def table(self) -> PriorityTable:
        return self.expansion if self.mode == "expansion" else self.retention


Action = Literal["step_down", "escalate"]


class Chain(_Model):
    """What follows a person who is busy / does not answer / is unreachable."""

    on_busy: Action = "step_down"
    on_no_answer: Action = "step_down"
    on_unavailable: Action = "step_down"
    escalate_to: TargetRef | None = None  # manager:<id> or supervisor:<id>
    escalate_ring_timeout_s: RingTimeout = 20
    step_down_to: TargetRef  # terminal: queue / ivr / voicemail / hangup

    @property
    def escalates(self) -> bool:
        return "escalate" in (self.on_busy, self.on_no_answer, self.on_unavailable)


class Vip(_Model):
    """What the CRM's `vip` flag means: a VIP is served at least as `serve_as` (that
    category's rule, fallback chain and base priority) and gets `boost` on its base priority
    (unless `client_status` lists its status)."""

    serve_as: Abc | None = "A"  # null: a VIP keeps its own category
    boost: Boost = 0  # added to a VIP's base priority (not to a rule's fixed `priority`)


def _status_names(statuses: dict[str, Abc]) -> dict[str, Abc]:
    """Keys as decide compares them: CRMs differ in case and padding ("Blocked ")."""
    out: dict[str, Abc] = {}
    for name, abc in statuses.items():
        key = name.strip().casefold()
        if not key:
            raise ValueError("a blank status")
        if key in out:
            raise ValueError(f"{name!r} is listed twice (statuses are compared without case)")
        out[key] = abc
    return out


# The CRM's client status -> the best category a client with it is served as (a cap).
ClientStatus = Annotated[dict[Annotated[str, Field(max_length=64)], Abc], AfterValidator(_status_names)]


class ChainByValue(_Model):
    A: Id
    B: Id
    C: Id
    unknown: Id


class Rule(_Model):
    enabled: bool = True
    target: Targets
    intro: Id | None = None  # recording played before the target
    priority: Priority | None = None  # absolute; else strategy base + boost
    boost: Boost = 0
    ring_timeout_s: RingTimeout | None = None  # default: defaults.ring_timeout_s
    chain: Id | None = None  # default: chain_by_value[segment]

    @model_validator(mode="after")
    def _priority_or_boost(self) -> Rule:
        if self.priority is not None and self.boost:
            raise ValueError("set either priority (absolute) or boost (relative), not both")
        return self


class RepeatRule(Rule):
    boost_if_previous_missed: Boost = 0  # used instead of boost when we missed the previous call


class NightRule(Rule):
    night: NightSpan  # the caller's local time, may wrap midnight: "23:00-06:00"
    min_offset_diff_h: float = Field(4, ge=0, le=26)  # |caller UTC offset - company's|
    overrides_after_hours: bool = True
    closed_chain: Id | None = None  # chain used when the company is closed


class ContextRules(_Model):
    claim: Rule | None = None
    delivery_today: Rule | None = None


class CallbackRules(_Model):
    missed: Rule | None = None
    after_talk: Rule | None = None


class AbcRules(_Model):
    A: Rule | None = None
    B: Rule | None = None
    C: Rule | None = None


class ClassRules(_Model):
    old: Rule | None = None
    new: Rule | None = None


class Rules(_Model):
    night_far_tz: NightRule | None = None
    context: ContextRules = ContextRules()
    callback: CallbackRules = CallbackRules()
    repeat: RepeatRule | None = None
    abc: AbcRules = AbcRules()
    classes: ClassRules = ClassRules()


class Defaults(_Model):
    target: TargetRef  # terminal; the safe default and the fall-through of person targets
    ring_timeout_s: RingTimeout = 25
    ringback: Literal["ring", "moh"] = "ring"  # what the caller hears while a person rings
    moh_class: AsteriskName = "default"


class Policy(_Model):
    version: Literal[1] = 1
    company: Company
    people: People
    queues: dict[Id, Queue] = Field(min_length=1)
    recordings: dict[Id, Sound] = {}
    voicemail: dict[Id, Mailbox] = {}
    ivr: dict[Id, IvrMenu] = {}
    hours: Hours
    strategy: Strategy
    vip: Vip = Vip()
    client_status: ClientStatus = {}
    chains: dict[Id, Chain] = Field(min_length=1)
    chain_by_value: ChainByValue
    rules: Rules = Rules()
    defaults: Defaults

    # --- lookups for decide() and the executor -------------------------------------
    @property
    def holiday_country(self) -> str | None:
        """The country whose public holidays close the company (hours.country, else
        company.country), or None."""
        country = self.hours.country or self.company.country
        return None if country == "none" else country

    def public_holiday(self, day: date) -> str | None:
        """The public holiday's name when `day` is one the company keeps (not in
        hours.working_days), else None."""
        country = self.holiday_country
        if country is None or day in self.hours.working_days:
            return None
        return holiday_name(country, self.hours.subdivision, day)

    def person(self, person_id: str) -> tuple[str, Person] | None:
        """("manager" | "supervisor", Person) for a known id, else None."""
        if person_id in self.people.managers:
            return "manager", self.people.managers[person_id]
        if person_id in self.people.supervisors:
            return "supervisor", self.people.supervisors[person_id]
        return None

    def endpoint_of(self, person_id: str) -> str:
        """Dial string of a manager or supervisor ("PJSIP/mgr1"); KeyError if unknown."""
        found = self.person(person_id)
        if found is None:
            raise KeyError(person_id)
        return found[1].endpoint

    def asterisk_queue_of(self, queue_id: str) -> str:
        return self.queues[queue_id].asterisk_queue

    def sound_of(self, recording_id: str) -> str:
        return self.recordings[recording_id]

    def mailbox_of(self, box_id: str) -> str:
        return self.voicemail[box_id]
