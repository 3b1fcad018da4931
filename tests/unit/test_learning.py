"""Learning who talked and who holds the case from a call's CDRs (history/cdr.py learn_call).

Rows are shaped as Asterisk 22 writes them for each path (channel names, contexts, Local
halves of a transfer inside Caseline's bridge, FreePBX's Local queue members).
"""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from ari_app.core.learning import Role
from ari_app.core.models import Contact, Direction, Talk
from ari_app.history.cdr import LearningRules, learn_call, parse_cdr_rows, parse_row

T = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CLIENT = "+79990001122"
LAB = LearningRules(
    people={"mgr1": "mgr1", "mgr2": "mgr2", "mgr3": "mgr3", "sup1": "sup1", "op1": "op1", "op2": "op2"},
    roles={"mgr1": Role.MANAGER, "mgr2": Role.MANAGER, "mgr3": Role.MANAGER,
           "sup1": Role.SUPERVISOR, "op1": Role.OPERATOR, "op2": Role.OPERATOR},
    inbound_contexts=("inbound", "caseline-route", "operators", "caseline-agi"),
    people_contexts=("internal",), min_talk_s=10)


def row(channel: str, dstchannel: str, dcontext: str, billsec: int, *, src: str = CLIENT,
        dst: str = "s", after_s: int = 0, answered: bool = True, linkedid: str = "1765098000.1",
        uniqueid: str = "1765098000.1") -> str:
    out = io.StringIO()
    start = (T + timedelta(seconds=after_s)).strftime("%Y-%m-%d %H:%M:%S")
    csv.writer(out).writerow(["", src, dst, dcontext, "", channel, dstchannel, "Dial", "", start,
                              start if answered else "", start, billsec + 5, billsec if answered else 0,
                              "ANSWERED" if answered else "NO ANSWER", "DOCUMENTATION", uniqueid, "",
                              linkedid])
    return out.getvalue()


def learn(*lines: str, rules: LearningRules = LAB) -> tuple[str, Contact] | None:
    return learn_call([parse_row(next(csv.reader([line]))) for line in lines], rules)


def talks(*pairs: tuple[str, int]) -> tuple[Talk, ...]:
    return tuple(Talk(p, s) for p, s in pairs)


TRUNK = "PJSIP/trunk-00000010"


def test_blind_transfer_from_the_queue_makes_the_manager_the_holder() -> None:
    number, contact = learn(row(TRUNK, "PJSIP/op1-00000011", "operators", 40),
                            row(TRUNK, "PJSIP/mgr2-00000012", "internal", 180, dst="mgr2", after_s=45))
    assert number == CLIENT
    assert contact.talks == talks(("op1", 40), ("mgr2", 180))
    assert (contact.manager, contact.answered, contact.duration_s) == ("mgr2", True, 220)


def test_a_queue_record_rewritten_to_the_manager_is_still_the_clients_call() -> None:
    # attended transfer: Asterisk rewrites the queue call's CDR to the manager, context internal
    _, contact = learn(row(TRUNK, "PJSIP/mgr2-00000012", "internal", 120, dst="mgr2"))
    assert contact.manager == "mgr2" and contact.talks == talks(("mgr2", 120))


def test_an_operator_who_kept_the_call_talked_but_holds_nothing() -> None:
    _, contact = learn(row(TRUNK, "PJSIP/op1-00000011", "operators", 300))
    assert contact.talks == talks(("op1", 300)) and contact.manager is None and contact.answered


def test_a_transfer_inside_caselines_bridge_is_followed_through_the_local_channel() -> None:
    local = "Local/mgr3@internal-0000001a"
    _, contact = learn(
        row(TRUNK, "PJSIP/mgr1-00000013", "caseline-route", 30),
        row(TRUNK, f"{local};1", "caseline-route", 200, after_s=31),
        row(f"{local};2", "PJSIP/mgr3-00000014", "internal", 150, src="", dst="mgr3", after_s=31,
            uniqueid="1765098031.5"))
    assert contact.talks == talks(("mgr1", 30), ("mgr3", 150)) and contact.manager == "mgr3"


def test_a_transfer_target_who_never_answers_is_no_holder() -> None:
    local = "Local/mgr3@internal-0000001a"
    _, contact = learn(
        row(TRUNK, "PJSIP/mgr1-00000013", "caseline-route", 30),
        row(TRUNK, f"{local};1", "caseline-route", 25, after_s=31),  # the Local rang mgr3 25 s
        row(f"{local};2", "PJSIP/mgr3-00000014", "internal", 0, src="", dst="mgr3", after_s=31,
            answered=False, uniqueid="1765098031.5"))
    assert contact.talks == talks(("mgr1", 30)) and contact.manager == "mgr1"


def test_a_three_second_talk_makes_no_holder() -> None:
    _, contact = learn(row(TRUNK, "PJSIP/mgr1-00000013", "caseline-route", 3))
    assert contact.talks == talks(("mgr1", 3)) and contact.manager is None and contact.answered


def test_a_manager_bounced_back_to_keeps_the_last_real_talk() -> None:
    _, contact = learn(row(TRUNK, "PJSIP/mgr2-00000012", "caseline-route", 200),
                       row(TRUNK, "PJSIP/mgr3-00000014", "internal", 4, after_s=201))
    assert contact.manager == "mgr2"


def test_a_fastagi_routed_call_dialled_by_the_dialplan() -> None:
    _, contact = learn(row(TRUNK, "PJSIP/mgr1-00000013", "caseline-agi", 60, dst="s"))
    assert contact.manager == "mgr1" and contact.talks == talks(("mgr1", 60))


def test_a_missed_call_has_no_talk() -> None:
    _, contact = learn(row(TRUNK, "PJSIP/mgr1-00000013", "caseline-route", 0, answered=False))
    assert contact == Contact(T, Direction.INBOUND, False, None, 0)


def test_an_outbound_call_by_a_manager_and_not_by_an_operator() -> None:
    out = row("PJSIP/mgr3-00000020", "PJSIP/trunk-00000021", "internal", 42, src="mgr3", dst="79990001122")
    assert learn(out) == (CLIENT, Contact(T, Direction.OUTBOUND, True, "mgr3", 42))
    assert learn(out.replace("PJSIP/mgr3-", "PJSIP/op1-")) is None


def test_calls_between_colleagues_and_hostile_rows_teach_nothing() -> None:
    assert learn(row("PJSIP/mgr1-00000030", "PJSIP/mgr2-00000031", "internal", 60, src="mgr1",
                     dst="mgr2")) is None
    assert learn(row(TRUNK, "PJSIP/mgr1-00000013", "caseline-route", 60,
                     src="+7999\r\nEvent: Cdr")) is None  # not a number: no history key
    assert learn(row(TRUNK, "PJSIP/mgr1-00000013", "elsewhere", 60)) is None  # not a client context


FREEPBX = LearningRules(
    people={"101": "ivanov", "102": "petrov", "200": "alena"},
    roles={"ivanov": Role.MANAGER, "petrov": Role.MANAGER, "alena": Role.OPERATOR},
    inbound_contexts=("from-trunk", "from-pstn", "ext-queues"),
    people_contexts=("from-internal",), min_talk_s=10)


def test_freepbx_master_csv_queue_answer_then_blind_transfer() -> None:
    """Master.csv (no linkedid): the trunk channel's rows share its uniqueid."""
    trunk = "PJSIP/trunk-0000004a"
    lines = [
        row(trunk, "Local/200@from-queue-0000004b;1", "ext-queues", 35, dst="400", linkedid="",
            uniqueid="1765100000.74"),
        row(trunk, "PJSIP/102-0000004d", "from-internal", 240, dst="102", after_s=36, linkedid="",
            uniqueid="1765100000.74"),
        row("PJSIP/101-0000004e", "PJSIP/trunk-0000004f", "from-internal", 12, src="101",
            dst="89990001122", after_s=600, linkedid="", uniqueid="1765100600.80"),
    ]
    learned = list(parse_cdr_rows(lines, rules=FREEPBX))
    assert learned[0] == (CLIENT, Contact(T, Direction.INBOUND, True, "petrov", 275,
                                          talks(("alena", 35), ("petrov", 240))))
    assert learned[1][1].direction is Direction.OUTBOUND and learned[1][1].manager == "ivanov"


def test_records_posted_in_any_order_find_the_clients_channel_by_linkedid() -> None:
    local = "Local/mgr3@internal-0000001a"
    _, contact = learn(
        row(f"{local};2", "PJSIP/mgr3-00000014", "internal", 150, src="", dst="mgr3", after_s=31,
            uniqueid="1765098031.5"),
        row(TRUNK, "PJSIP/mgr1-00000013", "caseline-route", 30),
        row(TRUNK, f"{local};1", "caseline-route", 200, after_s=31))
    assert contact.talks == talks(("mgr1", 30), ("mgr3", 150))


def test_a_busy_transfer_target_seen_only_through_its_local_channel_is_no_talk() -> None:
    """Master.csv without linkedid: the Local's far half is another uniqueid; the client's
    record with the Local shows 0 billable seconds when its target never answered."""
    _, contact = learn(
        row(TRUNK, "PJSIP/mgr1-00000013", "caseline-route", 30, linkedid=""),
        row(TRUNK, "Local/mgr3@internal-0000001a;1", "caseline-route", 0, after_s=31, linkedid=""),
        row(TRUNK, "PJSIP/sup1-00000015", "caseline-route", 40, after_s=31, linkedid=""))
    assert contact.talks == talks(("mgr1", 30), ("sup1", 40)) and contact.manager == "sup1"


def test_a_person_who_answered_and_hung_up_at_once_still_answered() -> None:
    """Billable seconds round down: a 0.3 s talk is answered (not a missed call), no holder."""
    _, contact = learn(row(TRUNK, "PJSIP/mgr1-00000013", "caseline-route", 0))
    assert contact.answered and contact.talks == talks(("mgr1", 0)) and contact.manager is None
