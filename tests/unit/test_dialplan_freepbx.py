"""The FreePBX recipe (dialplan/caseline-freepbx.conf) in a FreePBX-like layout
(dialplan/freepbx-standin.conf: from-trunk -> customdests -> the Custom Destination ->
ext-queues), walked in the dialplan interpreter; the lab places real calls through it
(tests/lab/test_agi_route_lab.py)."""
from __future__ import annotations

import re

from tests.support.agi_walk import DIALPLAN, walking
from tests.support.dialplan_sim import Call, Dialplan
from tests.support.fake_world import A_CLIENT, NEW_CALLER

FREEPBX = ("inbound", "9200")  # the lab's trunk entry for the layout


async def test_a_client_is_routed_by_caseline_and_queued_by_freepbx() -> None:
    async with walking() as walk:
        call = await walk.call(A_CLIENT, FREEPBX, phones={"PJSIP/mgr1": "busy", "PJSIP/sup1": "busy"})
    # people rung as the route says, the queue run by FreePBX's ext-queues with our priority
    assert [e for e in call.events if e[0] == "dial"] == [("dial", "PJSIP/mgr1", "30", ""),
                                                         ("dial", "PJSIP/sup1", "20", "")]
    assert [e for e in call.events if e[0] == "queue"] == [("queue", "operators", "70")]
    assert call.vars["QUEUENUM"] == "operators"  # ext-queues ran it, not [operators]
    assert call.userfield == "caseline-agi:ok:0b.1b.2q."


async def test_caseline_away_freepbx_still_queues_the_call() -> None:
    async with walking() as walk:
        port = walk.server.port
    call = Call(Dialplan.load(DIALPLAN), caller=NEW_CALLER,
                globals={"CASELINE_AGI_URL": f"agi://127.0.0.1:{port}"})
    await call.run(*FREEPBX)
    assert [e for e in call.events if e[0] == "queue"] == [("queue", "operators", "0")]
    assert call.vars["QUEUENUM"] == "operators"


async def test_a_hostile_caller_id_is_cleaned_before_caseline_sees_it() -> None:
    async with walking() as walk:
        call = await walk.call("+7916\r\n1234567", FREEPBX)
    assert call.callerid["num"] == "+79161234567"


def test_the_recipe_cleans_the_caller_id_as_the_shipped_entry_does() -> None:
    """FreePBX has no [caseline-clean-callerid]: the recipe carries the same checks."""
    def checks(text: str) -> list[str]:
        return re.findall(r"(REGEX\(.*?\)\}|FILTER\(.*?\)\})", text)

    shipped = (DIALPLAN / "extensions.conf").read_text()
    clean = shipped.split("[caseline-clean-callerid]", 1)[1].split("\n[", 1)[0]
    recipe = (DIALPLAN / "caseline-freepbx.conf").read_text().split("[caseline-freepbx]", 1)[1]
    assert checks(clean) and checks(clean) == checks(recipe)


def test_the_recipe_needs_nothing_of_the_shipped_extensions_conf() -> None:
    """A FreePBX site installs caseline-agi.conf and caseline-freepbx.conf only: every context
    they lead to is theirs or FreePBX's (ext-queues) or reached only without the hook."""
    plan = Dialplan()
    for name in ("caseline-agi.conf", "caseline-freepbx.conf"):
        plan._read(DIALPLAN, name, optional=False)
    own = set(plan.contexts)
    targets = set()
    for context in ("caseline-freepbx", "caseline-agi", "caseline-agi-ask", "caseline-agi-end"):
        for steps in plan.contexts[context].values():
            for step in steps.values():
                targets.update(re.findall(r"(?:Goto|Gosub|GotoIf)\((?:[^?]*\?)?([a-z-]+),", step.app + "(" + step.data))
                targets.update(re.findall(r"[?:]([a-z][a-z-]+),[a-zA-Z0-9_]+,1", step.data))
                targets.update(re.findall(r"hangup_handler_push\)=([a-z-]+),", step.data))
    # [operators] is the plain site's queue, reached only when CASELINE_QUEUE_GOTO is unset
    assert targets - own <= {"operators"}, targets - own
