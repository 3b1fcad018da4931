"""The Russian numbering plan: the registry's CSV -> the compact file -> ranges searched in the
core, so that a Far East mobile gets its zone and the night rule fires for it."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_app.config.files import ConfigError
from ari_app.config.live import LiveConfig
from ari_app.config.numbering import (
    ImportReport,
    import_registry,
    load_numbering_plan,
    parse_plan,
    read_registry,
    write_plan,
)
from ari_app.config.policy import load_policy
from ari_app.config.ru_regions import SUBJECTS, zone_for_region
from ari_app.core.decide import decide
from ari_app.core.environment import describe_number
from ari_app.core.models import CallerProfile, CrmFacts, HistoryClass, HistoryFacts, SourceStatus, StepKind
from ari_app.core.numbering import NumberingPlan, Place

CONFIG = Path(__file__).resolve().parents[2] / "config"
SAMPLE = CONFIG / "numbering" / "registry-sample.csv"
PLAN = load_numbering_plan(CONFIG / "numbering" / "ru.csv")
POLICY = load_policy(CONFIG / "routing.yaml")
# Monday 22:30 in Moscow (closed), 05:30 on Tuesday in Vladivostok
LATE = datetime(2026, 6, 15, 19, 30, tzinfo=UTC)
VLADIVOSTOK_MOBILE = "+79147001234"  # 914-7xx: Primorsky krai in the sample
HABAROVSK_MOBILE = "+79241012345"  # 924-10x: Khabarovsk krai


def registry(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "DEF-9xx.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# --- the look-up in the core ---------------------------------------------------------------

def test_ranges_are_found_at_their_edges_only() -> None:
    far, moscow = Place("Приморский край", "Asia/Vladivostok"), Place("г. Москва", "Europe/Moscow")
    plan = NumberingPlan.from_ranges([(79160000000, 79169999999, moscow), (79140600000, 79140799999, far)])
    assert plan.lookup("+79140600000") == far and plan.lookup("+79140799999") == far
    assert plan.lookup("+79140599999") is None and plan.lookup("+79140800000") is None
    assert plan.lookup("+79165550000") == moscow
    assert plan.lookup("+791406000001") is None  # a 12-digit number is no 11-digit range's
    assert plan.lookup("+7914060000") is None


@pytest.mark.parametrize(("ranges", "reason"), [
    ([(10, 20, Place("a", None)), (20, 30, Place("b", None))], "overlaps"),
    ([(30, 20, Place("a", None))], "ends before"),
])
def test_bad_ranges_are_refused(ranges: list, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        NumberingPlan.from_ranges(ranges)


# --- regions -> zones ----------------------------------------------------------------------

def test_every_subject_of_russia_has_a_real_zone() -> None:
    assert len(SUBJECTS) >= 85 and len({name for name, _, _ in SUBJECTS}) == len(SUBJECTS)
    for name, zone, _ in SUBJECTS:
        ZoneInfo(zone)
        assert zone_for_region(name) == zone, name


@pytest.mark.parametrize(("region", "zone"), [
    ("Приморский край", "Asia/Vladivostok"),
    ("Хабаровский Край", "Asia/Vladivostok"),
    ("Еврейская АО", "Asia/Vladivostok"),
    ("Республика Саха /Якутия/", "Asia/Yakutsk"),
    ("Камчатский край", "Asia/Kamchatka"),
    ("г. Москва и Московская обл.", "Europe/Moscow"),
    ("г. Санкт-Петербург и Ленинградская область", "Europe/Moscow"),
    ("Ямало-Ненецкий АО", "Asia/Yekaterinburg"),  # not the Nenets AO (Moscow time)
    ("Ненецкий АО", "Europe/Moscow"),
    ("Ханты - Мансийский - Югра АО", "Asia/Yekaterinburg"),
    ("Красноярский край|Таймырский Долгано-Ненецкий р-н", "Asia/Krasnoyarsk"),
    ("Кемеровская область - Кузбасс", "Asia/Novokuznetsk"),
    ("Томская обл.", "Asia/Tomsk"),  # not Omsk
    ("Омская обл.", "Asia/Omsk"),
    ("Коми-Пермяцкий округ", "Asia/Yekaterinburg"),  # not the Komi Republic
    ("Самарская обл.", "Europe/Samara"),
    ("Калининградская обл.", "Europe/Kaliningrad"),
    ("Российская Федерация", None),  # non-geographic ranges
    ("Хабаровский край и Омская обл.", None),  # two zones: no guess
])
def test_registry_spellings_map_to_zones(region: str, zone: str | None) -> None:
    assert zone_for_region(region) == zone


# --- the registry's CSV ----------------------------------------------------------------------

HEADER = "АВС/ DEF;От;До;Емкость;Оператор;Регион;ИНН\n"


def test_registry_rows_become_merged_ranges(tmp_path: Path) -> None:
    text = HEADER + (
        '914;0600000;0699999;100000;ПАО "МТС";Приморский край;7740000076\n'
        '914;0700000;0799999;100000;ПАО "МТС";Приморский край;7740000076\n'  # merged with the row above
        '914;0000000;0199999;200000;ПАО "МТС";Иркутская обл.;7740000076\n'
        '800;0000000;0999999;1000000;ПАО "Ростелеком";Российская Федерация;7707049388\n'
    )
    report = ImportReport()
    ranges = import_registry([registry(tmp_path, text)], report)
    assert ranges == [(78000000000, 78000999999, Place("Российская Федерация", None)),
                      (79140000000, 79140199999, Place("Иркутская обл.", "Asia/Irkutsk")),
                      (79140600000, 79140799999, Place("Приморский край", "Asia/Vladivostok"))]
    assert (report.rows, report.ranges, report.bad, report.no_zone) == (4, 3, [], {"Российская Федерация": 1})


def test_windows_1251_and_the_newer_columns_are_read(tmp_path: Path) -> None:
    text = ("АВС/ DEF;От;До;Емкость;Оператор;Регион;Территория ГАР;ИНН\n"
            '924;1200000;1399999;200000;ПАО "МегаФон";Приморский край;г.о. Владивостокский;7812014560\n')
    ranges = import_registry([registry(tmp_path, text, "cp1251")], ImportReport())
    assert ranges == [(79241200000, 79241399999, Place("Приморский край", "Asia/Vladivostok"))]


def test_bad_rows_are_reported_with_their_lines(tmp_path: Path) -> None:
    text = HEADER + ("914;0600000;0699999;1;x;Приморский край;1\n"
                     "91;0000000;0999999;1;x;Приморский край;1\n"
                     "914;0900000;0800000;1;x;Приморский край;1\n"
                     "914;0600500;0600600;1;x;Приморский край;1\n"  # inside the first range
                     "914;1000000\n")
    report = ImportReport()
    assert len(import_registry([registry(tmp_path, text)], report)) == 1
    assert [(line, reason.split(":")[0]) for _, line, reason in report.bad] == [
        (3, "not a range"), (4, "range ends before it starts"), (6, "2 columns")]
    assert report.overlapping == 1


# --- the compact file ---------------------------------------------------------------------

def test_the_shipped_plan_is_the_shipped_sample_imported() -> None:
    """config/numbering/ru.csv is what `caseline numbering import` makes of the sample:
    nobody edited it by hand, and the sample is what it says it is."""
    assert list(PLAN.ranges()) == import_registry([SAMPLE], ImportReport())
    assert "A SAMPLE, not the registry" in SAMPLE.read_text(encoding="utf-8")


def test_written_plan_loads_back(tmp_path: Path) -> None:
    ranges = import_registry([SAMPLE], ImportReport())
    write_plan(tmp_path / "ru.csv", ranges, ["registry-sample.csv"])
    assert list(load_numbering_plan(tmp_path / "ru.csv").ranges()) == ranges


@pytest.mark.parametrize(("line", "reason"), [
    ("79140000000;79140199999;Asia/Irkutsk", "expected first;last;timezone;region"),
    ("7914x;79140199999;Asia/Irkutsk;Иркутская обл.", "expected first;last;timezone;region"),
    ("79140000000;79140199999;Asia/Atlantis;Иркутская обл.", "unknown IANA time zone"),
])
def test_a_broken_plan_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "ru.csv"
    path.write_text(f"# comment\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_numbering_plan(path)
    assert (err.value.line, err.value.key) == (2, "line 2") and reason in err.value.reason


def test_overlapping_ranges_in_the_plan_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ru.csv"
    path.write_text("79140000000;79140199999;;a\n79140100000;79140299999;;b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="overlaps"):
        load_numbering_plan(path)


def test_a_reload_sees_a_new_import(tmp_path: Path) -> None:
    plan = tmp_path / "ru.csv"
    write_plan(plan, [(79140000000, 79140999999, Place("Иркутская обл.", "Asia/Irkutsk"))], ["a.csv"])
    live = LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml", numbering_path=plan)
    assert live.current.numbering is not None
    assert live.current.numbering.lookup("+79140000001") == Place("Иркутская обл.", "Asia/Irkutsk")
    write_plan(plan, [(79140000000, 79140999999, Place("Приморский край", "Asia/Vladivostok"))], ["b.csv"])
    stat = plan.stat()  # same size: make sure the modification time moves on
    os.utime(plan, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    live.reload()
    assert live.current.numbering.lookup("+79140000001").timezone == "Asia/Vladivostok"
    assert LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml").current.numbering is None


# --- the caller's zone and the night rule ------------------------------------------------

@pytest.mark.parametrize(("number", "zone", "source", "region"), [
    (VLADIVOSTOK_MOBILE, "Asia/Vladivostok", "numbering_plan", "Приморский край"),
    (HABAROVSK_MOBILE, "Asia/Vladivostok", "numbering_plan", "Хабаровский край"),
    ("+79241300000", "Asia/Vladivostok", "numbering_plan", "Приморский край"),
    ("+79161234567", "Europe/Moscow", "numbering_plan", "г. Москва и Московская область"),
    ("+79031234567", None, None, None),  # not in the sample: phonenumbers has 16 zones, no guess
    ("+74232123456", "Asia/Vladivostok", "phonenumbers", None),  # a landline: phonenumbers knows
    ("+12025550123", "America/New_York", "phonenumbers", None),  # other countries keep phonenumbers'
])
def test_zone_and_its_source(number: str, zone: str | None, source: str | None, region: str | None) -> None:
    facts = describe_number(number, LATE, numbering=PLAN)
    assert (facts.timezone, facts.timezone_source, facts.region) == (zone, source, region)


def test_without_the_plan_a_far_east_mobile_has_no_zone() -> None:
    facts = describe_number(VLADIVOSTOK_MOBILE, LATE)
    assert (facts.timezone, facts.utc_offset_hours, facts.timezone_source) == (None, None, None)
    assert describe_number(VLADIVOSTOK_MOBILE, LATE, numbering=PLAN).utc_offset_hours == 10.0


@pytest.mark.parametrize("number", [VLADIVOSTOK_MOBILE, HABAROVSK_MOBILE])
def test_night_rule_fires_for_a_far_east_mobile_at_0530_local(number: str) -> None:
    """The issue: a Vladivostok mobile calling at 05:30 local time went to after-hours voicemail."""
    def profile(env) -> CallerProfile:  # type: ignore[no-untyped-def]
        return CallerProfile(number, HistoryFacts(SourceStatus.OK, HistoryClass.NEW),
                             CrmFacts(SourceStatus.UNKNOWN), env)

    before = decide(profile(describe_number(number, LATE)), POLICY, LATE)
    assert [r.rule for r in before.reasons][-1] == "hours.after_hours"

    env = describe_number(number, LATE, numbering=PLAN)
    d = decide(profile(env), POLICY, LATE)
    rules = [r.rule for r in d.reasons]
    assert "night_far_tz" in rules and d.priority == 100, rules
    assert (d.route[0].kind, d.route[0].target) == (StepKind.SUPERVISOR, "sup1")
    assert "caller local time 05:30 (UTC+10)" in d.reasons[0].text


# --- hostile input -------------------------------------------------------------------------

@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from([*"0123456789;\"\n\r\x00 #ABCабв-", "914", "0600000", "Приморский край"]),
                max_size=120).map("".join))
def test_any_registry_text_gives_ranges_or_bad_rows(text: str) -> None:
    report = ImportReport()
    for lo, hi, region in read_registry(text, "x.csv", report):
        assert lo <= hi and 70000000000 <= lo and hi <= 79999999999 and region
    assert report.rows >= len(report.bad)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from([*"0123456789;\n# x/", "79140000000", "Asia/Vladivostok"]), max_size=80).map("".join))
def test_any_plan_text_loads_or_is_a_config_error(text: str) -> None:
    try:
        plan = parse_plan(text, Path("ru.csv"))
    except ConfigError:
        return
    assert all(lo <= hi for lo, hi, _ in plan.ranges())


def test_a_huge_field_is_a_bad_row_not_a_crash() -> None:
    report = ImportReport()
    text = HEADER + '914;0;1;1;"' + "x" * 200_000 + '";Приморский край;1\n914;0600000;0699999;1;x;Приморский край;1\n'
    assert [lo for lo, _, _ in read_registry(text, "x.csv", report)] == [79140600000]
    assert report.bad and report.bad[0][2].startswith("unreadable")
