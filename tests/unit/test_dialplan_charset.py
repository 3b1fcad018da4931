"""One character set for the names routing.yaml hands the dialplan (endpoints, queues,
mailboxes, sounds, music classes): every REGEX and FILTER the shipped dialplan applies to
them, read out of dialplan/*.conf and run as Asterisk runs them (tests/support/dialplan_sim.py
ports FILTER and REGEX), accepts exactly what `caseline check-config` accepts.
Before, routing.yaml took `PJSIP/mgr_1` and the dialplan's REGEX refused it, and FILTER
dropped the `-` of `vip-clients`."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from ari_app.core.policy import AsteriskName, Endpoint, Mailbox, Sound
from tests.support.asterisk_text import filter_chars, regex_match

DIALPLAN = "\n".join(p.read_text() for p in sorted((Path(__file__).resolve().parents[2] / "dialplan").glob("*.conf")))
REGEXES = re.findall(r'\$\{REGEX\("([^"]*)" \$\{([A-Z_]+)\}\)\}', DIALPLAN)
FILTERS = re.findall(r"\$\{FILTER\(([^,]*),\$\{([A-Z_]+)\}\)\}", DIALPLAN)

# the variables that carry a name of each kind, in the dialplan
KINDS = {
    "endpoint": ({"CL_EP"}, TypeAdapter(Endpoint)),
    "queue": ({"CASELINE_QUEUE", "QUEUE_NAME", "OPERATORS_QUEUE"}, TypeAdapter(AsteriskName)),
    "mailbox": ({"CL_MAILBOX", "CASELINE_MAILBOX"}, TypeAdapter(Mailbox)),
    "sound": ({"CL_SOUND", "CL_PROMPT", "CL_INVALID"}, TypeAdapter(Sound)),
    "moh": ({"CL_MOH"}, TypeAdapter(AsteriskName)),
}
# checked variables that hold no name: numbers, digits, the route's own syntax
NOT_NAMES = {"CL_HEAD", "CL_NEXT", "CL_OPTIONS", "CL_DIGITS", "CASELINE_FILED", "CASELINE_PRIORITY",
             "CASELINE_SHED_PRIORITY", "CASELINE_AGI_DEADLINE", "EXTEN"}
KIND_OF = {var: kind for kind, (variables, _) in KINDS.items() for var in variables}
NAME_REGEXES = [(p, v) for p, v in REGEXES if v in KIND_OF]
NAME_FILTERS = [(a, v) for a, v in FILTERS if v in KIND_OF]
# every printable ASCII character, and a few that are not
CHARACTERS = [chr(c) for c in range(0x20, 0x7f)] + ["\t", "\n", "\x00", "é", "д", "\u202e"]
SHAPES = {  # names built around one character: in a name, at its start, in each part
    "endpoint": ["PJSIP/a{c}b", "PJSIP/{c}", "P{c}SIP/mgr1"],
    "queue": ["a{c}b", "{c}"],
    "mailbox": ["a{c}b", "1000@a{c}b", "{c}@default"],
    "sound": ["a{c}b", "custom/a{c}b", "{c}/x"],
    "moh": ["a{c}b"],
}
STRUCTURE = {  # whole names whose shape matters
    "endpoint": ["PJSIP/mgr_1", "PJSIP/101", "PJSIP/vip-desk", "mgr1", "PJSIP/", "/mgr1", "PJSIP/a/b",
                 "PJSIP/1000@sales-dept", "PJSIP/mgr1,,U(x)"],
    "queue": ["vip-clients", "ops_2", "", "a b"],
    "mailbox": ["1000@sales-dept", "1000", "a@b@c", "@default", "1000@"],
    "sound": ["custom/closed", "demo-thanks", "/x", "x/", "a//b", "../x"],
    "moh": ["default", "on-hold_2", ""],
}


def accepted(kind: str, name: str) -> bool:
    try:
        KINDS[kind][1].validate_python(name)
    except ValidationError:
        return False
    return True


def names(kind: str) -> list[str]:
    return [shape.format(c=c) for c in CHARACTERS for shape in SHAPES[kind]] + STRUCTURE[kind]


def test_the_dialplan_checks_every_kind_of_name_and_each_check_is_classified() -> None:
    checked = {var for _, var in REGEXES + FILTERS}
    assert checked - NOT_NAMES - set(KIND_OF) == set(), "a check of a variable this test does not know"
    for kind, (variables, _) in KINDS.items():
        assert checked & variables, f"no check of a {kind} in the dialplan"
    assert ("0-9a-zA-Z_\\-", "CASELINE_QUEUE") in FILTERS  # [operators], `\-`: a literal hyphen


@pytest.mark.parametrize(("pattern", "variable"), NAME_REGEXES)
def test_each_regex_accepts_what_routing_yaml_accepts(pattern: str, variable: str) -> None:
    kind = KIND_OF[variable]
    differ = [name for name in names(kind) if regex_match(pattern, name) != accepted(kind, name)]
    assert differ == [], f"REGEX {pattern} on {variable} and routing.yaml disagree about {differ}"


@pytest.mark.parametrize(("allowed", "variable"), NAME_FILTERS)
def test_each_filter_keeps_exactly_routing_yamls_characters(allowed: str, variable: str) -> None:
    kind = KIND_OF[variable]
    for name in names(kind):
        if accepted(kind, name):
            assert filter_chars(allowed, name) == name, f"FILTER({allowed}) mangles {name!r}"
    # a character no name of this kind may hold is dropped
    for c in CHARACTERS:
        if not any(accepted(kind, shape.format(c=c)) for shape in SHAPES[kind]):
            assert filter_chars(allowed, c) == "" or c == "@", f"FILTER({allowed}) keeps {c!r}"


def test_filter_needs_the_backslash_for_a_hyphen() -> None:
    """Why `\\-`: without it the hyphen of `vip-clients` is gone (the port is faithful)."""
    assert filter_chars("0-9a-zA-Z_-", "vip-clients") == "vipclients"
    assert filter_chars("0-9a-zA-Z_\\-", "vip-clients") == "vip-clients"
