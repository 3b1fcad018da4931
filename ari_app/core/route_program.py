"""A decided route as the plain dialplan walks it: one line, one `SET VARIABLE`.

Design: the FastAGI front answers each call with ONE variable, CASELINE_ROUTE, that holds
the whole route, IVR menus included; `dialplan/caseline-agi.conf` loops over it with CUT
and follows each step's busy / no-answer / unavailable index by itself. One round trip per
decision, whatever the route: no second request after a busy manager or a menu choice (the
alternative, asking Caseline for the next step after each DIALSTATUS, costs a connection
per step and puts Caseline on the call's path until the end). The only other request is
`callback`, and only when a callback step is reached: the request is filed server-side.

    CASELINE_ROUTE = <status>:<priority>:<moh class>:<busy check 1|0> | step 0 | step 1 | ...

    m:<endpoint>:<ring s>:<on busy>:<on no answer>:<on unavailable>   ring a person
    q:<queue>                     the queue, with QUEUE_PRIO = priority (terminal)
    p:<sound>                     play, then the next step
    i:<prompt>:<invalid prompt>:<wait s>:<tries>:<max digits>:<digits>=<step>/...:<on timeout>
    v:<mailbox>                   voicemail (terminal)
    c:<sound>                     file a callback request, play <sound>, hang up (terminal)
    x                             hang up (terminal)

e.g. "ok:70::1|m:PJSIP/mgr1:30:1:1:1|m:PJSIP/sup1:20:2:2:2|q:operators". Step numbers are
indexes in the list. An IVR option's route is placed after the menu (breadth first, each
menu and depth once), so the menu needs no second request either. Every name is of the one
character set the dialplan's REGEX accepts (core/dialplan.py); a name that is not (a
broken endpoint_of) is left empty, and the dialplan treats it as unavailable / operators.
The dialplan never executes anything that came from the caller.
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ari_app.core import dialplan
from ari_app.core.decide import route_for_target
from ari_app.core.models import CallerProfile, Decision, RouteStep, StepKind
from ari_app.core.policy import IvrMenu, Policy

MAX_IVR_DEPTH = 3  # as stasis/execute.py: an option's menu's option's menu, then operators
# Asterisk 22 reads an AGI command line of up to 8 KB (res_agi.c AGI_BUF_LEN); the dialplan
# CUTs fields out of it in 4 KB buffers. Beyond this, deeper menus become the operators.
MAX_ROUTE_BYTES = 2000
STATUSES = ("ok", "fallback", "shed")
KIND_CODE = {StepKind.MANAGER: "m", StepKind.SUPERVISOR: "m", StepKind.QUEUE: "q",
             StepKind.PLAYBACK: "p", StepKind.IVR: "i", StepKind.VOICEMAIL: "v",
             StepKind.CALLBACK: "c", StepKind.HANGUP: "x"}

_NAME = re.compile(dialplan.NAME, re.ASCII)
_ENDPOINT = re.compile(dialplan.ENDPOINT, re.ASCII)
_MAILBOX = re.compile(dialplan.MAILBOX, re.ASCII)
_SOUND = re.compile(dialplan.SOUND, re.ASCII)
_DIGITS = re.compile(r"[0-9*#]{1,4}", re.ASCII)

EndpointOf = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Menu:
    prompt: str
    invalid_prompt: str
    wait_s: int
    tries: int  # the prompt is played at most this often (retries + 1)
    options: tuple[tuple[str, int], ...] = ()  # digits -> step index
    on_timeout: int | None = None


@dataclass(frozen=True, slots=True)
class ProgramStep:
    kind: StepKind
    label: str  # as the decision log names it: person id, queue, sound, menu id, mailbox
    target: str = ""  # what the dialplan uses; "" when unusable
    ring_s: int = 0
    on_busy: int | None = None
    on_no_answer: int | None = None
    on_unavailable: int | None = None
    menu: Menu | None = None


@dataclass(frozen=True)
class RouteProgram:
    status: str  # ok | fallback (no decision) | shed (admission control)
    priority: int
    steps: tuple[ProgramStep, ...]
    moh: str = ""  # Dial's music on hold while a person rings; "" = ringing
    busy_check: bool = True  # skip a person whose phone is in use (one call per person)

    def encode(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:  # measured once: compile_route checks the size, the server sends it
        head = f"{self.status}:{max(0, min(100, int(self.priority)))}:{self.moh}:{int(self.busy_check)}"
        return "|".join([head, *(_encode(step) for step in self.steps)])


def operators(status: str, priority: int, queue: str = dialplan.DEFAULT_QUEUE) -> RouteProgram:
    """No decision (fallback) or no time for one (shed): the queue, with a priority."""
    name = queue if _NAME.fullmatch(queue) else ""
    return RouteProgram(status, priority, (ProgramStep(StepKind.QUEUE, queue, name),))


def compile_route(decision: Decision, profile: CallerProfile, *, endpoint_of: EndpointOf,
                  policy: Policy | None = None, busy_check: bool = True) -> RouteProgram:
    """The program for a decision, with the IVR menus of `policy` (without one, a menu
    step leads to the operators). Deeper menus are cut, then the whole route, to keep the
    line within MAX_ROUTE_BYTES."""
    moh = ""
    if policy is not None and policy.defaults.ringback == "moh" and _NAME.fullmatch(policy.defaults.moh_class):
        moh = policy.defaults.moh_class
    for depth in range(MAX_IVR_DEPTH, -1, -1):
        steps = _Builder(endpoint_of, policy, profile, depth).build(decision.route)
        program = RouteProgram("ok", decision.priority, steps, moh, busy_check)
        if len(program.encode()) <= MAX_ROUTE_BYTES:
            return program
    return operators("fallback", decision.priority, _default_queue(policy))


@dataclass
class _Builder:
    endpoint_of: EndpointOf
    policy: Policy | None
    profile: CallerProfile
    max_depth: int
    steps: list[ProgramStep] = field(default_factory=list)
    pending: deque[tuple[int, str, int]] = field(default_factory=deque)  # (step, menu, depth)
    menus: dict[tuple[str, int], Menu] = field(default_factory=dict)

    def build(self, route: Sequence[RouteStep]) -> tuple[ProgramStep, ...]:
        self.place(route, 0)
        while self.pending:
            index, menu_id, depth = self.pending.popleft()
            key = (menu_id, depth)
            if key not in self.menus:
                self.menus[key] = self.menu(menu_id, depth)
            self.steps[index] = ProgramStep(StepKind.IVR, menu_id, menu_id, menu=self.menus[key])
        return tuple(self.steps)

    def place(self, route: Sequence[RouteStep], depth: int) -> int:
        base = len(self.steps)

        def at(index: int | None) -> int | None:
            return None if index is None else base + index

        for step in route:
            if step.kind in (StepKind.MANAGER, StepKind.SUPERVISOR):
                endpoint = self.endpoint_of(step.target) or ""
                self.steps.append(ProgramStep(
                    step.kind, step.target, endpoint if _ENDPOINT.fullmatch(endpoint) else "",
                    max(1, min(120, int(step.ring_timeout_s or 20))),
                    at(step.on_busy), at(step.on_no_answer), at(step.on_unavailable)))
            elif step.kind is StepKind.IVR:
                menu = self.policy.ivr.get(step.target) if self.policy is not None else None
                if menu is None or depth >= self.max_depth:
                    queue = _default_queue(self.policy)
                    self.steps.append(ProgramStep(StepKind.QUEUE, queue, _name(queue)))
                else:
                    self.pending.append((len(self.steps), step.target, depth))
                    self.steps.append(ProgramStep(StepKind.IVR, step.target))  # filled in build()
            else:
                self.steps.append(self.simple(step))
        return base

    def simple(self, step: RouteStep) -> ProgramStep:
        policy, target = self.policy, step.target
        if step.kind is StepKind.QUEUE:
            return ProgramStep(step.kind, target, _name(target))
        if step.kind is StepKind.PLAYBACK:
            sound = policy.recordings.get(target, target) if policy is not None else target
            return ProgramStep(step.kind, target, sound if _SOUND.fullmatch(sound) else "")
        if step.kind is StepKind.VOICEMAIL:
            box = policy.voicemail.get(target, target) if policy is not None else target
            return ProgramStep(step.kind, box, box if _MAILBOX.fullmatch(box) else "")
        if step.kind is StepKind.CALLBACK:
            return ProgramStep(step.kind, "callback", target if _SOUND.fullmatch(target) else "")
        return ProgramStep(StepKind.HANGUP, "hangup")

    def menu(self, menu_id: str, depth: int) -> Menu:
        assert self.policy is not None
        menu: IvrMenu = self.policy.ivr[menu_id]
        options = tuple((digits, self.place(route_for_target(self.policy, targets, self.profile), depth + 1))
                        for digits, targets in menu.options.items() if _DIGITS.fullmatch(digits))
        on_timeout = self.place(route_for_target(self.policy, menu.on_timeout, self.profile), depth + 1)
        return Menu(_sound(menu.prompt), _sound(menu.invalid_prompt), menu.timeout_s,
                    menu.retries + 1, options, on_timeout)


def _default_queue(policy: Policy | None) -> str:
    """Where the executor sends a caller it cannot route further (stasis/execute.to_queue)."""
    if policy is not None and dialplan.DEFAULT_QUEUE in policy.queues:
        return policy.queues[dialplan.DEFAULT_QUEUE].asterisk_queue
    return dialplan.DEFAULT_QUEUE


def _name(value: str) -> str:
    return value if _NAME.fullmatch(value) else ""


def _sound(value: str) -> str:
    return value if _SOUND.fullmatch(value) else ""


def _index(value: int | None) -> str:
    return "" if value is None else str(value)


def _encode(step: ProgramStep) -> str:
    code = KIND_CODE[step.kind]
    if step.kind in (StepKind.MANAGER, StepKind.SUPERVISOR):
        return ":".join((code, step.target, str(step.ring_s), _index(step.on_busy),
                         _index(step.on_no_answer), _index(step.on_unavailable)))
    if step.kind is StepKind.IVR:
        menu = step.menu
        assert menu is not None
        longest = max((len(d) for d, _ in menu.options), default=1)
        options = "/".join(f"{digits}={index}" for digits, index in menu.options)
        return ":".join((code, menu.prompt, menu.invalid_prompt, str(menu.wait_s), str(menu.tries),
                         str(longest), options, _index(menu.on_timeout)))
    if step.kind is StepKind.HANGUP:
        return code
    return f"{code}:{step.target}"
