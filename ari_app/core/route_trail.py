"""What the dialplan did with a route program (core/route_program.py), as the decision log
shows an ARI call's outcome (models.Outcome).

`dialplan/caseline-agi.conf` appends one token per step result to CASELINE_TRAIL, and its
hangup handler writes the trail into the CDR's userfield:

    caseline-agi:<status>:<trail>      e.g. caseline-agi:ok:0b.1a.

    <step><code>.   a answered, b busy, n no answer, u unavailable, h caller hung up (in
                    that step), p played, q queued, v voicemail, c callback filed,
                    f callback not filed, x hung up by the route, i invalid IVR input,
                    t IVR timeout
    <step>=<digits>.   the IVR option chosen
    o.              the walker could not go on (a broken or missing step): operators

Caseline reads it back from the CDR it receives anyway (record/agi_calls.py): no request
from the dialplan at the end of a call, and a userfield of at most 255 bytes is plenty
(a token is 3-6 bytes; the walker stops after 64 steps).
"""
from __future__ import annotations

import re

from ari_app.core.dialplan import DEFAULT_QUEUE
from ari_app.core.models import DialResult, Outcome, OutcomeResult, StepKind
from ari_app.core.route_program import RouteProgram

USERFIELD_PREFIX = "caseline-agi:"
_USERFIELD = re.compile(r"caseline-agi:([a-z_]{1,16}):([0-9a-z=*#.]{0,240})", re.ASCII)
_TOKEN = re.compile(r"(?:(\d{1,3})([abnuhpqvcfxit]|=[0-9*#]{1,4})|(o))", re.ASCII)
_PERSON = {"a": DialResult.ANSWERED, "b": DialResult.BUSY, "n": DialResult.NO_ANSWER,
           "u": DialResult.UNAVAILABLE}
_PERSON_KINDS = (StepKind.MANAGER, StepKind.SUPERVISOR)


def parse_userfield(userfield: str) -> tuple[str, str] | None:
    """(status, trail) of a walker's userfield, else None.

    >>> parse_userfield("caseline-agi:ok:0b.1a.")
    ('ok', '0b.1a.')
    """
    match = _USERFIELD.fullmatch(userfield.strip())
    return (match.group(1), match.group(2)) if match else None


def tokens(trail: str) -> list[tuple[int | None, str]]:
    """(step, code) for each well-formed token; odd ones are skipped.

    >>> tokens("0b.3=12.o.junk.")
    [(0, 'b'), (3, '=12'), (None, 'o')]
    """
    found: list[tuple[int | None, str]] = []
    for part in trail.split("."):
        match = _TOKEN.fullmatch(part)
        if match is None:
            continue
        found.append((None, "o") if match.group(3) else (int(match.group(1)), match.group(2)))
    return found


def outcome_of(program: RouteProgram, trail: str, callback_id: str = "") -> Outcome:
    """The outcome as the executor would have filled it for the same route and events."""
    outcome = Outcome()
    entered: set[int] = set()
    for index, code in tokens(trail):
        if index is None:
            outcome.steps.append(f"queue:{DEFAULT_QUEUE}")
            outcome.result = OutcomeResult.QUEUE
            continue
        if index >= len(program.steps):
            continue
        step = program.steps[index]
        if step.kind is StepKind.IVR and index not in entered:
            entered.add(index)  # the executor names the menu as it starts it
            outcome.steps.append(f"ivr:{step.label}")
        if code == "h":
            if step.kind in _PERSON_KINDS:
                outcome.steps.append(f"{step.label}:{OutcomeResult.CALLER_HUNG_UP}")
            outcome.result = OutcomeResult.CALLER_HUNG_UP
        elif step.kind in _PERSON_KINDS and code in _PERSON:
            _person(outcome, step.label, _PERSON[code])
        elif step.kind is StepKind.IVR:
            choice = {"i": "invalid", "t": "timeout"}.get(code, code[1:])
            if choice:
                outcome.steps.append(f"ivr:{step.label}:{choice}")
        else:
            _terminal(outcome, step.kind, step.label, code, callback_id)
    return outcome


def _person(outcome: Outcome, label: str, result: DialResult) -> None:
    outcome.steps.append(f"{label}:{result}")
    if result is DialResult.ANSWERED:
        outcome.result = OutcomeResult.ANSWERED
        outcome.answered_by = label
    else:
        outcome.fallbacks.append(result)


def _terminal(outcome: Outcome, kind: StepKind, label: str, code: str, callback_id: str) -> None:
    if kind is StepKind.PLAYBACK and code == "p":
        outcome.steps.append(f"playback:{label}")
    elif kind is StepKind.QUEUE and code == "q":
        outcome.steps.append(f"queue:{label}")
        outcome.result = OutcomeResult.QUEUE
    elif kind is StepKind.VOICEMAIL and code == "v":
        outcome.steps.append(f"voicemail:{label}")
        outcome.result = OutcomeResult.VOICEMAIL
    elif kind is StepKind.CALLBACK and code == "c":
        outcome.steps.append(f"callback:{callback_id or 'filed'}")
        outcome.result = OutcomeResult.CALLBACK
    elif kind is StepKind.CALLBACK and code == "f":
        outcome.steps.append("callback:not_filed")
    elif kind is StepKind.HANGUP and code == "x":
        outcome.steps.append("hangup")
        outcome.result = OutcomeResult.HANGUP
