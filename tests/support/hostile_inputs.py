"""Hostile inputs shared by the reliability tests, and the Hypothesis settings they use.

A caller ID is whatever the remote party put in its SIP From header (and a CRM answer,
a CDR file or an HTTP body is whatever its author wrote), so every entry point that takes
one is fed the same list. `raw` is the byte string as it would arrive on a wire;
`text` is what a Python API sees (invalid UTF-8 kept as lone surrogates, like
`surrogateescape`); `marker` is a fragment that must never show up in a log line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import HealthCheck, settings

# CI-stable fuzzing: the same examples every run, no example database on disk, no deadline
# (a loaded CI box must not turn a slow example into a failure; time bounds are asserted
# explicitly where they matter).
FUZZ = settings(deadline=None, max_examples=300, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_SLOW = settings(FUZZ, max_examples=60)  # examples that open sockets or write files

E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
# The only Redis keys Caseline's history may ever create.
HISTORY_KEY_RE = re.compile(rb"caseline:hist:\+[1-9][0-9]{6,14}")
# Who talked on a call, keyed by Asterisk's call id (linkedid: "epoch.sequence"), never a number.
LEARNED_KEY_RE = re.compile(rb"caseline:learned:[0-9]{1,12}\.[0-9]{1,12}")


@dataclass(frozen=True)
class Hostile:
    name: str
    raw: bytes
    marker: str | None = None  # must never appear in a log line

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "surrogateescape")

    @property
    def replaced(self) -> str:
        """As a lenient decoder (the AGI header parser, a CSV reader) hands it on."""
        return self.raw.decode("utf-8", "replace")

    @property
    def wire_safe(self) -> bool:
        """Fits on one AGI header line: no NUL, CR or LF, and short enough."""
        return not any(c in self.raw for c in b"\x00\r\n") and len(self.raw) <= 900


HOSTILE_CALLER_IDS: tuple[Hostile, ...] = (
    Hostile("empty", b""),
    Hostile("blank", b"   "),
    Hostile("anonymous", b"anonymous"),
    Hostile("restricted_mixed_case", b"Restricted"),
    Hostile("long_1k_digits", b"+" + b"9" * 1023),
    Hostile("long_1k_letters", b"A" * 1024, marker="A" * 80),
    Hostile("just_too_long_digits", b"7" * 65),
    Hostile("non_ascii_cyrillic", "Иван Петров".encode()),
    Hostile("fullwidth_digits", "+７９１６１２３４５６７".encode()),
    Hostile("arabic_indic_digits", "+٧٩١٦١٢٣٤٥٦٧".encode()),
    Hostile("rtl_override", "+7916\u202e7654321".encode()),
    Hostile("line_separator", "+7916\u20281234567".encode()),
    Hostile("invalid_utf8", b"\xff\xfe\xc3\x28+79161234567\x80"),
    Hostile("double_quotes", b'"Evil" <+79161234567>', marker='"Evil"'),
    Hostile("single_quote", b"'+79161234567'"),
    Hostile("dialplan_function", b"${SHELL(rm -rf /)}", marker="${SHELL"),
    Hostile("dialplan_variable", b"+7916${CASELINE_TARGET}", marker="${CASELINE"),
    Hostile("channel_injection", b"&PJSIP/evil", marker="PJSIP/evil"),
    Hostile("semicolon", b";"),
    Hostile("semicolon_params", b"+79161234567;evil=1"),
    Hostile("comma_args", b"+79161234567,60,tT"),
    Hostile("crlf", b"+79161234567\r\nagi_evil: 1", marker="agi_evil"),
    Hostile("lf_only", b"+79161234567\n\n"),
    Hostile("cr_only", b"\r"),
    Hostile("path_traversal", b"../", marker=None),
    Hostile("path_traversal_deep", b"../../etc/passwd", marker="etc/passwd"),
    Hostile("dot_dot", b".."),
    Hostile("url_specials", b"?&#"),
    Hostile("sql", b"' OR 1=1 --", marker="OR 1=1"),
    Hostile("url", b"http://x/?a=b", marker="http://x/"),
    Hostile("redis_protocol", b"*1\r\n$8\r\nFLUSHALL\r\n", marker="FLUSHALL"),
    Hostile("redis_key_prefix", b"caseline:hist:+79161234567", marker="caseline:hist"),
    Hostile("redis_glob", b"*"),
    Hostile("nul_inside", b"+7916\x001234567"),
    Hostile("nul_only", b"\x00"),
    Hostile("control_chars", b"\x1b[31m+79161234567\x07"),
    Hostile("percent_encoded", b"%2B79161234567%0d%0a"),
    Hostile("sip_uri", b"sip:+79161234567@evil.example;transport=tcp"),
    Hostile("plus_only", b"+"),
    Hostile("leading_zero_cc", b"+0123456789"),
    Hostile("too_short", b"+7916"),
)

# Real numbers in the shapes people and trunks write them, and their E.164 form.
VALID_CALLER_IDS: tuple[tuple[str, str], ...] = (
    ("+79161234567", "+79161234567"),  # in config/clients.yaml (C-1001, manager mgr1)
    ("8 (916) 123-45-68", "+79161234568"),  # C-1002, national format
    ("79031112233", "+79031112233"),  # C-1003, trunk format without "+"
    ("+14155550123", "+14155550123"),  # unknown to the CRM
)


def national_digits(e164: str) -> str:
    """The digits after the country code prefix: what a log line must never show in full."""
    return e164[2:]


def hostile_id(item: Hostile) -> str:
    return item.name
