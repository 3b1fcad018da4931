"""Who the caller is, from real calls (issue 17 items 6 and 7).

- A Far East mobile (+7914...): phonenumbers gives it no time zone; the Russian numbering
  plan gives Asia/Vladivostok, so a call in the caller's night is urgent even while it is
  day in Moscow. The night window is set around the caller's current local time, so the
  test holds at any hour it runs.
- A branch's number (legal-entity directory): the call is identified as the parent company,
  whose CRM record names the responsible manager, who answers.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from labkit import sipp
from tests.support.decisions import wait_decision
from tests.support.phones import answered_by, start_phones

pytestmark = pytest.mark.lab

FAR_EAST_MOBILE = "+79140650000"  # DEF 914, Primorsky Krai in the shipped numbering plan
MOSCOW_MOBILE = "+79857770000"  # DEF 985: Moscow, the company's own zone
BRANCH = "+78432777123"  # legal_entities.yaml: Avtodom Service Kazan, parent Avtodom Holding (C-2001, mgr1)

_NOW_THERE = datetime.now(ZoneInfo("Asia/Vladivostok"))
# "night" for the caller: from the hour before theirs now to the end of the next hour. The
# module loads minutes before the test runs: at 12:57 this is 11:00-14:00; with 13:00 as
# its end, a run at 13:02 fell out of it (CI of 2026-12-08).
NIGHT_NOW_IN_VLADIVOSTOK = (f"{(_NOW_THERE - timedelta(hours=1)).hour:02d}:00-"
                            f"{(_NOW_THERE + timedelta(hours=2)).hour:02d}:00")


@pytest.mark.routing(rules__night_far_tz__night=NIGHT_NOW_IN_VLADIVOSTOK)
async def test_a_far_east_mobile_in_its_night_is_urgent_and_a_moscow_one_is_not(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, sup1="answer", op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [FAR_EAST_MOBILE], hold_ms=800)
    assert await run.wait() == [(FAR_EAST_MOBILE, "answered"), (FAR_EAST_MOBILE, "hung_up")]
    [far] = await wait_decision(routing, 1)
    # nobody's client: the supervisor on duty, at the top priority
    assert (far["priority"], far["answered_by"]) == ("100", "sup1"), far
    assert far["route"].startswith("supervisor:sup1")
    assert answered_by(phones, FAR_EAST_MOBILE) == ["sup1"]

    run = await sipp.place_calls(tmp_path, [MOSCOW_MOBILE], hold_ms=800)
    assert await run.wait() == [(MOSCOW_MOBILE, "answered"), (MOSCOW_MOBILE, "hung_up")]
    moscow = (await wait_decision(routing, 2))[0]
    assert moscow["route"] == "queue:operators" and moscow["priority"] != "100", moscow


async def test_a_branch_calls_and_its_parent_companys_manager_answers(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [BRANCH], hold_ms=800)
    assert await run.wait() == [(BRANCH, "answered"), (BRANCH, "hung_up")]

    [entry] = await wait_decision(routing, 1)
    assert entry["answered_by"] == "mgr1" and entry["route"].startswith("manager:mgr1"), entry
    assert answered_by(phones, BRANCH) == ["mgr1"]
