from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from ari_app.core.models import Contact, Direction, Talk
from ari_app.history.cdr import CdrReport, endpoint_of, import_cdr_file, parse_cdr_rows
from ari_app.history.store import MemoryHistoryStore, RedisHistoryStore

MANAGERS = {"101": "ivanov", "102": "petrov"}
T = datetime(2024, 5, 1, 9, 15, 2, tzinfo=UTC)

# Master.csv as Asterisk writes it (cdr_csv, usegmtime=yes, loguniqueid, loguserfield).
GOOD = [
    # 1: inbound, answered by 101
    '"","89161234567","74950001122","inbound","""Ivan"" <89161234567>","PJSIP/trunk-0000001a",'
    '"PJSIP/101-0000001b","Dial","PJSIP/101,30","2024-05-01 09:15:02","2024-05-01 09:15:09",'
    '"2024-05-01 09:20:11",309,302,"ANSWERED","DOCUMENTATION","1714554902.26",""',
    # 2: inbound, nobody answered
    '"","+79031112233","74950001122","inbound","""+79031112233"" <+79031112233>","PJSIP/trunk-0000001c",'
    '"PJSIP/102-0000001d","Dial","PJSIP/102,30","2024-05-01 10:00:00","","2024-05-01 10:00:30",30,0,'
    '"NO ANSWER","DOCUMENTATION","1714557600.28",""',
    # 3: inbound, answered by the IVR only (no bridged channel): not served
    '"","79031112233","74950001122","inbound","","PJSIP/trunk-0000001e","","Playback","welcome",'
    '"2024-05-01 10:05:00","2024-05-01 10:05:00","2024-05-01 10:05:20",20,20,"ANSWERED","DOCUMENTATION",'
    '"1714557900.30",""',
    # 4: outbound by 102 to a client, answered
    '"","102","89161234567","from-internal","""Petrov"" <102>","PJSIP/102-0000001f","PJSIP/trunk-00000020",'
    '"Dial","PJSIP/89161234567@trunk,60","2024-05-01 11:00:00","2024-05-01 11:00:12",'
    '"2024-05-01 11:03:00",180,168,"ANSWERED","DOCUMENTATION","1714561200.31",""',
    # 5: internal call 101 -> 102: not a client call
    '"","101","102","from-internal","","PJSIP/101-00000021","PJSIP/102-00000022","Dial","PJSIP/102",'
    '"2024-05-01 11:30:00","2024-05-01 11:30:02","2024-05-01 11:31:00",60,58,"ANSWERED","DOCUMENTATION",'
    '"1714563000.33",""',
    # 6: withheld inbound caller: nothing to key history on
    '"","anonymous","74950001122","inbound","","PJSIP/trunk-00000023","","Hangup","","2024-05-01 12:00:00",'
    '"","2024-05-01 12:00:01",1,0,"NO ANSWER","DOCUMENTATION","1714564800.35",""',
    # 7-8: one queue call, two legs (102 rang out, 101 answered via Local channel): one contact
    '"","89995554433","74950001122","inbound","","PJSIP/trunk-00000024","Local/102@from-queue-00000025;1",'
    '"Queue","support","2024-05-01 13:00:00","","2024-05-01 13:00:20",20,0,"NO ANSWER","DOCUMENTATION",'
    '"1714568400.37",""',
    '"","89995554433","74950001122","inbound","","PJSIP/trunk-00000024","Local/101@from-queue-00000026;1",'
    '"Queue","support","2024-05-01 13:00:00","2024-05-01 13:00:25","2024-05-01 13:04:00",240,215,"ANSWERED",'
    '"DOCUMENTATION","1714568400.37",""',
    # 9: 16 columns (no uniqueid/userfield): outbound by an unknown endpoint: skipped
    '"","103","89161234567","from-internal","","PJSIP/103-00000027","PJSIP/trunk-00000028","Dial","x",'
    '"2024-05-01 14:00:00","","2024-05-01 14:00:10",10,0,"BUSY","DOCUMENTATION"',
]
BAD = [
    ('"","1","2","inbound"', "columns"),
    (GOOD[0].replace("2024-05-01 09:15:02", "01/05/2024 09:15"), "start"),
    (GOOD[0].replace(",309,302,", ",-5,302,"), "duration"),
    (GOOD[0].replace(",309,302,", ",999999,302,"), "duration"),
    (GOOD[0].replace(",309,302,", ",309,abc,"), "billsec"),
    (GOOD[0].replace(",309,302,", ",309,３０,"), "billsec"),  # full-width digits
    (GOOD[0].replace('"ANSWERED"', '"MAYBE"'), "disposition"),
    ("\x00\x01garbage ${SHELL(rm)} \xff", "columns"),
]


def talked(at: datetime, *talks: tuple[str, int]) -> Contact:
    """An inbound call in which these people talked; the last of them holds the case."""
    chain = tuple(Talk(person, seconds) for person, seconds in talks)
    return Contact(at, Direction.INBOUND, True, chain[-1].person, sum(s for _, s in talks), chain)


def parse(lines: list[str]) -> tuple[list[tuple[str, Contact]], CdrReport]:
    report = CdrReport()
    items = list(parse_cdr_rows([line + "\r\n" for line in lines], managers=MANAGERS, report=report))
    return items, report


def test_real_looking_rows() -> None:
    items, report = parse(GOOD)
    assert items == [
        ("+79161234567", talked(T, ("ivanov", 302))),
        # nobody talked: nobody holds the case (102 only rang)
        ("+79031112233", Contact(T.replace(hour=10, minute=0, second=0), Direction.INBOUND, False, None, 0)),
        ("+79031112233", Contact(T.replace(hour=10, minute=5, second=0), Direction.INBOUND, False, None, 0)),
        ("+79161234567", Contact(T.replace(hour=11, minute=0, second=0), Direction.OUTBOUND, True, "petrov", 168)),
        ("+79995554433", talked(T.replace(hour=13, minute=0, second=0), ("ivanov", 215))),
    ]
    assert (report.rows, report.inbound, report.outbound, report.skipped, report.bad) == (9, 4, 1, 3, 0)


def test_bad_rows_are_counted_with_line_and_reason() -> None:
    lines = [GOOD[0], *[b for b, _ in BAD], "", GOOD[3]]
    items, report = parse(lines)
    assert [n for n, _ in items] == ["+79161234567", "+79161234567"]  # parsing went on
    assert report.bad == len(BAD)
    assert [line for line, _ in report.problems] == list(range(2, 2 + len(BAD)))
    for (_, reason), (_, expected) in zip(report.problems, BAD, strict=True):
        assert expected in reason
    assert all(r.isascii() and r.isprintable() for _, r in report.problems)


def test_unreadable_csv_does_not_stop_the_parse() -> None:
    huge = '"' + "9" * 200_000 + '",' + GOOD[0]  # over csv's field size limit
    items, report = parse([huge, GOOD[0]])
    assert report.bad == 1 and "CSV" in report.problems[0][1]
    assert len(items) == 1


def test_inbound_contexts_are_configurable() -> None:
    report = CdrReport()
    items = list(parse_cdr_rows([GOOD[0]], managers=MANAGERS, inbound_contexts={"from-pstn"}, report=report))
    assert items == [] and report.skipped == 1


def test_endpoint_of() -> None:
    assert endpoint_of("PJSIP/101-0000002a") == "101"
    assert endpoint_of("SIP/alice-00000001") == "alice"
    assert endpoint_of("PJSIP/trunk-mts-0000002a") == "trunk-mts"
    assert endpoint_of("Local/101@from-queue-0000001f;1") == "101"
    for bad in ("PJSIP/101", "", "101", "DAHDI/1-1"):
        assert endpoint_of(bad) is None


@given(st.lists(st.text(max_size=200), max_size=20))
def test_parser_never_raises(lines: list[str]) -> None:
    report = CdrReport()
    items = list(parse_cdr_rows(lines, managers=MANAGERS, report=report))
    assert len(items) == report.inbound + report.outbound
    assert report.bad + report.skipped + len(items) <= report.rows
    assert len(report.problems) == min(report.bad, 100)


async def test_import_into_memory_store(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_bytes(("\n".join(GOOD + [BAD[0][0]]) + "\n").encode() + b"\xff\xfe broken bytes\n")
    store = MemoryHistoryStore()
    report = await import_cdr_file(path, store, managers=MANAGERS, batch_size=2)
    assert (report.written, report.bad) == (5, 2)
    got = await store.recent("+79161234567", T - timedelta(days=1))
    assert [c.direction for c in got] == [Direction.OUTBOUND, Direction.INBOUND]


async def test_import_into_redis_is_idempotent(redis: Redis, tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(GOOD) + "\n")
    store = RedisHistoryStore(redis, retention=timedelta(days=180), time_fn=(T + timedelta(days=1)).timestamp)
    first = await import_cdr_file(path, store, managers=MANAGERS, batch_size=2)
    second = await import_cdr_file(path, store, managers=MANAGERS, batch_size=2)
    assert first.written == second.written == 5
    assert await redis.zcard(store.key("+79161234567")) == 2  # re-import stored nothing twice
    assert await redis.dbsize() == 3
    recent = await store.recent("+79995554433", T)
    assert recent == [talked(T.replace(hour=13, minute=0, second=0), ("ivanov", 215))]


async def test_import_skips_calls_beyond_retention(redis: Redis, tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_text(GOOD[0] + "\n")
    store = RedisHistoryStore(redis, retention=timedelta(days=7), time_fn=(T + timedelta(days=30)).timestamp)
    report = await import_cdr_file(path, store, managers=MANAGERS)
    assert (report.inbound, report.written) == (1, 0)
    assert await redis.dbsize() == 0
