"""End to end: SIPp call -> Asterisk -> Stasis(caseline) -> answered -> prompt -> hung up.

Asserted from SIPp's log (the caller saw the answer and Asterisk's BYE) and from Asterisk's
own CDR, never from Caseline's logs.
"""
from __future__ import annotations

import pytest

from labkit import sipp
from tests.support.lab import new_cdr_rows
from tests.support.phones import answered_by, start_phones

pytestmark = pytest.mark.lab


async def test_call_enters_stasis_is_answered_hears_prompt_and_is_hung_up(caseline, tmp_path):
    number = "+79160000001"
    known = len(caseline.lab.cdr_rows(number))  # CDRs of earlier runs stay in Master.csv
    run = await sipp.place_calls(tmp_path, [number], hold_ms=20000)
    events = await run.wait(timeout=30)

    assert events == [(number, "answered"), (number, "remote_hangup")]
    last = (await new_cdr_rows(caseline.lab, number, known))[-1]
    assert last[7] == "Stasis" and last[8] == "caseline,inbound"
    assert last[14] == "ANSWERED"
    # hello-world lasts about 1.5 s: answered, played, then hung up by the app
    assert 1 <= int(last[12]) <= 5


async def test_without_the_app_the_dialplan_hands_the_call_to_operators(asterisk, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    number = "+79160000002"
    run = await sipp.place_calls(tmp_path, [number], hold_ms=500)
    events = await run.wait(timeout=30)

    assert events == [(number, "answered"), (number, "hung_up")]
    assert len(answered_by(phones, number)) == 1
