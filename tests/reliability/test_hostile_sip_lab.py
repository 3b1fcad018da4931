"""Hostile caller IDs sent through real SIP (issue 10.2): SIPp From headers -> Asterisk -> Caseline.

Each value goes percent-encoded into the From URI's user part (legal SIP escaping; Asterisk
decodes it into CALLERID(num)), once into the ARI route and once into the FastAGI route
(9100). Every call must still end somewhere (an operator answers), the process must live on,
and Redis may hold no key built from caller input.
"""
from __future__ import annotations

import urllib.parse

import pytest
from redis.asyncio import Redis

from labkit import sipp
from tests.support.decisions import wait_decision
from tests.support.hostile_inputs import HISTORY_KEY_RE, HOSTILE_CALLER_IDS, LEARNED_KEY_RE
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab

OTHER_KEYS = {b"caseline:decisions"}


def sip_user(raw: bytes) -> str:
    """The From user part: percent-encoded, bounded to what a SIP stack accepts (~900 B)."""
    return urllib.parse.quote_from_bytes(raw[:300], safe="") or "%20"


SIP_VALUES = list(HOSTILE_CALLER_IDS)  # percent-encoding leaves no ";" for SIPp's CSV


@pytest.mark.timeout(240)
@pytest.mark.parametrize("service", ["100", "9100"], ids=["ari", "agi"])
async def test_hostile_caller_ids_through_sip_end_somewhere_and_inject_nothing(
        routing, phones, tmp_path, service):
    start_phones(phones, tmp_path, op1="answer", op2="answer", mgr1="answer", mgr2="answer",
                 mgr3="answer", sup1="answer")
    users = [sip_user(h.raw) for h in SIP_VALUES]
    run = await sipp.place_calls(tmp_path, users, hold_ms=200, rate=4, timeout_s=200,
                                 service=service)
    events = await run.wait(timeout=220)

    answered = [n for n, e in events if e == "answered"]
    rejected = [(n, e) for n, e in events if e.startswith("rejected")]
    # Asterisk may refuse a From it cannot parse (a SIP-level 4xx) - that call never reached
    # us; everything it accepted must have been answered by a person.
    assert len(answered) + len(rejected) == len(users), events
    assert len(answered) >= len(users) * 0.8, rejected
    assert routing.process.poll() is None
    if service == "100":
        assert len(await wait_decision(routing, len(answered), timeout=20)) >= len(answered)
    redis = Redis.from_url(routing.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(count=1000)]
    finally:
        await redis.aclose()
    strange = [k for k in keys if k not in OTHER_KEYS and not HISTORY_KEY_RE.fullmatch(k)
               and not k.startswith(b"caseline:busy:") and not LEARNED_KEY_RE.fullmatch(k)]
    assert strange == []
