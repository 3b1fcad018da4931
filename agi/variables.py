"""What the FastAGI front writes into the channel, and what it reads from Asterisk's headers.

A route session answers with ONE command, `SET VARIABLE CASELINE_ROUTE "<route>"`: the
whole route in the compact form of core/route_program.py, which dialplan/caseline-agi.conf
walks. The dialplan interpolates these values into application arguments, so every value is
checked against a whitelist before it leaves Python: no quotes, backslashes, commas, `$`,
braces, brackets or spaces can reach Asterisk's parser. A value outside its whitelist is a
bug; it raises instead of being sent.
"""
from __future__ import annotations

import re

from ari_app.core.admission import ShedTarget
from ari_app.core.route_program import MAX_ROUTE_BYTES, RouteProgram, operators

MAX_CALLER_ID = 64
MAX_TRAIL = 240  # the walker's trail, as the CDR's userfield keeps it (core/route_trail.py)

# name -> the values it may carry
_VALUES = {
    "CASELINE_ROUTE": re.compile(r"[A-Za-z0-9_:|/=.*#@-]{1,%d}" % MAX_ROUTE_BYTES, re.ASCII),
    "CASELINE_FILED": re.compile(r"[A-Za-z0-9_-]{0,32}", re.ASCII),  # a callback request's id
    "CASELINE_STATUS": re.compile(r"[a-z_]{1,32}", re.ASCII),  # unknown_script
}
NAMES = tuple(_VALUES)
_CALLER_ID_RE = re.compile(r"[A-Za-z0-9+*#() .-]{1,64}", re.ASCII)
_CALL_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_TRAIL_RE = re.compile(r"[0-9a-z=*#.]{0,%d}" % MAX_TRAIL, re.ASCII)


def set_variable_command(name: str, value: str) -> str:
    """`SET VARIABLE NAME "value"`; ValueError for a name or value outside the whitelist.

    >>> set_variable_command("CASELINE_ROUTE", "ok:20::1|q:operators")
    'SET VARIABLE CASELINE_ROUTE "ok:20::1|q:operators"'
    """
    allowed = _VALUES.get(name)
    if allowed is None:
        raise ValueError(f"not a Caseline variable: {name}")
    if not isinstance(value, str) or not allowed.fullmatch(value):
        raise ValueError(f"{name}: value outside its character set")
    return f'SET VARIABLE {name} "{value}"'


def route_command(program: RouteProgram) -> str:
    return set_variable_command("CASELINE_ROUTE", program.encode())


def shed_program(target: ShedTarget) -> RouteProgram:
    """Admission control shed the session: the operators' queue at a priority computed without
    I/O, in the same one command as a decision.

    >>> shed_program(ShedTarget(70, "operators")).encode()
    'shed:70::1|q:operators'
    """
    return operators("shed", target.priority, target.queue)


def fallback_program() -> RouteProgram:
    """No decision could be made: the operators, normal priority.

    >>> fallback_program().encode()
    'fallback:0::1|q:operators'
    """
    return operators("fallback", 0)


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


def sanitize_trail(raw: str | None) -> str:
    """The walker's trail passed as `agi_arg_1` (a callback request's reason), or ""."""
    return raw if raw is not None and _TRAIL_RE.fullmatch(raw) else ""
