"""Property-based fuzzing of the CDR import (Asterisk's Master.csv is a file anyone with
access to the PBX box, or any caller ID, can put bytes into).

Invariants: the parser never raises; every row is counted exactly once
(rows == inbound + outbound + skipped + bad + merged); every yielded number is strict
E.164; problems are bounded printable ASCII; the same holds for arbitrary bytes read the
way `import_cdr_file` reads a file.
"""
from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ari_app.core.models import Contact, Direction
from ari_app.history.cdr import (
    MAX_PROBLEMS,
    CdrReport,
    import_cdr_file,
    parse_cdr_rows,
)
from ari_app.history.store import MemoryHistoryStore

from tests.support.hostile_inputs import E164_RE, FUZZ, FUZZ_SLOW, HOSTILE_CALLER_IDS

MANAGERS = {"101": "mgr1", "102": "mgr2"}
COLUMNS = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield"]
TEMPLATE = ["", "89161234567", "74950001122", "inbound", '"Ivan" <89161234567>', "PJSIP/trunk-0000001a",
            "PJSIP/101-0000001b", "Dial", "PJSIP/101,30", "2024-05-01 09:15:02", "2024-05-01 09:15:09",
            "2024-05-01 09:20:11", "309", "302", "ANSWERED", "DOCUMENTATION", "1714554902.26", ""]
HOSTILE_TEXT = [h.replaced for h in HOSTILE_CALLER_IDS]

# Values that make a field interesting: valid ones, near misses, and hostile ones.
FIELD_VALUES = {
    "src": st.sampled_from(["89161234567", "+79031112233", "79995554433", "101", "anonymous", ""] + HOSTILE_TEXT),
    "dst": st.sampled_from(["89161234567", "74950001122", "102", ""] + HOSTILE_TEXT),
    "dcontext": st.sampled_from(["inbound", "from-internal", "operators", "", "inbound\x00"]),
    "channel": st.sampled_from(["PJSIP/trunk-0000001a", "PJSIP/101-0000001f", "PJSIP/102-00000021",
                                "Local/101@from-queue-0000001f;1", "PJSIP/101", "", "SIP/101-ffffffff"]),
    "dstchannel": st.sampled_from(["PJSIP/101-0000001b", "Local/102@from-queue-00000025;1", "", "PJSIP/x"]),
    "start": st.sampled_from(["2024-05-01 09:15:02", "2024-02-30 10:00:00", "01/05/2024 09:15", "", "9999-12-31 23:59:59",
                              "0001-01-01 00:00:00", "２０２４-05-01 09:15:02"]),
    "duration": st.sampled_from(["309", "0", "-5", "86399", "86400", "9" * 5000, "３０", "1e3", ""]),
    "billsec": st.sampled_from(["302", "0", "abc", "9" * 30, ""]),
    "disposition": st.sampled_from(["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION", "answered", "MAYBE", ""]),
    "uniqueid": st.sampled_from(["1714554902.26", "1714554902.27", "", "x" * 300]),
}


@st.composite
def cdr_rows(draw: st.DrawFn) -> list[str]:
    """A near-valid row: the template with some fields replaced, columns added or dropped."""
    row = list(TEMPLATE)
    for name in draw(st.sets(st.sampled_from(list(FIELD_VALUES)), max_size=4)):
        row[COLUMNS.index(name)] = draw(FIELD_VALUES[name] | st.text(max_size=30))
    cut = draw(st.sampled_from([18, 18, 18, 17, 16, 15, 19, 1]))
    return row[:cut] + [""] * max(0, cut - len(row))


def to_line(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(row)
    return out.getvalue()


LINES = st.one_of(
    cdr_rows().map(to_line),
    st.text(max_size=300),  # anything at all, unterminated quotes and NULs included
    st.sampled_from(["\r\n", "\n", '"unterminated,\n', '"a""b",c\n', "\x00\n", ",,,,\n", "\ufeff\n"]),
)


def check(report: CdrReport, items: list[tuple[str, Contact]]) -> None:
    assert report.rows == report.inbound + report.outbound + report.skipped + report.bad + report.merged
    assert len(items) == report.inbound + report.outbound
    assert min(report.rows, report.inbound, report.outbound, report.skipped, report.bad, report.merged) >= 0
    assert len(report.problems) == min(report.bad, MAX_PROBLEMS)
    for line, reason in report.problems:
        assert line >= 1
        assert reason.isascii() and reason.isprintable() and len(reason) < 200
    for number, contact in items:
        assert E164_RE.fullmatch(number), number
        assert contact.at.tzinfo is not None
        assert contact.direction in (Direction.INBOUND, Direction.OUTBOUND)
        assert 0 <= contact.duration_s < 86_400
        assert contact.manager in (None, *MANAGERS.values())


@FUZZ
@given(st.lists(LINES, max_size=25))
def test_parser_never_raises_and_every_row_is_counted_once(lines: list[str]) -> None:
    report = CdrReport()
    items = list(parse_cdr_rows(lines, managers=MANAGERS, report=report))
    check(report, items)


@FUZZ
@given(st.lists(cdr_rows(), min_size=1, max_size=12))
def test_near_valid_rows_add_up(rows: list[list[str]]) -> None:
    """Mostly well-formed rows, so the inbound/outbound/merge branches are exercised."""
    report = CdrReport()
    items = list(parse_cdr_rows([to_line(r) for r in rows], managers=MANAGERS, report=report))
    check(report, items)


@FUZZ
@given(st.binary(max_size=3000) | st.lists(cdr_rows().map(to_line), max_size=6).map(
    lambda ls: "".join(ls).encode()).flatmap(lambda b: st.binary(max_size=50).map(lambda junk: b + junk)))
def test_arbitrary_bytes_read_like_a_file_never_raise(data: bytes) -> None:
    # exactly how import_cdr_file opens Master.csv
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")
    report = CdrReport()
    items = list(parse_cdr_rows(text, managers=MANAGERS, report=report))
    check(report, items)


def test_counts_add_up_with_merged_queue_legs() -> None:
    """Two legs of one queue call (same uniqueid) are one contact: the second leg is `merged`."""
    first = list(TEMPLATE)
    second = list(TEMPLATE)
    second[COLUMNS.index("dstchannel")] = "PJSIP/102-0000001c"
    report = CdrReport()
    items = list(parse_cdr_rows([to_line(first), to_line(second)], managers=MANAGERS, report=report))
    assert (report.rows, report.inbound, report.merged) == (2, 1, 1)
    check(report, items)


def test_a_field_over_the_csv_limit_is_one_bad_row() -> None:
    huge = to_line(["x" * (csv.field_size_limit() + 10)] + TEMPLATE[1:])
    report = CdrReport()
    items = list(parse_cdr_rows([huge, to_line(TEMPLATE)], managers=MANAGERS, report=report))
    assert report.bad == 1 and report.inbound == 1
    check(report, items)


@FUZZ_SLOW
@given(st.binary(max_size=2000), st.lists(cdr_rows().map(to_line), max_size=5))
def test_import_file_of_arbitrary_bytes(junk: bytes, lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Master.csv"
        path.write_bytes(junk + "".join(lines).encode("utf-8", "surrogateescape") + junk)
        store = MemoryHistoryStore()
        report = asyncio.run(import_cdr_file(path, store, managers=MANAGERS, batch_size=3))
    assert report.written == report.inbound + report.outbound  # MemoryHistoryStore keeps everything
    assert report.rows == report.inbound + report.outbound + report.skipped + report.bad + report.merged
    since = datetime(1, 1, 1, tzinfo=UTC)
    for number in store._data:
        assert E164_RE.fullmatch(number)
        assert asyncio.run(store.recent(number, since))
