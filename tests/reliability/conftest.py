"""Fixtures for the non-lab reliability tests: a real redis-server, and JSON log capture."""
from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence

import pytest

from ari_app.ops.logs import JsonFormatter


class JsonLogs:
    """Every record of the test, formatted by the production JsonFormatter (one JSON line each)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.handler.setLevel(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def lines(self) -> list[str]:
        text = self.stream.getvalue()
        assert text == "" or text.endswith("\n")
        return text.splitlines(keepends=False) if text else []

    def assert_clean(self, *, forbidden: Sequence[str] = ()) -> list[str]:
        """One line per record, printable ASCII only (no raw CR/LF/NUL), no forbidden text."""
        lines = self.lines()
        assert len(lines) == len(self.records), "a record spilled over several lines"
        for line in lines:
            assert line.isascii() and line.isprintable(), f"raw control or non-ASCII text in {line[:200]!r}"
            for text in forbidden:
                if text:
                    assert text not in line, f"{text!r} leaked into a log line: {line[:300]}"
        for record in self.records:  # what any other handler (syslog, journald) would get
            message = record.getMessage()
            assert "\r" not in message and "\n" not in message, f"CR/LF in a log message: {message[:200]!r}"
        return lines


@pytest.fixture
def json_logs() -> Iterator[JsonLogs]:
    """Capture everything logged (DEBUG and up) through the production JSON formatter."""
    logs = JsonLogs()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logs.records.append(record)

    keep = Keep(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(logs.handler)
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    try:
        yield logs
    finally:
        root.removeHandler(logs.handler)
        root.removeHandler(keep)
        root.setLevel(old_level)
