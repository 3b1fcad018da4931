"""The dialplan checker (pure); `caseline dialplan reload` is tests/unit/test_dialplan_reload.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.ops.dialplan_check import check_dialplan, strip_comment, unbalanced
from ari_app.ops.dialplan_reload import read_dialplan_dir

PROJECT_DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan"

GOOD = b"""[general]
static = yes

[globals]
CASELINE_APP = caseline

#include "extra.conf"

[inbound]
exten => s,1,Goto(caseline-route,s,1)
exten => _[+0-9].,1,Goto(caseline-route,s,1) ; a comment
 same => n(label),Set(X=$[${Y} + 1])
 same => n,Set(Z=a\\;b)
include => extra
exten => 100,hint,PJSIP/mgr1
;-- a block
comment --;
[caseline-route]
exten => s,1,Stasis(caseline,inbound)
 same => n,Hangup
"""
EXTRA = b"[extra]\nexten => 9100,1,NoOp()\n"


def problems(text: bytes, extra: bytes = EXTRA) -> list[str]:
    return [str(p) for p in check_dialplan({"extensions.conf": text, "extra.conf": extra})]


# -- the checker --------------------------------------------------------------------------


def test_the_project_dialplan_passes():
    files = read_dialplan_dir(PROJECT_DIALPLAN)
    assert {"extensions.conf", "caseline-agi.conf"} <= set(files)
    assert check_dialplan(files) == []


def test_a_good_dialplan_passes():
    assert problems(GOOD) == []


@pytest.mark.parametrize(("text", "expected"), [
    (b"[inbound\nexten => s,1,NoOp()\n", "extensions.conf:1: malformed context header"),
    (b"inbound]\n", "extensions.conf:1: unbalanced ']'"),
    (b"exten => s,1,NoOp()\n", "extensions.conf:1: statement outside any context"),
    (b"[a]\nexten => s,1\n", "extensions.conf:2: exten => needs 'pattern,priority,application'"),
    (b"[a]\nexten => s,n,NoOp()\n", "extensions.conf:2: extension 's' starts with 'n'"),
    (b"[a]\nexten => s,2,NoOp()\n", "extensions.conf:2: extension 's' starts at priority 2"),
    (b"[a]\nexten => s,1,NoOp()\nexten => s,1,NoOp()\n", "extensions.conf:3: extension 's' priority 1 defined twice"),
    (b"[a]\nexten => s,x,NoOp()\n", "extensions.conf:2: priority 'x'"),
    (b"[a]\nsame => n,NoOp()\n", "extensions.conf:2: 'same =>' without an 'exten =>'"),
    (b"[a]\nexten => s,1,Dial(PJSIP/x,20\n", "extensions.conf:2: application line: unclosed '('"),
    (b"[a]\nexten => s,1,Set(A=${B)\n", "extensions.conf:2: application line: unexpected ')'"),
    (b"[a]\nexten => s,1,Set(A=$[1+1)]\n", "extensions.conf:2: application line: unexpected ')'"),
    (b"[a]\nexten => s,1,\n", "extensions.conf:2: expected an application"),
    (b"[a]\nexten => s,1,9Bad()\n", "extensions.conf:2: expected an application"),
    (b"[a]\nexten => _[0-9,1,NoOp()\n", "extensions.conf:2: pattern '_[0-9': unbalanced brackets"),
    (b"[a]\nexten -> s,1,NoOp()\n", "extensions.conf:2: expected 'exten =>'"),
    (b"[a]\nfoo => bar\n", "extensions.conf:2: expected 'exten =>'"),
    (b"[a]\ninclude => nowhere\n", "extensions.conf:2: include => nowhere: no such context"),
    (b"[a]\ninclude =>\n", "extensions.conf:2: include => needs a context name"),
    (b'#include "missing.conf"\n', "extensions.conf:1: #include 'missing.conf': no such file"),
    (b'#include "/etc/passwd"\n', "extensions.conf:1: #include '/etc/passwd': only files of this folder"),
    (b'#include "../x.conf"\n', "extensions.conf:1: #include '../x.conf': only files of this folder"),
    (b"#exec /bin/sh -c 'echo [x]'\n", "extensions.conf:1: #exec runs a shell command"),
    (b"#define X\n", "extensions.conf:1: unknown directive"),
    (b"[general]\nstatic yes\n", "extensions.conf:2: expected 'key = value' in [general]"),
    (b"[a]\n;-- never closed\n", "extensions.conf: block comment ';--' never closed"),
    (b"[a]\r\nexten => s,1,NoOp()\r\n", "extensions.conf:1: CR character"),
    (b"[a]\nexten => s,1,NoOp(\x00)\n", "extensions.conf:2: NUL byte"),
    (b"[a]\nexten => s,1,NoOp(\xff)\n", "extensions.conf:2: not UTF-8"),
])
def test_problems_name_file_line_and_reason(text, expected):
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_missing_entry_file_and_bad_names():
    found = [str(p) for p in check_dialplan({"other.conf": b"[a]\n", "bad name.conf": b""})]
    assert "extensions.conf: missing (Asterisk reads the dialplan from it)" in found
    assert any(p.startswith("bad name.conf: file name") for p in found)


def test_oversized_file():
    found = problems(b"[a]\n" + b";" * (1024 * 1024 + 10))
    assert any("larger than" in p for p in found)


def test_tryinclude_of_a_missing_file_is_fine():
    assert problems(b'#tryinclude "local.conf"\n[a]\nexten => s,1,NoOp()\n') == []


def test_contexts_may_continue_across_sections_and_files():
    text = b"[a]\nexten => s,1,NoOp()\n[b]\nexten => s,1,NoOp()\n[a]\nexten => s,n,NoOp()\n"
    assert problems(text) == []


def test_helpers():
    assert strip_comment("exten => s,1,NoOp(a\\;b) ; c") == "exten => s,1,NoOp(a\\;b) "
    assert unbalanced("Set(X=${A}$[1+(2)])") is None
    assert unbalanced("Set(X=\\(") == "unclosed '('"
