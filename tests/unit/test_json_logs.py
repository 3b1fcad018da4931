"""JSON call logs: one line each, numbers masked, no secrets, no forged lines."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from ari_app.core.models import (
    CallerProfile, CrmFacts, CrmRecord, Decision, EnvironmentFacts, HistoryClass, HistoryFacts,
    Reason, RouteStep, Service, SourceStatus, StepKind,
)
from ari_app.ops import logs

NUMBER = "+79161234567"


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """A private logger with the JSON formatter writing into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.caseline.calls")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logs.set_mask_numbers(True)
    yield stream, logger
    logs.set_mask_numbers(True)
    logger.handlers.clear()


def lines(stream: io.StringIO) -> list[dict]:
    raw = stream.getvalue().splitlines()
    return [json.loads(line) for line in raw]


def profile() -> CallerProfile:
    return CallerProfile(
        number=NUMBER,
        history=HistoryFacts(status=SourceStatus.OK, cls=HistoryClass.REPEAT, previous_missed=True, owner="mgr1"),
        crm=CrmFacts(status=SourceStatus.OK, record=CrmRecord(client_id="c-17", name="Ivan Petrov", abc="A",
                                                                responsible="mgr2")),
        environment=EnvironmentFacts(country="RU", timezone="Asia/Vladivostok"))


def decision() -> Decision:
    return Decision(
        service=Service.MANAGER, priority=7,
        route=(RouteStep(StepKind.MANAGER, "mgr2", 20, on_busy=1, on_no_answer=1, on_unavailable=1),
               RouteStep(StepKind.QUEUE, "operators")),
        reasons=(Reason("abc.A", "A client: straight to the responsible manager"),
                 Reason("repeat.missed", f"{NUMBER} called 10 minutes ago and was missed\r\nFAKE LINE")))


def test_decision_line(capture):
    stream, logger = capture
    logs.log_decision("1718000000.42", profile(), decision(), 0.0023, logger=logger)
    (line,) = lines(stream)
    assert line["event"] == "decision" and line["msg"] == "decision"
    assert line["level"] == "INFO" and line["logger"] == "test.caseline.calls"
    assert line["call_id"] == "1718000000.42"
    assert line["caller"] == "***4567"
    assert line["class"] == "repeat" and line["previous_missed"] is True
    assert line["owner"] == "mgr2" and line["abc"] == "A"
    assert line["history_status"] == "ok" and line["crm_status"] == "ok"
    assert line["service"] == "manager" and line["priority"] == 7
    assert line["route"] == [{"kind": "manager", "target": "mgr2", "ring_s": 20},
                             {"kind": "queue", "target": "operators"}]
    assert line["reasons"][0] == {"rule": "abc.A", "text": "A client: straight to the responsible manager"}
    assert line["decision_ms"] == 2.3
    assert line["ts"].endswith("+00:00")


def test_numbers_are_masked_everywhere_including_free_text(capture):
    stream, logger = capture
    logs.log_decision("c1", profile(), decision(), 0.001, logger=logger)
    logger.info("call from %s", NUMBER)
    text = stream.getvalue()
    assert "9161234567" not in text
    assert "1234567" not in text
    assert "Ivan" not in text  # the client's name is not a routing fact: never logged
    assert len(text.splitlines()) == 2  # CR/LF in a reason did not forge a line
    reason = lines(stream)[0]["reasons"][1]["text"]
    assert reason.startswith("***4567 called") and "\r" not in reason and "\n" not in reason


def test_masking_can_be_turned_off(capture):
    stream, logger = capture
    logs.set_mask_numbers(False)
    logs.log_decision("c1", profile(), decision(), 0.001, logger=logger)
    assert lines(stream)[0]["caller"] == NUMBER


def test_unidentified_caller(capture):
    stream, logger = capture
    logs.log_decision("c1", CallerProfile(number=None), decision(), 0.0, logger=logger)
    line = lines(stream)[0]
    assert line["caller"] == "unidentified" and line["class"] == "new" and line["crm_status"] == "skipped"


def test_outcome_line(capture):
    stream, logger = capture
    logs.log_outcome("1718000000.42", {
        "outcome": "answered", "answered_by": "mgr2", "step": 0, "duration_s": 42.5,
        "callee_number": "+74951234567", "attempts": [{"target": "mgr2", "status": "ANSWER"}],
        "fallback": None, "busy": False,
    }, logger=logger)
    line = lines(stream)[0]
    assert line["event"] == "outcome" and line["call_id"] == "1718000000.42"
    assert line["outcome"] == "answered" and line["answered_by"] == "mgr2"
    assert line["step"] == 0 and line["duration_s"] == 42.5 and line["busy"] is False
    assert line["callee_number"] == "***4567"
    assert line["attempts"] == [{"target": "mgr2", "status": "ANSWER"}]
    assert line["fallback"] is None


def test_outcome_never_writes_secrets_or_forged_fields(capture):
    stream, logger = capture

    class Opaque:
        def __str__(self) -> str:
            return "password=hunter2"

    logs.log_outcome("c1\nFAKE", {
        "ari_password": "hunter2", "Authorization": "Bearer abc", "api_key": "k",
        "settings": {"token": "t0k3n", "deep": {"deeper": {"deepest": {"x": 1}}}},
        "secret_value": SecretStr("s3cr3t"), "blob": SecretStr("s3cr3t"),
        "object": Opaque(), "event": "forged", "level": "CRITICAL",
        "note": "line1\r\nline2\x00\u2028", "long": "x" * 5000,
        "number_of_attempts": 3,
    }, logger=logger)
    text = stream.getvalue()
    for secret in ("hunter2", "abc", "t0k3n", "s3cr3t"):
        assert secret not in text
    (line,) = lines(stream)
    assert line["event"] == "outcome" and line["x_event"] == "forged"
    assert line["level"] == "INFO" and line["x_level"] == "CRITICAL"
    assert line["call_id"] == "c1 FAKE"
    assert line["ari_password"] == line["authorization"] == line["api_key"] == "[redacted]"
    assert line["settings"]["token"] == "[redacted]"
    assert line["settings"]["deep"]["deeper"] == {"deepest": "..."}
    assert line["blob"] == "[redacted]"
    assert line["object"] == "Opaque"
    assert line["note"] == "line1  line2  "
    assert len(line["long"]) <= 310
    assert line["number_of_attempts"] == 3  # a small count is not a phone number


def test_exceptions_are_one_json_line(capture):
    stream, logger = capture
    try:
        raise ValueError(f"bad {NUMBER}")
    except ValueError:
        logger.exception("decision failed")
    (line,) = lines(stream)
    assert "ValueError" in line["exc"] and "***4567" in line["exc"] and "9161234567" not in line["exc"]


def test_configure_json_logging_replaces_root_handlers():
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logs.configure_json_logging("INFO", mask_numbers=True, stream=stream)
        logs.log_outcome("c1", {"outcome": "queued"})
        logging.getLogger("caseline.other").debug("not at INFO")
    finally:
        root.handlers[:] = saved
        root.setLevel(saved_level)
        logs.set_mask_numbers(True)
    assert [json.loads(line)["outcome"] for line in stream.getvalue().splitlines()] == ["queued"]


def test_mask_number():
    assert logs.mask_number("+79161234567") == "***4567"
    assert logs.mask_number("8 (916) 123-45-67") == "***4567"
    assert logs.mask_number("1234") == "***"
    assert logs.mask_number(None) is None
    assert logs.mask_number("+79161234567", mask=False) == "+79161234567"
