"""Caller-ID normalisation to E.164, and safe rendering of numbers for logs.

Caller IDs come from SIP headers the caller controls, so everything here treats the input
as hostile: bounded length, a strict character whitelist, and a result that is either None
or a strict E.164 string (the only thing allowed to reach a Redis key or a CRM query).
"""
from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

MAX_RAW_LEN = 64  # a real caller ID is < 30 chars; longer input is garbage, not a number
E164_RE = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)
# Digits, one leading "+", and the separators people and PBXs actually write.
_ALLOWED_RE = re.compile(r"\+?[0-9 ()\-.]+", re.ASCII)
_NON_DIGITS_RE = re.compile(r"[^0-9]", re.ASCII)


def is_e164(number: object) -> bool:
    """True only for a strict E.164 string ("+" then 7..15 digits, no leading zero)."""
    return isinstance(number, str) and E164_RE.fullmatch(number) is not None


def require_e164(number: object) -> str:
    """Return `number` if it is strict E.164, else raise ValueError (never echoes the input)."""
    if not is_e164(number):
        raise ValueError("not a strict E.164 number")
    return number  # type: ignore[return-value]


def normalize(raw: str | None, default_region: str = "RU") -> str | None:
    """E.164 form of a caller ID, or None for withheld, anonymous, unparseable or garbage input."""
    if not isinstance(raw, str) or not isinstance(default_region, str):
        return None
    if len(raw) > MAX_RAW_LEN or len(default_region) > 3:
        return None
    return _normalize(raw.strip(), default_region.upper())


@lru_cache(maxsize=4096)  # parsing costs ~50 µs; the same few numbers call again and again
def _normalize(raw: str, region: str) -> str | None:
    if not _ALLOWED_RE.fullmatch(raw):
        return None  # letters ("anonymous"), control chars, "${...}", "&PJSIP/x", non-ASCII
    digits = _NON_DIGITS_RE.sub("", raw)
    if not digits:
        return None
    if raw.startswith("+"):
        candidate = "+" + digits
    elif (
        len(digits) == 11
        and digits[0] == "7"
        and phonenumbers.country_code_for_region(region) == 7
    ):
        # RU/KZ trunks often send "7XXXXXXXXXX" without "+": that is the country code,
        # not a national number starting with 7.
        candidate = "+" + digits
    else:
        candidate = digits
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    # "possible" (length check) rather than "valid" (range check): a stale metadata range
    # must not make a real client lose their history; garbage of the right length is harmless.
    if not phonenumbers.is_possible_number(parsed):
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164 if is_e164(e164) else None


UNIDENTIFIED = "unidentified"  # how a caller without a usable number is shown everywhere


def mask(number: str | None) -> str:
    """A number as logs and ops views show it: only its last 4 digits.

    The one mask of the project (logs, decision log, /calls, `caseline calls`).

    >>> mask("+79161234567")
    '***4567'
    >>> mask("1234")
    '***'
    >>> mask(None)
    'unidentified'
    """
    if not number:
        return UNIDENTIFIED
    digits = _NON_DIGITS_RE.sub("", number[:MAX_RAW_LEN])
    return "***" + digits[-4:] if len(digits) > 4 else "***"


def sanitize_for_log(raw: object, limit: int = 80) -> str:
    """Printable ASCII rendering of untrusted text, quotes escaped, at most ~`limit` chars."""
    if raw is None:
        return "<none>"
    text = raw if isinstance(raw, str) else repr(raw)
    out: list[str] = []
    size = 0
    for ch in text[: limit + 1]:
        if ch in "\"'\\":
            piece = "\\" + ch
        elif " " <= ch <= "~":
            piece = ch
        else:
            piece = ch.encode("unicode_escape").decode("ascii")  # \n, \x00, \u0416
        if size + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)
