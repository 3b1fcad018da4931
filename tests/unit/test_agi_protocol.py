"""The pure AGI wire parser and what the server writes (no sockets)."""
from __future__ import annotations


import pytest

from agi.protocol import (
    MAX_HEADER_LINES, MAX_LINE_BYTES, AgiDeadChannel, AgiHangup, AgiInvalidCommand,
    AgiProtocolError, AgiResponse, AgiUsageError, HeaderParser, ResponseParser, decode_line,
    parse_headers, parse_response, script_name,
)
from agi.variables import (
    fallback_program, route_command, sanitize_call_id, sanitize_caller_id, sanitize_trail,
    set_variable_command, shed_program,
)
from ari_app.core.admission import ShedTarget
from ari_app.core.models import CallerProfile, Decision, Reason, RouteStep, Service, StepKind
from ari_app.core.route_program import compile_route

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


# -- what the server writes ------------------------------------------------------------------

ENDPOINTS = {"mgr1": "PJSIP/mgr1", "sup1": "PJSIP/sup1", "evil": 'PJSIP/x,20,U(${EVIL})'}


def manager_decision(target: str = "mgr1") -> Decision:
    return Decision(
        service=Service.MANAGER, priority=5,
        route=(RouteStep(StepKind.MANAGER, target, 20, on_busy=1, on_no_answer=1, on_unavailable=1),
               RouteStep(StepKind.SUPERVISOR, "sup1", 15, on_busy=2, on_no_answer=2, on_unavailable=2),
               RouteStep(StepKind.QUEUE, "operators")),
        reasons=(Reason("case_holder", "the case holder answers"),))


def test_the_whole_route_is_one_command():
    program = compile_route(manager_decision(), CallerProfile("+79161234567"), endpoint_of=ENDPOINTS.get)
    assert route_command(program) == ('SET VARIABLE CASELINE_ROUTE '
                                      '"ok:5::1|m:PJSIP/mgr1:20:1:1:1|m:PJSIP/sup1:15:2:2:2|q:operators"')


def test_an_endpoint_outside_the_whitelist_is_never_sent():
    program = compile_route(manager_decision("evil"), CallerProfile(None), endpoint_of=ENDPOINTS.get)
    assert route_command(program).endswith('"ok:5::1|m::20:1:1:1|m:PJSIP/sup1:15:2:2:2|q:operators"')


def test_fallback_and_shed_answers():
    assert route_command(fallback_program()) == 'SET VARIABLE CASELINE_ROUTE "fallback:0::1|q:operators"'
    assert shed_program(ShedTarget(20, "benchq")).encode() == "shed:20::1|q:benchq"
    assert shed_program(ShedTarget(20, "bad queue")).encode() == "shed:20::1|q:"  # the dialplan's default


@pytest.mark.parametrize(("name", "value"), [
    ("CASELINE_ROUTE", 'ok:1::1|q:x"; EXEC System rm'), ("CASELINE_ROUTE", "ok|q:a\\b"),
    ("CASELINE_ROUTE", "ok|q:${SHELL(id)}"), ("CASELINE_ROUTE", "ok|q:a,b"), ("CASELINE_ROUTE", "ok|q:a b"),
    ("CASELINE_ROUTE", "x\ny"), ("CASELINE_ROUTE", ""), ("CASELINE_ROUTE", "q" * 2001),
    ("CASELINE_FILED", "a b"), ("CASELINE_STATUS", "OK!"), ("PATH", "x"),
])
def test_a_value_outside_its_whitelist_is_refused_not_sent(name, value):
    with pytest.raises(ValueError):
        set_variable_command(name, value)


@pytest.mark.parametrize(("raw", "expected"), [
    ("0p.1=2.", "0p.1=2."), ("", ""), (None, ""), ("0p;1", ""), ("x" * 241, ""),
])
def test_sanitize_trail(raw, expected):
    assert sanitize_trail(raw) == expected


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
