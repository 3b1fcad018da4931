"""The shipped dialplan's filters, with real calls (issue 19 items 3 and 4).

- Every entry context cleans the caller ID first: a From user carrying `%0D%0A` (which PJSIP
  decodes into CALLERID(num)) must not reach the CDRs, where cdr_manager would write it
  unescaped into an AMI event and forge a second `Event: Cdr`.
- FILTER keeps a literal hyphen (`\\-`): a queue or mailbox named `vip-clients` or
  `1000@sales-dept`, which routing.yaml accepts, is the one the call reaches.

Site-defined queues and mailboxes come from `queues_custom.conf` / `voicemail_custom.conf`
(included by the shipped files); the tests write them into the lab and reload the module
over ARI, then take them away again.
"""
from __future__ import annotations

import csv
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from labkit import sipp
from tests.support.callers import UNKNOWN, VIP_A_MGR1
from tests.support.decisions import wait_decision
from tests.support.eventually import eventually
from tests.support.phones import answered_by, start_phones

pytestmark = pytest.mark.lab

FORGED_NUMBER = "+79990004321"
# What cdr_manager would write for the crafted caller ID without the entry filter: the rest
# of the real event, a blank line, then an event of our making for another number.
CRAFTED = (b"+79161230001\r\n\r\nEvent: Cdr\r\nPrivilege: cdr,all\r\nSource: "
           + FORGED_NUMBER.encode() + b"\r\nDestination: mgr1\r\nDisposition: ANSWERED\r\n"
           b"BillableSeconds: 600\r\nUserField: x")


def all_cdr_rows(master_csv: Path) -> list[list[str]]:
    if not master_csv.exists():
        return []
    with master_csv.open(newline="", errors="replace") as f:
        return list(csv.reader(f))


async def test_a_crlf_caller_id_is_cleaned_at_the_entry_and_forges_no_cdr(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    known = len(all_cdr_rows(routing.lab.cdr_csv))
    user = urllib.parse.quote_from_bytes(CRAFTED, safe="")
    run = await sipp.place_calls(tmp_path, [user], hold_ms=500)
    events = await run.wait()
    assert [e for _, e in events] == ["answered", "hung_up"], events
    await wait_decision(routing, 1)

    def crafted_rows() -> list[list[str]]:
        rows = [r for r in all_cdr_rows(routing.lab.cdr_csv)[known:] if "79161230001" in "".join(r)]
        assert rows, "the crafted call's CDR"
        return rows

    rows = await eventually(crafted_rows, timeout=10)
    for row in rows:
        assert not any(c in field for field in row for c in "\r\n\x00"), row
    # what the phone was shown as the caller: the cleaned number
    assert any(n.startswith("+79161230001Event") for n in answered_numbers(phones))

    redis = Redis.from_url(routing.redis_url)
    try:
        assert not await redis.exists(f"caseline:hist:{FORGED_NUMBER}")
    finally:
        await redis.aclose()
    assert routing.process.poll() is None


def answered_numbers(phones: dict[str, sipp.Phone]) -> list[str]:
    return [number for phone in phones.values() for number, event in phone.events()
            if event == "answered"]


@pytest.fixture
def site_file(lab) -> Iterator:
    """Writes a site's own `*_custom.conf` into the lab and reloads its module; removed after."""
    written: list[tuple[Path, str]] = []

    def write(name: str, text: str, module: str) -> None:
        path = lab.root / "etc/asterisk" / name
        path.write_text(text)
        written.append((path, module))
        lab.ari("PUT", f"/asterisk/modules/{module}")

    yield write
    for path, module in written:
        path.unlink(missing_ok=True)
        lab.ari("PUT", f"/asterisk/modules/{module}")


@pytest.mark.routing(queues__operators__asterisk_queue="vip-clients")
async def test_a_queue_named_with_a_hyphen_is_the_queue_the_call_reaches(
        routing, phones, tmp_path, site_file):
    site_file("queues_custom.conf", "[vip-clients]\nstrategy = ringall\ntimeout = 15\n"
              "ringinuse = no\njoinempty = yes\nmember => PJSIP/op2,0,Operator 2\n", "app_queue.so")
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [UNKNOWN], hold_ms=800)
    assert await run.wait() == [(UNKNOWN, "answered"), (UNKNOWN, "hung_up")]

    assert answered_by(phones, UNKNOWN) == ["op2"]  # op1 is not in vip-clients
    [entry] = await wait_decision(routing, 1)
    assert entry["outcome"] == "queue"


@pytest.mark.routing(voicemail__general="1000@sales-dept", rules__classes__new__target="voicemail:general")
async def test_a_mailbox_context_with_a_hyphen_takes_the_message(routing, phones, tmp_path, site_file):
    site_file("voicemail_custom.conf", "[sales-dept]\n1000 => 4242,Sales desk\n", "app_voicemail.so")
    inbox = routing.lab.root / "var/spool/asterisk/voicemail/sales-dept/1000/INBOX"
    before = set(inbox.glob("msg*.txt")) if inbox.exists() else set()
    # "the person at extension 1000 is unavailable" and vm-intro take ~10 s; then the message
    run = await sipp.place_calls(tmp_path, [UNKNOWN], hold_ms=16000, speaks=True)
    assert await run.wait() == [(UNKNOWN, "answered"), (UNKNOWN, "hung_up")]

    def new_message() -> list[Path]:
        messages = set(inbox.glob("msg*.txt")) - before if inbox.exists() else set()
        assert messages, f"a new message in {inbox}"
        return sorted(messages)

    [message] = await eventually(new_message, timeout=10)
    assert "callerid=" in message.read_text()


@pytest.mark.routing(people__managers__mgr1__endpoint="PJSIP/mgr4")
async def test_a_phone_that_registers_but_is_not_registered_is_unavailable(
        routing, phones, tmp_path, site_file):
    """Issue 19.12: mgr1's phone is a softphone that registers (no static contact) and is
    not registered now. Asterisk refuses to create its channel (500); the route goes on
    as for `unavailable`: the A client's chain escalates to the supervisor."""
    site_file("pjsip_softphones.conf",
              "[mgr4](phone)\naors = mgr4\n\n[mgr4]\ntype = aor\nmax_contacts = 1\n"
              "remove_existing = yes\n", "res_pjsip.so")
    start_phones(phones, tmp_path, sup1="answer", op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=800)
    assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]

    assert answered_by(phones, VIP_A_MGR1) == ["sup1"]
    [entry] = await wait_decision(routing, 1)
    assert entry["steps"] == "mgr1:unavailable > sup1:answered"
    assert entry["answered_by"] == "sup1" and entry["fallbacks"] == "unavailable"
