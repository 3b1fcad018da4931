"""What the FastAGI front writes into the channel: CASELINE_* variables from a decision.

The dialplan interpolates these values into application arguments (`Dial(${CASELINE_TARGET},...)`),
so every value is reduced to a small whitelist before it leaves Python: no quotes,
backslashes, commas, `$`, braces or brackets can reach Asterisk's parser.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from ari_app.core.admission import ShedTarget
from ari_app.core.dialplan import DEFAULT_QUEUE
from ari_app.core.models import TERMINAL_KINDS, CallerProfile, Decision, StepKind

MAX_VALUE = 200
MAX_CALLER_ID = 64
FALLBACK_QUEUE = DEFAULT_QUEUE

_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_+:|./@ -]", re.ASCII)
_ENDPOINT_RE = re.compile(r"PJSIP/[A-Za-z0-9_-]{1,64}", re.ASCII)
_SOUND_RE = re.compile(r"[a-z0-9_-]{1,64}(?:/[a-z0-9_-]{1,64}){0,3}", re.ASCII)
_CALLER_ID_RE = re.compile(r"[A-Za-z0-9+*#() .-]{1,64}", re.ASCII)
_CALL_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)

# Fixed order; CASELINE_STATUS is written last so a session cut half-way reads as failed.
NAMES = (
    "CASELINE_CLASS", "CASELINE_CALLBACK_KIND", "CASELINE_OWNER", "CASELINE_SERVICE",
    "CASELINE_PRIORITY", "CASELINE_TARGET", "CASELINE_RING_TIMEOUT", "CASELINE_ROUTE",
    "CASELINE_QUEUE", "CASELINE_PLAYBACK", "CASELINE_STATUS",
)


def clean(value: object, limit: int = MAX_VALUE) -> str:
    """A value safe inside `SET VARIABLE NAME "value"` and in dialplan arguments.

    >>> clean('mgr1", ${EVIL}[x]\\n')
    'mgr1 EVILx'
    """
    text = "" if value is None else str(value)
    return _UNSAFE_RE.sub("", text[: limit * 4])[:limit].strip()


def set_variable_command(name: str, value: object) -> str:
    """`SET VARIABLE NAME "value"` with the value cleaned (names are our constants)."""
    if name not in NAMES:
        raise ValueError(f"not a Caseline variable: {name}")
    return f'SET VARIABLE {name} "{clean(value)}"'


def sanitize_caller_id(raw: str | None) -> str | None:
    """The caller ID as Asterisk sent it, or None if withheld or not plausibly a number.

    `agi_callerid` is whatever the remote party put in its SIP From header.
    """
    if raw is None:
        return None
    raw = raw.strip()
    if raw.lower() in ("", "unknown", "anonymous", "restricted") or not _CALLER_ID_RE.fullmatch(raw):
        return None
    return raw


def sanitize_call_id(raw: str | None) -> str | None:
    """`agi_uniqueid` ("1718000000.42"), or None if absent or odd."""
    if raw is None or not _CALL_ID_RE.fullmatch(raw):
        return None
    return raw


def compact_route(decision: Decision, limit: int = MAX_VALUE) -> str:
    """"manager:mgr1:20|supervisor:sup1:15|queue:operators", cut at a step boundary."""
    parts: list[str] = []
    size = 0
    for step in decision.route:
        part = f"{step.kind.value}:{clean(step.target, 64)}"
        if step.ring_timeout_s:
            part += f":{int(step.ring_timeout_s)}"
        if size + len(part) + (1 if parts else 0) > limit:
            break
        size += len(part) + (1 if parts else 0)
        parts.append(part)
    return "|".join(parts)


def decision_variables(profile: CallerProfile, decision: Decision,
                       endpoint_of: Callable[[str], str | None]) -> dict[str, str]:
    """All CASELINE_* values for a decision (status "ok").

    TARGET is the first person to ring before any terminal step; a target that is not a
    plain `PJSIP/<name>` endpoint is dropped (the dialplan then goes to operators).
    """
    target, ring_timeout, queue, playback = "", "", "", ""
    for step in decision.route:
        if step.kind in (StepKind.MANAGER, StepKind.SUPERVISOR) and not target:
            endpoint = endpoint_of(step.target)
            if endpoint and _ENDPOINT_RE.fullmatch(endpoint):
                target, ring_timeout = endpoint, str(max(1, min(int(step.ring_timeout_s or 20), 300)))
        elif step.kind is StepKind.PLAYBACK and not playback and _SOUND_RE.fullmatch(step.target):
            playback = step.target
        elif step.kind is StepKind.QUEUE and not queue:
            queue = step.target
        if step.kind in TERMINAL_KINDS:
            break
    history = profile.history
    values = {
        "CASELINE_CLASS": history.cls.value,
        "CASELINE_CALLBACK_KIND": history.callback_kind.value if history.callback_kind else "",
        "CASELINE_OWNER": profile.case_holder or "",
        "CASELINE_SERVICE": decision.service.value,
        "CASELINE_PRIORITY": str(max(0, int(decision.priority))),
        "CASELINE_TARGET": target,
        "CASELINE_RING_TIMEOUT": ring_timeout,
        "CASELINE_ROUTE": compact_route(decision),
        "CASELINE_QUEUE": queue,
        "CASELINE_PLAYBACK": playback,
        "CASELINE_STATUS": "ok",
    }
    return {name: clean(values[name]) for name in NAMES}


def shed_variables(target: ShedTarget) -> dict[str, str]:
    """A session shed by admission control: only what `[operators]` reads, status last. The
    dialplan cleared CASELINE_STATUS and CASELINE_TARGET; an empty service means operators;
    CASELINE_QUEUE only when it is not the dialplan's default queue.

    >>> shed_variables(ShedTarget(70, "operators"))
    {'CASELINE_PRIORITY': '70', 'CASELINE_STATUS': 'shed'}
    >>> shed_variables(ShedTarget(20, "benchq"))
    {'CASELINE_PRIORITY': '20', 'CASELINE_QUEUE': 'benchq', 'CASELINE_STATUS': 'shed'}
    """
    values = {"CASELINE_PRIORITY": str(max(0, int(target.priority)))}
    if target.queue != FALLBACK_QUEUE:
        values["CASELINE_QUEUE"] = clean(target.queue)
    values["CASELINE_STATUS"] = "shed"
    return values


def fallback_variables() -> dict[str, str]:
    """What the channel gets when no decision could be made: operators, normal priority."""
    values = dict.fromkeys(NAMES, "")
    values.update({
        "CASELINE_SERVICE": "operator",
        "CASELINE_PRIORITY": "0",
        "CASELINE_ROUTE": f"queue:{FALLBACK_QUEUE}",
        "CASELINE_QUEUE": FALLBACK_QUEUE,
        "CASELINE_STATUS": "fallback",
    })
    return values
