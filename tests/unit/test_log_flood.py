"""Repeated warnings and errors are rate-limited; decision lines (INFO) never are.

Reproduced before: out of descriptors, asyncio logged "socket.accept() out of system
resource" with a traceback 234,939 times in 35 s (100 MB of log).
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import uuid
from collections.abc import Iterator

import pytest

from ari_app.ops import logs
from ari_app.ops.log_flood import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def flood() -> Iterator[tuple[logging.Logger, Collect, RepeatFilter, Clock]]:
    clock = Clock()
    handler, limit = Collect(), RepeatFilter(burst=3, interval_s=60, clock=clock)
    handler.addFilter(limit)
    logger = logging.getLogger(f"test.flood.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, handler, limit, clock
    logger.removeHandler(handler)


def test_the_first_identical_errors_pass_then_they_are_counted(flood):
    logger, handler, limit, clock = flood
    for _ in range(100):
        logger.error("socket.accept() out of system resource")
    assert handler.lines == ["socket.accept() out of system resource"] * 3
    assert limit.suppressed == 97

    logger.error("another error")  # a different message has its own allowance
    logger.warning("socket.accept() out of system resource")  # and another level
    assert handler.lines[3:] == ["another error", "socket.accept() out of system resource"]

    clock.now = 61  # the next interval: the first one through says what was dropped
    logger.error("socket.accept() out of system resource")
    assert handler.lines[-1] == ("socket.accept() out of system resource "
                                 "[97 identical messages suppressed in the previous 60 s]")
    logger.error("socket.accept() out of system resource")
    assert handler.lines[-1] == "socket.accept() out of system resource"


def test_info_lines_are_never_suppressed(flood):
    logger, handler, limit, _ = flood
    for _ in range(500):
        logger.info("decision")
    assert len(handler.lines) == 500 and limit.suppressed == 0


async def test_the_daemons_json_log_survives_an_accept_error_flood():
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    loop = asyncio.get_running_loop()
    with socket.socket() as listening:
        try:
            logs.configure_json_logging("INFO", stream=stream)
            for _ in range(2000):  # what asyncio's accept loop reports on EMFILE, through asyncio's logger
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files"),
                                             "socket": listening})
            logs.log_outcome("c1", {"outcome": "queued"})
        finally:
            root.handlers[:] = saved
            root.setLevel(saved_level)
            logs.set_mask_numbers(True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 11  # the burst (10) and the call's outcome line
    assert lines[-1]["outcome"] == "queued"
    assert all(line["logger"] == "asyncio" for line in lines[:10])
