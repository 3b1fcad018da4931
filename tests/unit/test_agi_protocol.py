"""The pure AGI wire parser and the variable builder (no sockets)."""
from __future__ import annotations

import re

import pytest

from agi.protocol import (
    MAX_HEADER_LINES, MAX_LINE_BYTES, AgiDeadChannel, AgiHangup, AgiInvalidCommand,
    AgiProtocolError, AgiResponse, AgiUsageError, HeaderParser, ResponseParser, decode_line,
    parse_headers, parse_response, script_name,
)
from agi.variables import (
    NAMES, clean, compact_route, decision_variables, fallback_variables, sanitize_call_id,
    sanitize_caller_id, set_variable_command,
)
from ari_app.core.models import (
    CallbackKind, CallerProfile, CrmFacts, CrmRecord, Decision, HistoryClass, HistoryFacts,
    Reason, RouteStep, Service, SourceStatus, StepKind,
)

# -- headers ------------------------------------------------------------------------------


def test_environment_as_asterisk_sends_it():
    lines = [
        "agi_network: yes",
        "agi_network_script: route",
        "agi_request: agi://127.0.0.1:4573/route",
        "agi_channel: PJSIP/trunk-00000001",
        "agi_uniqueid: 1718000000.42",
        "agi_callerid: +79161234567",
        "agi_calleridname: Алёна",  # UTF-8 names are fine
        "agi_rdnis: unknown",
        "agi_accountcode: ",  # empty value: "key: " then newline
        "",
    ]
    headers = parse_headers(lines)
    assert headers["agi_network_script"] == "route"
    assert headers["agi_uniqueid"] == "1718000000.42"
    assert headers["agi_calleridname"] == "Алёна"
    assert headers["agi_accountcode"] == ""


@pytest.mark.parametrize("line", [
    "GET / HTTP/1.1",
    "Host: example.org",
    "agi_x",  # no colon
    "AGI_UPPER: 1",
    ": value",
])
def test_malformed_header_lines_are_refused(line):
    with pytest.raises(AgiProtocolError):
        HeaderParser().feed(line)


def test_empty_environment_is_refused():
    with pytest.raises(AgiProtocolError):
        parse_headers([""])


def test_environment_must_end_with_an_empty_line():
    with pytest.raises(AgiProtocolError):
        parse_headers(["agi_network: yes"])


def test_too_many_header_lines():
    lines = [f"agi_arg_{i}: x" for i in range(MAX_HEADER_LINES + 1)] + [""]
    with pytest.raises(AgiProtocolError, match="too many"):
        parse_headers(lines)


def test_decode_line_bounds_and_terminators():
    assert decode_line(b"agi_network: yes\r\n") == "agi_network: yes"
    assert decode_line(b"\n") == ""
    assert decode_line(b"agi_calleridname: \xff\n") == "agi_calleridname: \ufffd"
    with pytest.raises(AgiProtocolError, match="too long"):
        decode_line(b"a" * (MAX_LINE_BYTES + 2) + b"\n")
    with pytest.raises(AgiProtocolError, match="truncated"):
        decode_line(b"agi_network: yes")
    with pytest.raises(AgiProtocolError):
        decode_line(b"agi_x: a\x00b\n")
    with pytest.raises(AgiProtocolError):
        decode_line(b"agi_x: a\rb\n")


@pytest.mark.parametrize(("headers", "expected"), [
    ({"agi_network_script": "route"}, "route"),
    ({"agi_network_script": "route?x=1"}, "route"),
    ({"agi_request": "agi://127.0.0.1:4573/route"}, "route"),
    ({"agi_request": "agi://127.0.0.1/route?foo=bar"}, "route"),
    ({"agi_request": "agi://127.0.0.1:4573/"}, None),
    ({"agi_request": "/usr/share/asterisk/agi-bin/x.sh"}, None),
    ({"agi_network_script": "../etc/passwd"}, None),
    ({"agi_network_script": "a/b"}, None),
    ({"agi_request": "agi://[bad"}, None),
    ({}, None),
])
def test_script_name(headers, expected):
    assert script_name(headers) == expected


# -- responses ----------------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "expected"), [
    (["200 result=1"], AgiResponse(200, "1")),
    (["200 result=0"], AgiResponse(200, "0")),
    (["200 result=-1"], AgiResponse(200, "-1")),
    (["200 result=1 (some data)"], AgiResponse(200, "1", "some data")),
    (["200 result= (timeout)"], AgiResponse(200, "", "timeout")),
    (["200 result=1 (speech) endpos=1234"], AgiResponse(200, "1", "speech", "endpos=1234")),
    (["100 result=0 Trying...", "200 result=0"], AgiResponse(200, "0")),
])
def test_success_responses(lines, expected):
    assert parse_response(lines) == expected


def test_hangup_line():
    with pytest.raises(AgiHangup):
        ResponseParser().feed("HANGUP")


def test_dead_channel():
    with pytest.raises(AgiDeadChannel):
        ResponseParser().feed("511 Command Not Permitted on a dead channel or intercept routine")


def test_invalid_command():
    with pytest.raises(AgiInvalidCommand):
        ResponseParser().feed("510 Invalid or unknown command")


def test_single_line_usage_error():
    with pytest.raises(AgiUsageError, match="not available"):
        ResponseParser().feed("520 Invalid command syntax.  Proper usage not available.")


def test_multi_line_usage_error_carries_the_usage_text():
    parser = ResponseParser()
    assert parser.feed("520-Invalid command syntax.  Proper usage follows:") is None
    assert parser.feed("Usage: SET VARIABLE <variablename> <value>") is None
    with pytest.raises(AgiUsageError, match="SET VARIABLE"):
        parser.feed("520 End of proper usage.")


def test_usage_end_marker_glued_to_the_last_usage_line():
    # res_agi prints the usage text without forcing a newline before the end marker
    with pytest.raises(AgiUsageError, match="successful"):
        parse_response(["520-Invalid command syntax.  Proper usage follows:",
                        "Answers channel. Returns 0 if successful.520 End of proper usage."])


def test_endless_usage_text_is_bounded():
    parser = ResponseParser()
    parser.feed("520-Invalid command syntax.  Proper usage follows:")
    with pytest.raises(AgiProtocolError):
        for _ in range(1000):
            parser.feed("more usage")


@pytest.mark.parametrize("line", ["", "garbage", "200", "200 result", "999 what", "20 result=1"])
def test_malformed_responses(line):
    with pytest.raises(AgiProtocolError):
        ResponseParser().feed(line)


# -- variables ----------------------------------------------------------------------------

ENDPOINTS = {"mgr1": "PJSIP/mgr1", "sup1": "PJSIP/sup1", "evil": 'PJSIP/x,20,U(${EVIL})'}


def manager_decision(target: str = "mgr1") -> Decision:
    return Decision(
        service=Service.MANAGER, priority=5,
        route=(RouteStep(StepKind.MANAGER, target, 20, on_busy=1, on_no_answer=1, on_unavailable=1),
               RouteStep(StepKind.SUPERVISOR, "sup1", 15, on_busy=2, on_no_answer=2, on_unavailable=2),
               RouteStep(StepKind.QUEUE, "operators")),
        reasons=(Reason("case_holder", "the case holder answers"),))


def profile() -> CallerProfile:
    return CallerProfile(
        number="+79161234567",
        history=HistoryFacts(status=SourceStatus.OK, cls=HistoryClass.CALLBACK,
                             callback_kind=CallbackKind.MISSED, owner="mgr1"),
        crm=CrmFacts(status=SourceStatus.OK, record=CrmRecord(client_id="c1", responsible="mgr2")))


def test_decision_variables():
    values = decision_variables(profile(), manager_decision(), ENDPOINTS.get)
    assert values == {
        "CASELINE_CLASS": "callback",
        "CASELINE_CALLBACK_KIND": "missed",
        "CASELINE_OWNER": "mgr1",  # a callback goes to the manager who called
        "CASELINE_SERVICE": "manager",
        "CASELINE_PRIORITY": "5",
        "CASELINE_TARGET": "PJSIP/mgr1",
        "CASELINE_RING_TIMEOUT": "20",
        "CASELINE_ROUTE": "manager:mgr1:20|supervisor:sup1:15|queue:operators",
        "CASELINE_QUEUE": "operators",
        "CASELINE_PLAYBACK": "",
        "CASELINE_STATUS": "ok",
    }
    assert list(values) == list(NAMES)
    assert list(values)[-1] == "CASELINE_STATUS"  # written last


def test_a_target_that_is_not_a_plain_endpoint_is_dropped():
    values = decision_variables(profile(), manager_decision("evil"), ENDPOINTS.get)
    # an undialable manager is treated as unavailable: the next person in the route
    assert values["CASELINE_TARGET"] == "PJSIP/sup1"
    values = decision_variables(profile(), manager_decision("unknown"), lambda _: None)
    assert values["CASELINE_TARGET"] == "" and values["CASELINE_RING_TIMEOUT"] == ""


def test_self_service_playback_and_terminal_steps():
    decision = Decision(Service.SELF_SERVICE, 0, (
        RouteStep(StepKind.PLAYBACK, "custom/delivery-info", on_busy=None),
        RouteStep(StepKind.HANGUP, ""),
        RouteStep(StepKind.MANAGER, "mgr1", 20),  # after a terminal step: unreachable
    ), ())
    values = decision_variables(CallerProfile(number=None), decision, ENDPOINTS.get)
    assert values["CASELINE_PLAYBACK"] == "custom/delivery-info"
    assert values["CASELINE_TARGET"] == ""
    assert values["CASELINE_QUEUE"] == ""
    assert values["CASELINE_CLASS"] == "new"


def test_route_is_compact_and_bounded():
    steps = tuple(RouteStep(StepKind.MANAGER, f"manager{i:03d}", 20) for i in range(40))
    route = compact_route(Decision(Service.MANAGER, 0, steps, ()))
    assert len(route) <= 200
    assert all(re.fullmatch(r"manager:manager\d{3}:20", part) for part in route.split("|"))


def test_fallback_variables():
    values = fallback_variables()
    assert set(values) == set(NAMES)
    assert values["CASELINE_STATUS"] == "fallback"
    assert values["CASELINE_SERVICE"] == "operator"
    assert values["CASELINE_QUEUE"] == "operators"
    assert values["CASELINE_TARGET"] == ""


@pytest.mark.parametrize("hostile", [
    '"; EXEC System rm', "a\\b", "x\ny", "${SHELL(id)}", "$[1+1]", "a,b", "a(b)", "a;b", "a&b",
    "\x00", "'quoted'", "a`b`",
])
def test_clean_removes_everything_dangerous(hostile):
    value = clean(hostile)
    assert re.fullmatch(r"[A-Za-z0-9_+:|./@ -]*", value)


def test_set_variable_command_quotes_the_cleaned_value():
    assert set_variable_command("CASELINE_OWNER", 'mgr1" X') == 'SET VARIABLE CASELINE_OWNER "mgr1 X"'
    assert set_variable_command("CASELINE_TARGET", "") == 'SET VARIABLE CASELINE_TARGET ""'
    assert len(set_variable_command("CASELINE_ROUTE", "x" * 5000)) < 260
    with pytest.raises(ValueError):
        set_variable_command("PATH", "x")


@pytest.mark.parametrize(("raw", "expected"), [
    ("+79161234567", "+79161234567"),
    (" 8 (916) 123-45-67 ", "8 (916) 123-45-67"),
    ("unknown", None), ("", None), (None, None), ("Anonymous", None),
    ('"Evil" <sip:x@y>', None), ("${EXTEN}", None), ("1" * 65, None), ("123\n456", None),
])
def test_sanitize_caller_id(raw, expected):
    assert sanitize_caller_id(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("1718000000.42", "1718000000.42"), ("", None), (None, None), ("a b", None), ("x" * 65, None),
])
def test_sanitize_call_id(raw, expected):
    assert sanitize_call_id(raw) == expected
