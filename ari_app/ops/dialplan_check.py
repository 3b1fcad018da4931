"""A pure, conservative checker for the project's dialplan files (extensions.conf syntax).

It catches what breaks a live reload or silently drops extensions: unbalanced context
headers, statements outside a context, `exten =>`/`same =>` lines without a priority or
an application, `n` as the first priority, unbalanced brackets in an application line,
`#include` of a file that is not shipped (or outside the folder), `#exec`, includes of
contexts nobody defines, and CR or NUL bytes. It does not know which applications exist:
Asterisk loads modules per site, so application names are only checked for shape.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

ENTRY = "extensions.conf"
MAX_FILE_BYTES = 1024 * 1024
SETTINGS_CONTEXTS = frozenset({"general", "globals"})
STATEMENTS = frozenset({"exten", "same", "include", "switch", "eswitch", "lswitch", "ignorepat"})

_FILE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\.conf", re.ASCII)
_CONTEXT_RE = re.compile(r"\[([A-Za-z0-9_.+-]{1,79})\](?:\(([A-Za-z0-9_,!+-]*)\))?", re.ASCII)
_INCLUDE_RE = re.compile(r'#\s*(include|tryinclude)\s+"?([^"]+?)"?', re.ASCII)
_KEY_VALUE_RE = re.compile(r"([A-Za-z0-9_]+)\s*=>?\s*(.*)", re.ASCII)
_STATEMENT_RE = re.compile(r"([a-z]+)\s*=>?\s*(.*)", re.ASCII)
_PRIORITY_RE = re.compile(r"(\d+|n(?:\+\d+)?|hint)(?:\(([A-Za-z0-9_-]+)\))?", re.ASCII)
_APP_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\(.*)?", re.ASCII | re.DOTALL)
_INCLUDE_CTX_RE = re.compile(r"([A-Za-z0-9_.+-]{1,79})(?:,.*)?", re.ASCII)
_CLOSERS = {")": "(", "}": "{", "]": "["}


@dataclass(frozen=True, slots=True)
class DialplanProblem:
    file: str
    line: int  # 1-based; 0 for whole-file problems
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


def strip_comment(line: str) -> str:
    """Drop a `;` comment; `\\;` is a literal semicolon."""
    i = 0
    while (i := line.find(";", i)) != -1:
        if i == 0 or line[i - 1] != "\\":
            return line[:i]
        i += 1
    return line


def unbalanced(text: str) -> str | None:
    """The first bracket problem in an application line, or None."""
    stack: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "({[":
            stack.append(ch)
        elif ch in _CLOSERS:
            if not stack or stack.pop() != _CLOSERS[ch]:
                return f"unexpected '{ch}'"
    return f"unclosed '{stack[-1]}'" if stack else None


class _FileChecker:
    def __init__(self, name: str, known_files: frozenset[str]) -> None:
        self.name = name
        self.known_files = known_files
        self.problems: list[DialplanProblem] = []
        self.contexts: set[str] = set()
        self.includes: list[tuple[int, str]] = []
        self._context: str | None = None
        self._last_exten: str | None = None
        self._priorities: dict[tuple[str, str], set[int]] = {}
        self._last_priority: dict[tuple[str, str], int] = {}

    def problem(self, line: int, message: str) -> None:
        self.problems.append(DialplanProblem(self.name, line, message))

    def check(self, text: str) -> None:
        in_block = False
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw
            if in_block:  # ;-- block comment --;
                end = line.find("--;")
                if end == -1:
                    continue
                line, in_block = line[end + 3:], False
            start = line.find(";--")
            if start != -1 and (start == 0 or line[start - 1] != "\\"):
                end = line.find("--;", start + 3)
                if end == -1:
                    line, in_block = line[:start], True
                else:
                    line = line[:start] + line[end + 3:]
            line = strip_comment(line).strip()
            if line:
                self._line(number, line)
        if in_block:
            self.problem(0, "block comment ';--' never closed")

    def _line(self, n: int, line: str) -> None:
        if line.startswith("#"):
            self._directive(n, line)
        elif line.startswith("["):
            match = _CONTEXT_RE.fullmatch(line)
            if match is None:
                self.problem(n, "malformed context header (expected [name])")
                self._context = None
                return
            self._context = match.group(1)
            self._last_exten = None
            self.contexts.add(self._context)
        elif line.startswith("]") or (line.endswith("]") and "[" not in line):
            self.problem(n, "unbalanced ']'")
        elif self._context is None:
            self.problem(n, "statement outside any context")
        elif self._context in SETTINGS_CONTEXTS:
            if _KEY_VALUE_RE.fullmatch(line) is None:
                self.problem(n, f"expected 'key = value' in [{self._context}]")
        else:
            self._statement(n, line)

    def _directive(self, n: int, line: str) -> None:
        if re.match(r"#\s*exec\b", line):
            self.problem(n, "#exec runs a shell command at load time: not allowed")
            return
        match = _INCLUDE_RE.fullmatch(line)
        if match is None:
            self.problem(n, "unknown directive")
            return
        target = match.group(2).strip()
        if "/" in target or not _FILE_RE.fullmatch(target):
            self.problem(n, f"#include {target!r}: only files of this folder can be included")
        elif target not in self.known_files and match.group(1) == "include":
            self.problem(n, f"#include {target!r}: no such file in the dialplan folder")

    def _statement(self, n: int, line: str) -> None:
        match = _STATEMENT_RE.fullmatch(line)
        if match is None or match.group(1) not in STATEMENTS:
            self.problem(n, "expected 'exten =>', 'same =>', 'include =>' or a context header")
            return
        kind, value = match.group(1), match.group(2).strip()
        if kind == "exten":
            self._exten(n, value)
        elif kind == "same":
            if self._last_exten is None:
                self.problem(n, "'same =>' without an 'exten =>' before it in this context")
                return
            priority, _, app = value.partition(",")
            self._priority(n, self._last_exten, priority.strip(), app, first_allowed=False)
        elif kind == "include":
            ctx = _INCLUDE_CTX_RE.fullmatch(value)
            if ctx is None:
                self.problem(n, "include => needs a context name")
            else:
                self.includes.append((n, ctx.group(1)))
        elif not value:
            self.problem(n, f"{kind} => needs a value")

    def _exten(self, n: int, value: str) -> None:
        parts = value.split(",", 2)
        if len(parts) < 3 or not parts[0].strip():
            self.problem(n, "exten => needs 'pattern,priority,application'")
            return
        pattern = parts[0].strip()
        if pattern.startswith("_") and unbalanced(pattern):
            self.problem(n, f"pattern {pattern!r}: unbalanced brackets")
        self._last_exten = pattern
        self._priority(n, pattern, parts[1].strip(), parts[2], first_allowed=True)

    def _priority(self, n: int, exten: str, priority: str, app: str, *, first_allowed: bool) -> None:
        match = _PRIORITY_RE.fullmatch(priority)
        if match is None:
            self.problem(n, f"priority {priority!r}: expected a number, 'n', 'n(label)' or 'hint'")
            return
        key = (self._context or "", exten)
        value = match.group(1)
        if value == "hint":
            return  # a hint's "application" is a device state string
        if value.startswith("n"):
            if key not in self._last_priority:
                self.problem(n, f"extension {exten!r} starts with 'n': its first priority must be 1")
                return
            number = self._last_priority[key] + 1 + int(value[2:] or 0)
        else:
            number = int(value)
            if key not in self._last_priority and number != 1 and first_allowed:
                self.problem(n, f"extension {exten!r} starts at priority {number}, not 1")
        seen = self._priorities.setdefault(key, set())
        if number in seen:
            self.problem(n, f"extension {exten!r} priority {number} defined twice")
        seen.add(number)
        self._last_priority[key] = number
        app = app.strip()
        if not app or _APP_RE.fullmatch(app) is None:
            self.problem(n, "expected an application, e.g. Dial(PJSIP/x,20)")
        elif (issue := unbalanced(app)) is not None:
            self.problem(n, f"application line: {issue}")


def check_dialplan(files: Mapping[str, bytes], entry: str = ENTRY) -> list[DialplanProblem]:
    """Every problem found in a dialplan folder given as {file name: content}."""
    problems: list[DialplanProblem] = []
    if entry not in files:
        problems.append(DialplanProblem(entry, 0, "missing (Asterisk reads the dialplan from it)"))
    known = frozenset(files)
    checkers: list[_FileChecker] = []
    for name in sorted(files):
        data = files[name]
        if not _FILE_RE.fullmatch(name):
            problems.append(DialplanProblem(name, 0, "file name must be <letters, digits, _.->.conf"))
            continue
        if len(data) > MAX_FILE_BYTES:
            problems.append(DialplanProblem(name, 0, f"larger than {MAX_FILE_BYTES} bytes"))
            continue
        if b"\x00" in data:
            problems.append(DialplanProblem(name, data[: data.index(b"\x00")].count(b"\n") + 1, "NUL byte"))
            continue
        if b"\r" in data:
            problems.append(DialplanProblem(name, data[: data.index(b"\r")].count(b"\n") + 1,
                                            "CR character (save the file with Unix line endings)"))
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(DialplanProblem(name, data[: e.start].count(b"\n") + 1, "not UTF-8"))
            continue
        checker = _FileChecker(name, known)
        checker.check(text)
        checkers.append(checker)
        problems.extend(checker.problems)
    defined = set().union(*(c.contexts for c in checkers)) if checkers else set()
    for checker in checkers:
        for line, ctx in checker.includes:
            if ctx not in defined:
                problems.append(DialplanProblem(checker.name, line, f"include => {ctx}: no such context"))
    return problems
