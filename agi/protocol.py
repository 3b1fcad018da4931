"""The FastAGI wire format, parsed without I/O.

A FastAGI session starts with Asterisk sending its environment, one `agi_*` header per
line, ended by an empty line::

    agi_network: yes
    agi_network_script: route
    agi_request: agi://127.0.0.1:4573/route
    agi_channel: PJSIP/trunk-00000001
    agi_uniqueid: 1718000000.42
    agi_callerid: +79161234567
    ...
    <empty line>

Then the server sends commands (`SET VARIABLE CASELINE_CLASS "repeat"`) and Asterisk
answers each with one line, or several for a usage error::

    200 result=1
    200 result=1 (speech) endpos=1234
    510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercept routine
    520-Invalid command syntax.  Proper usage follows:
    Usage: SET VARIABLE <variablename> <value>
    520 End of proper usage.

When the caller hangs up, Asterisk also writes `HANGUP` on its own line, at any time.

Everything here treats the peer as untrusted: bounded line count, line length, and a
strict header grammar; anything else raises AgiProtocolError and the session is closed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_LINES = 64  # Asterisk 22 sends ~25 headers plus agi_arg_N
MAX_LINE_BYTES = 1024  # one header line
MAX_RESPONSE_LINE_BYTES = 8192  # a 520 usage paragraph can be long
MAX_RESPONSE_LINES = 64  # `100 Trying` lines and a 520 usage text are a few lines

_HEADER_RE = re.compile(r"(agi_[a-z0-9_]{1,40}):[ \t]?(.*)", re.ASCII)
_RESPONSE_RE = re.compile(r"(\d{3})(?: (.*))?", re.ASCII | re.DOTALL)
_RESULT_RE = re.compile(r"result=(\S*)(?: \(([^)]*)\))?(.*)", re.ASCII | re.DOTALL)
_SCRIPT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_USAGE_END = "520 End of proper usage."


class AgiError(Exception):
    """Base of everything the AGI layer raises."""


class AgiProtocolError(AgiError):
    """The peer does not speak AGI (garbage, oversized or truncated input)."""


class AgiConnectionClosed(AgiError):
    """The peer closed the socket (EOF): Asterisk is done with this channel."""


class AgiHangup(AgiError):
    """Asterisk sent `HANGUP`: the caller is gone."""


class AgiDeadChannel(AgiError):
    """`511`: the command is not allowed because the channel is dead."""


class AgiInvalidCommand(AgiError):
    """`510`: Asterisk does not know the command (a bug on our side)."""


class AgiUsageError(AgiError):
    """`520`: the command's syntax was wrong; the message carries Asterisk's usage text."""


@dataclass(frozen=True, slots=True)
class AgiResponse:
    """A successful (`200`) answer: `200 result=1 (data) extra` -> result "1", data "data"."""

    code: int
    result: str
    data: str = ""
    extra: str = ""


def decode_line(raw: bytes, limit: int = MAX_LINE_BYTES) -> str:
    """One wire line without its terminator; rejects oversized or binary lines.

    >>> decode_line(b"agi_uniqueid: 1718000000.42\\n")
    'agi_uniqueid: 1718000000.42'
    """
    if len(raw) > limit + 1:
        raise AgiProtocolError("line too long")
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    else:
        raise AgiProtocolError("truncated line (no newline)")
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if b"\x00" in raw or b"\r" in raw or b"\n" in raw:  # one line, whatever the caller passed
        raise AgiProtocolError("control characters in line")
    # Caller names may be UTF-8; undecodable bytes must not kill the session.
    return raw.decode("utf-8", errors="replace")


class HeaderParser:
    """Collects the `agi_*` environment, line by line, until the empty line.

    >>> p = HeaderParser()
    >>> p.feed("agi_network_script: route"), p.feed("")
    (False, True)
    >>> p.headers
    {'agi_network_script': 'route'}
    """

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self._lines = 0
        self.done = False

    def feed(self, line: str) -> bool:
        """Add one decoded line; True once the terminating empty line was seen."""
        if self.done:
            raise AgiProtocolError("header already complete")
        if line == "":
            if not self.headers:
                raise AgiProtocolError("empty environment")
            self.done = True
            return True
        self._lines += 1
        if self._lines > MAX_HEADER_LINES:
            raise AgiProtocolError("too many header lines")
        match = _HEADER_RE.fullmatch(line)
        if match is None:
            raise AgiProtocolError("malformed header line")
        self.headers[match.group(1)] = match.group(2).strip()
        return False


def parse_headers(lines: list[str]) -> dict[str, str]:
    """A whole environment at once (tests, tools). The last line must be empty."""
    parser = HeaderParser()
    for line in lines:
        if parser.feed(line):
            return parser.headers
    raise AgiProtocolError("environment not terminated by an empty line")


class ResponseParser:
    """Turns the answer to one command into an AgiResponse or an exception.

    `feed` returns None while more lines are needed (`100 Trying...`, a `520-` usage
    block), the AgiResponse for `200`, and raises for everything else.

    >>> ResponseParser().feed("200 result=1 (data)")
    AgiResponse(code=200, result='1', data='data', extra='')
    """

    def __init__(self) -> None:
        self._usage: list[str] | None = None
        self._lines = 0

    def feed(self, line: str) -> AgiResponse | None:
        self._lines += 1
        if self._lines > MAX_RESPONSE_LINES:
            raise AgiProtocolError("response too long")
        if self._usage is not None:
            return self._feed_usage(line)
        if line.strip() == "HANGUP":
            raise AgiHangup("caller hung up")
        if line.startswith("520-"):
            self._usage = [line[4:]]
            return None
        match = _RESPONSE_RE.fullmatch(line)
        if match is None:
            raise AgiProtocolError("malformed response line")
        code, rest = int(match.group(1)), match.group(2) or ""
        if code == 100:
            return None  # "100 result=0 Trying...": the real answer follows
        if code == 200:
            return _parse_result(rest)
        if code == 510:
            raise AgiInvalidCommand(rest or "invalid or unknown command")
        if code == 511:
            raise AgiDeadChannel(rest or "command not permitted on a dead channel")
        if code == 520:
            raise AgiUsageError(rest or "invalid command syntax")
        raise AgiProtocolError(f"unexpected response code {code}")

    def _feed_usage(self, line: str) -> None:
        assert self._usage is not None
        # Asterisk prints the usage text without forcing a newline, so the end marker
        # may be glued to the last usage line.
        if line.endswith(_USAGE_END):
            self._usage.append(line[: -len(_USAGE_END)])
            raise AgiUsageError("\n".join(part for part in self._usage if part).strip())
        self._usage.append(line)
        return None


def _parse_result(rest: str) -> AgiResponse:
    match = _RESULT_RE.fullmatch(rest)
    if match is None:
        raise AgiProtocolError("200 without result=")
    return AgiResponse(200, match.group(1), match.group(2) or "", match.group(3).strip())


def parse_response(lines: list[str]) -> AgiResponse:
    """A whole answer at once (tests, tools)."""
    parser = ResponseParser()
    for line in lines:
        response = parser.feed(line)
        if response is not None:
            return response
    raise AgiProtocolError("incomplete response")


def script_name(headers: dict[str, str]) -> str | None:
    """The requested script: `agi_network_script`, else the path of `agi_request`.

    >>> script_name({"agi_request": "agi://127.0.0.1:4573/route?x=1"})
    'route'

    None when absent or not a plain name (we route on it, so no paths, no dots).
    """
    raw = headers.get("agi_network_script", "")
    if not raw:
        request = headers.get("agi_request", "")
        try:
            raw = urlsplit(request).path if request.startswith("agi://") else ""
        except ValueError:
            return None
    raw = raw.split("?", 1)[0].strip("/")
    return raw if _SCRIPT_RE.fullmatch(raw) else None
