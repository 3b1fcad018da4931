"""Asterisk's text rules the dialplan interpreter (tests/support/dialplan_sim.py) needs, ported
from Asterisk 22's source: argument splitting (main/app.c __ast_app_separate_args), FILTER
and REGEX (funcs/func_strings.c), expressions (main/ast_expr2.y / .fl), truth
(main/pbx.c pbx_checkcondition) and an AGI command's words (res/res_agi.c parse_args).
What it does not know it refuses (DialplanError), so a test cannot pass on a construct
merely skipped."""
from __future__ import annotations

import re
from dataclasses import dataclass


class DialplanError(AssertionError):
    """Something real Asterisk would log as an error (or never return from)."""


def separate_args(buf: str, delim: str = ",", remove_chars: bool = True,
                  max_args: int = 100) -> list[str]:
    """main/app.c __ast_app_separate_args: parentheses, brackets and quotes protect the
    delimiter; with remove_chars, quotes and backslashes are removed; an application that
    declares `max_args` arguments gets the rest of the text in its last one."""
    args: list[str] = []
    if not buf:
        return args
    current: list[str] = []
    paren = quote = bracket = 0
    i = 0
    ended_on_delim = False
    while i < len(buf):
        if len(args) == max_args - 1:  # the last argument takes the rest as it is
            current.append(buf[i:])
            break
        ch = buf[i]
        ended_on_delim = False
        if ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(0, paren - 1)
        elif ch == "[":
            bracket += 1
        elif ch == "]":
            bracket = max(0, bracket - 1)
        elif ch == '"' and delim != '"':
            quote ^= 1
            if remove_chars:
                i += 1
                continue
        elif ch == "\\":
            if remove_chars:
                i += 1
                if i < len(buf):
                    current.append(buf[i])
                i += 1
                continue
            current.append(ch)
            i += 1
            if i < len(buf):
                current.append(buf[i])
            i += 1
            continue
        elif ch == delim and not paren and not quote and not bracket:
            args.append("".join(current))
            current = []
            ended_on_delim = True
            i += 1
            continue
        current.append(ch)
        i += 1
    if current or ended_on_delim:
        args.append("".join(current))
    return args


def filter_chars(allowed: str, value: str) -> str:
    """funcs/func_strings.c FILTER: ranges a-b, backslash escapes (\\-, \\xHH)."""
    chars: set[int] = set()
    i = 0

    def encoded(j: int) -> tuple[int, int]:
        if buf[j] == "\\" and j + 1 < len(buf):
            if buf[j + 1] == "x":
                digits = re.match(r"[0-9a-fA-F]{1,2}", buf[j + 2:])
                assert digits, f"FILTER: bad \\x escape in {allowed!r}"
                return int(digits.group(), 16), 2 + len(digits.group())
            return ord(buf[j + 1]), 2
        return ord(buf[j]), 1

    buf = allowed
    while i < len(buf):
        c1, used = encoded(i)
        i += used
        if i < len(buf) and buf[i] == "-":
            if i + 1 < len(buf):
                c2, used = encoded(i + 1)
            else:
                c2, used = c1, 0
            i += used + 1
            chars.update(range(c1, c2 + 1))
        else:
            chars.add(c1)
    return "".join(ch for ch in value if ord(ch) in chars)


_POSIX_CLASSES = {"[:cntrl:]": r"\x00-\x1f\x7f", "[:alpha:]": "A-Za-z", "[:digit:]": "0-9",
                  "[:alnum:]": "A-Za-z0-9", "[:space:]": r" \t\r\n\v\f"}


def regex_match(pattern: str, value: str) -> bool:
    """REGEX's regexec() with REG_EXTENDED, via Python re (POSIX classes translated)."""
    for posix, python in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, python)
    return re.search(pattern, value) is not None


_EXPR_TOKEN = re.compile(r'\s*(?:(\"[^"]*\")|([0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9.\';\\_^#@]))|'
                         r"([A-Za-z0-9.';\\_^#@\x80-\xff]+)|(==|!=|<=|>=|=~|\|\||&&|[|&=<>+\-*/%!()]))")


@dataclass
class _Val:
    text: str
    kind: str  # "number" | "numeric" | "string"

    def is_string(self) -> bool:
        return self.kind == "string"

    def number(self) -> int:
        if self.kind == "string" or not re.fullmatch(r"-?[0-9]+", self.text):
            raise DialplanError(f"expression: non-numeric argument {self.text!r}")
        return int(self.text)

    def zero_or_null(self) -> bool:
        return self.text == "" or (re.fullmatch(r"-?[0-9]+", self.text) is not None and int(self.text) == 0)


def expression(text: str) -> str:
    """main/ast_expr2.y, what the dialplan uses: | & comparisons + - * / % ! and parentheses.
    A quoted string keeps its quotes and compares as a string."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _EXPR_TOKEN.match(text, pos)
        if match is None:
            raise DialplanError(f"expression: cannot read {text[pos:]!r} in $[{text}]")
        quoted, num, word, op = match.groups()
        tokens.append(("val", quoted) if quoted is not None else ("num", num) if num is not None
                      else ("val", word) if word is not None else ("op", op))
        pos = match.end()
    if not tokens:
        raise DialplanError("expression: empty $[]")
    parser = _ExprParser(tokens, text)
    result = parser.parse(0)
    if parser.i != len(tokens):
        raise DialplanError(f"expression: syntax error in $[{text}]")
    return result.text


class _ExprParser:
    LEVELS = [("|", "||"), ("&", "&&"), ("=", "==", "!=", "<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%")]

    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens, self.i, self.text = tokens, 0, text

    def parse(self, level: int) -> _Val:
        if level == len(self.LEVELS):
            return self.unary()
        left = self.parse(level + 1)
        while self.i < len(self.tokens) and self.tokens[self.i] in [("op", o) for o in self.LEVELS[level]]:
            op = self.tokens[self.i][1]
            self.i += 1
            left = _binary(op, left, self.parse(level + 1))
        return left

    def unary(self) -> _Val:
        if self.i >= len(self.tokens):
            raise DialplanError(f"expression: syntax error in $[{self.text}]")
        kind, value = self.tokens[self.i]
        self.i += 1
        if (kind, value) == ("op", "!"):
            return _Val("1" if self.unary().zero_or_null() else "0", "number")
        if (kind, value) == ("op", "-"):
            return _Val(str(-self.unary().number()), "number")
        if (kind, value) == ("op", "("):
            inner = self.parse(0)
            if self.i >= len(self.tokens) or self.tokens[self.i] != ("op", ")"):
                raise DialplanError(f"expression: unbalanced ( in $[{self.text}]")
            self.i += 1
            return inner
        if kind == "op":
            raise DialplanError(f"expression: syntax error at {value!r} in $[{self.text}]")
        return _Val(value, "numeric" if kind == "num" else "string")


def _binary(op: str, a: _Val, b: _Val) -> _Val:
    if op in ("|", "||"):
        return b if a.zero_or_null() else a
    if op in ("&", "&&"):
        return _Val("0", "number") if a.zero_or_null() or b.zero_or_null() else a
    if op in ("=", "==", "!=", "<", ">", "<=", ">="):
        if a.is_string() or b.is_string():
            x, y = a.text, b.text  # strcoll on the strings, quotes included
        else:
            x, y = a.number(), b.number()  # type: ignore[assignment]
        result = {"=": x == y, "==": x == y, "!=": x != y, "<": x < y, ">": x > y,
                  "<=": x <= y, ">=": x >= y}[op]
        return _Val("1" if result else "0", "number")
    x, y = a.number(), b.number()
    if op in ("/", "%") and y == 0:
        raise DialplanError("expression: division by zero")
    value = {"+": x + y, "-": x - y, "*": x * y, "/": int(x / y) if y else 0, "%": x % y if y else 0}[op]
    return _Val(str(value), "number")


def agi_args(line: str) -> list[str]:
    """res/res_agi.c parse_args: spaces split, quotes group, backslash escapes."""
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    started = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            started = True
        elif ch in " \t" and not quoted and not escaped:
            if started:
                words.append("".join(current))
            current, started = [], False
        elif ch == "\\" and not escaped:
            escaped = True
            continue
        else:
            current.append(ch)
            started = True
        escaped = False
    if started:
        words.append("".join(current))
    return words


def is_true(condition: str) -> bool:
    """main/pbx.c pbx_checkcondition."""
    if not condition:
        return False
    match = re.match(r"\s*[-+]?[0-9]+", condition)
    return int(match.group()) != 0 if match else True
