"""Value types shared by the pure core: what `identify` produces and `decide` consumes.

Everything here is immutable and free of I/O so that the core can be tested with tables
and hypothesis, and so that the ARI app and the FastAGI front give the same answers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class HistoryClass(StrEnum):
    """The caller's class from the PBX's own history (precedence callback > repeat > old > new)."""

    CALLBACK = "callback"
    REPEAT = "repeat"
    OLD = "old"
    NEW = "new"


class CallbackKind(StrEnum):
    MISSED = "missed"  # our manager called and the client did not answer
    AFTER_TALK = "after_talk"  # our manager called, they talked, the client calls back


class Direction(StrEnum):
    INBOUND = "in"  # the client called us
    OUTBOUND = "out"  # one of our managers called the client


@dataclass(frozen=True, slots=True)
class Talk:
    """One of our people talking with the client during a call."""

    person: str  # a person id from routing.yaml's `people`
    seconds: int


@dataclass(frozen=True, slots=True)
class Contact:
    """One call between a client number and the company, as kept in history."""

    at: datetime  # start of the call, timezone-aware UTC
    direction: Direction
    answered: bool
    # inbound: the case holder learned from this call (core/learning.py), outbound: who called
    manager: str | None = None
    duration_s: int = 0
    talks: tuple[Talk, ...] = ()  # inbound: everyone who talked with the client, in order


class SourceStatus(StrEnum):
    """How a source answered; anything but OK means the decision ran degraded."""

    OK = "ok"
    UNKNOWN = "unknown"  # the source answered: it does not know this number
    UNAVAILABLE = "unavailable"  # the source could not be reached (Redis down, ...)
    TIMEOUT = "timeout"  # over the per-call budget
    ERROR = "error"  # the source answered with an error
    MALFORMED = "malformed"  # the source answered something we cannot read
    BREAKER_OPEN = "breaker_open"  # we stopped asking after repeated failures
    SKIPPED = "skipped"  # nothing to ask (unidentified caller, source disabled)


@dataclass(frozen=True, slots=True)
class HistoryFacts:
    """The history half of a profile."""

    status: SourceStatus = SourceStatus.SKIPPED
    cls: HistoryClass = HistoryClass.NEW
    callback_kind: CallbackKind | None = None
    previous_missed: bool | None = None  # for `repeat`: was the previous inbound call missed
    owner: str | None = None  # the case holder from history
    last_contact_at: datetime | None = None
    owner_contact: Contact | None = None  # the call that taught `owner` (explain tells it)


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """What a CRM says about a client. Unknown numbers have no record.

    What each field means to decide: docs/routing.md, "What decide reads from the CRM".
    """

    client_id: str
    name: str = ""
    status: str = ""  # routing.yaml's `client_status` may cap the category by it
    abc: str | None = None  # "A", "B" or "C"
    responsible: str | None = None  # our manager id
    open_deals: int = 0  # open deals or orders: an active client, never a `new` one
    open_orders: int = 0
    open_claims: int = 0
    delivery_today: bool = False
    vip: bool = False
    # the CRM's free-form display data: decide is never given it (identify.decide_input)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def most_urgent(self) -> str | None:
        """The most urgent open case, "claim" > "order" > "deal", or None: derived from the
        counts (explain shows it), not an input of its own. A claim is a client we are
        failing; an order is money in flight; a deal is potential."""
        if self.open_claims > 0:
            return "claim"
        if self.open_orders > 0:
            return "order"
        return "deal" if self.open_deals > 0 else None


@dataclass(frozen=True, slots=True)
class CrmFacts:
    status: SourceStatus = SourceStatus.SKIPPED
    record: CrmRecord | None = None
    detail: str = ""  # why, for degraded statuses (never contains secrets)


@dataclass(frozen=True, slots=True)
class LegalEntity:
    """A number or prefix that a directory maps to a parent company."""

    company: str
    manager: str | None = None
    abc: str | None = None
    id: str | None = None  # the company's id (what the CRM is asked for), if the directory gives one
    parent: str | None = None  # the parent company's name, if the directory names one
    parent_id: str | None = None  # the parent company's id

    @property
    def crm_company(self) -> str | None:
        """The company whose CRM record a call from this entity counts as: the parent, else
        the company itself."""
        return self.parent_id or self.id


@dataclass(frozen=True, slots=True)
class EnvironmentFacts:
    """What the number itself says: country, region, time zone, carrier, directories."""

    country: str | None = None  # ISO 3166 alpha-2
    region: str | None = None
    timezone: str | None = None  # IANA name
    carrier: str | None = None
    utc_offset_hours: float | None = None
    legal_entity: LegalEntity | None = None
    timezone_source: str | None = None  # "numbering_plan" | "phonenumbers" | None (no zone)


@dataclass(frozen=True, slots=True)
class CallerProfile:
    """One caller, as the three sources see them. `number` is E.164 or None (unidentified)."""

    number: str | None
    history: HistoryFacts = HistoryFacts()
    crm: CrmFacts = CrmFacts()
    environment: EnvironmentFacts = EnvironmentFacts()

    @property
    def case_holder(self) -> str | None:
        """The manager holding this client's case: CRM responsible, else directory, else history."""
        if self.history.cls is HistoryClass.CALLBACK and self.history.owner:
            return self.history.owner
        if self.crm.record and self.crm.record.responsible:
            return self.crm.record.responsible
        if self.environment.legal_entity and self.environment.legal_entity.manager:
            return self.environment.legal_entity.manager
        return self.history.owner

    @property
    def case_holder_source(self) -> str:
        """Which source gave `case_holder` (same precedence):
        "callback" | "crm" | "directory" | "history" | "none"."""
        if self.history.cls is HistoryClass.CALLBACK and self.history.owner:
            return "callback"
        if self.crm.record and self.crm.record.responsible:
            return "crm"
        if self.environment.legal_entity and self.environment.legal_entity.manager:
            return "directory"
        return "history" if self.history.owner else "none"

    @property
    def abc(self) -> str | None:
        if self.crm.record and self.crm.record.abc:
            return self.crm.record.abc
        if self.environment.legal_entity:
            return self.environment.legal_entity.abc
        return None


class Service(StrEnum):
    MANAGER = "manager"
    OPERATOR = "operator"
    SELF_SERVICE = "self_service"
    IVR = "ivr"


class StepKind(StrEnum):
    MANAGER = "manager"  # ring one manager's endpoint
    SUPERVISOR = "supervisor"  # ring the supervisor's endpoint
    QUEUE = "queue"  # continue into an Asterisk queue (terminal)
    IVR = "ivr"  # play the IVR menu (terminal: the menu decides what follows)
    PLAYBACK = "playback"  # play a recording, then go on to the next step
    VOICEMAIL = "voicemail"  # leave a message (terminal)
    HANGUP = "hangup"  # terminal
    # file a callback request for the caller, play `target` (a sound, may be ""), hang up
    CALLBACK = "callback"  # terminal


TERMINAL_KINDS = frozenset({StepKind.QUEUE, StepKind.IVR, StepKind.VOICEMAIL, StepKind.HANGUP,
                            StepKind.CALLBACK})


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One step of a route.

    `on_busy`, `on_no_answer` and `on_unavailable` are indexes of later steps in the same
    route (strictly greater than this step's index), or None for terminal steps. That makes
    every route finite by construction.
    """

    kind: StepKind
    target: str  # endpoint or manager id, queue name, menu id, sound name
    ring_timeout_s: int = 0
    on_busy: int | None = None
    on_no_answer: int | None = None
    on_unavailable: int | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str  # rule id from routing.yaml, or a built-in id such as "history.unavailable"
    text: str  # readable by ops staff


@dataclass(frozen=True, slots=True)
class Decision:
    service: Service
    priority: int  # Asterisk QUEUE_PRIO scale: higher is answered first, 0 is normal
    route: tuple[RouteStep, ...]
    reasons: tuple[Reason, ...]
    callback_request: bool = False  # the route ends in a callback step: a request is filed for the caller
    rule: str = ""  # the rule that decided ("abc.A", "hours.after_hours", "default"): a request's reason


class DialResult(StrEnum):
    """How ringing one person ended; the route's on_busy / on_no_answer / on_unavailable follow."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNAVAILABLE = "unavailable"
    # the person answered and transferred the caller, the target never answered and the
    # transferrer is gone: the route goes on as after no answer (the client is not lost)
    TRANSFER_FAILED = "transfer_failed"


class OutcomeResult(StrEnum):
    """Where a call ended up."""

    UNKNOWN = "unknown"  # not decided yet
    ANSWERED = "answered"  # a person answered and talked (bridged by Caseline)
    QUEUE = "queue"  # handed to an Asterisk queue (the queue's CDR says who answered)
    VOICEMAIL = "voicemail"
    HANGUP = "hangup"  # the route said hang up
    CALLBACK = "callback"  # a callback request was filed, then the caller was hung up
    CALLER_HUNG_UP = "caller_hung_up"  # the caller left before anyone answered
    DIALPLAN = "dialplan"  # an internal error: handed to the dialplan's operators' queue
    INTERRUPTED = "interrupted"  # Caseline stopped (a replacing instance adopts the call)


@dataclass(slots=True)
class Outcome:
    """What happened to one call; filled in by the executor step by step."""

    result: OutcomeResult = OutcomeResult.UNKNOWN
    answered_by: str | None = None
    talk_s: int = 0
    steps: list[str] = field(default_factory=list)  # "mgr1:busy", "queue:operators", ...
    fallbacks: list[DialResult] = field(default_factory=list)  # why the route moved on
