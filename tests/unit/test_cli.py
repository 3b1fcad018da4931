"""The `caseline` command's contracts, run in-process (ari_app.cli.main) against a real Redis and
temporary copies of the shipped config: explain --json/--at, replay, check-config,
import-cdr, CASELINE_CONFIG, and one-line errors without tracebacks."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ari_app.cli import main
from ari_app.config.policy import load_policy
from ari_app.core.decide import decide
from ari_app.core.models import CallerProfile, CrmFacts, CrmRecord, HistoryClass, HistoryFacts, Outcome, SourceStatus
from ari_app.record.outcomes import DECISION_LOG, decision_entry

CONFIG = Path(__file__).resolve().parents[2] / "config"
MSK = timezone(timedelta(hours=3))


@dataclass
class Cli:
    """`caseline --config <copy> ...` in a thread (it runs its own event loop)."""

    config: Path
    capsys: pytest.CaptureFixture[str]

    async def __call__(self, *args: str, config: bool = True) -> tuple[int, str, str]:
        argv = (["--config", str(self.config)] if config else []) + list(args)
        try:
            rc = await asyncio.to_thread(main, argv)
        except SystemExit as e:  # argparse's usage errors
            rc = e.code
        out, err = self.capsys.readouterr()
        return rc, out, err

    async def json(self, *args: str) -> dict:
        rc, out, err = await self(*args)
        assert rc == 0, err
        return json.loads(out)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No CASELINE_* settings from the environment running the tests."""
    for name in ("CASELINE_CONFIG", "CASELINE_REDIS_URL", "CASELINE_DEBUG", "CASELINE_OPS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


@pytest.fixture
def config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target, ignore=shutil.ignore_patterns("asterisk"))
    return target


@pytest.fixture
async def cli(redis: Redis, redis_session_server, env: pytest.MonkeyPatch, config: Path,
              capsys: pytest.CaptureFixture[str]) -> Cli:
    env.setenv("CASELINE_REDIS_URL", redis_session_server.url)
    return Cli(config, capsys)


def dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def edit(path: Path, old: str, new: str) -> int:
    """Replace `old` once; the 1-based line of the change."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def one_line_error(rc: int, out: str, err: str) -> str:
    assert rc == 1 and out == "" and "Traceback" not in err, (rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def cdr_row(number: str, start_local: datetime) -> str:
    """One answered inbound call to mgr1 as Asterisk's cdr_csv writes it."""
    fmt = "%Y-%m-%d %H:%M:%S"
    start = start_local.strftime(fmt)
    end = (start_local + timedelta(seconds=65)).strftime(fmt)
    return (f'"","{number}","100","inbound","""Client"" <{number}>","PJSIP/trunk-00000011","PJSIP/mgr1-00000012",'
            f'"Dial","PJSIP/mgr1,20","{start}","{start}","{end}",65,60,"ANSWERED","DOCUMENTATION",'
            f'"{int(start_local.timestamp())}.{number[-4:]}",""\n')  # uniqueid: one per call


# -- explain --------------------------------------------------------------------------------

ITEM1_KEYS = {"number", "class", "callback_kind", "repeat_after_missed", "owner", "owner_source", "last_contact",
              "region", "carrier", "timezone", "timezone_source", "local_time", "night", "company", "crm",
              "crm_status", "decision"}


async def test_explain_json_is_one_object_with_every_key(cli: Cli) -> None:
    data = await cli.json("explain", "8 916 123-45-67", "--json")
    assert ITEM1_KEYS <= set(data)
    assert (data["number"], data["owner"], data["owner_source"], data["crm_status"]) == ("+79161234567", "mgr1",
                                                                                          "crm", "ok")
    assert data["crm"]["status"] == "ok" and data["crm"]["client_id"] == "C-1001"
    assert data["crm"]["client_status"] == "active" and data["region"] == "г. Москва и Московская область"
    assert (data["timezone"], data["timezone_source"]) == ("Europe/Moscow", "numbering_plan")
    step = data["decision"]["route"][0]
    assert set(step) >= {"target", "timeout_s", "on_busy", "on_no_answer", "on_unavailable"}
    assert isinstance(data["decision"]["reasons"], list) and data["decision"]["reasons"][0]["rule"] == "inputs"


async def test_explain_json_of_the_blocked_client_shows_its_extra_and_the_defence(cli: Cli) -> None:
    """clients.yaml's C-1008 (blocked, extra {note: ...}): `crm` is the record as the CRM
    returned it; the decision is routing.yaml's `client_status: {blocked: C}`."""
    data = await cli.json("explain", "+79161112200", "--at", "2026-06-15T12:00:00+03:00", "--json")
    assert (data["crm"]["client_status"], data["crm"]["extra"]) == ("blocked", {"note": "payment overdue"})
    rules = [r["rule"] for r in data["decision"]["reasons"]]
    assert "client_status" in rules and "abc.C" in rules and data["decision"]["service"] == "self_service"


async def test_explain_json_of_a_withheld_caller(cli: Cli) -> None:
    data = await cli.json("explain", "anonymous", "--json")
    assert (data["number"], data["owner_source"], data["crm_status"], data["company"]) == (None, "none",
                                                                                           "not_found", None)


async def test_explain_json_with_the_crm_disabled(cli: Cli) -> None:
    edit(cli.config / "caseline.yaml", "adapter: file", "adapter: none")
    data = await cli.json("explain", "+79161234567", "--json")
    assert data["crm"] == {"status": "disabled"} and data["crm_status"] == "disabled"


async def test_explain_at_evaluates_hours_and_local_time_then(cli: Cli) -> None:
    monday = await cli.json("explain", "+74951234567", "--at", "2026-06-15T12:00:00+03:00", "--json")
    sunday = await cli.json("explain", "+74951234567", "--at", "2026-06-14T12:00:00+03:00", "--json")
    assert datetime.fromisoformat(monday["local_time"]) == datetime(2026, 6, 15, 12, tzinfo=MSK)
    assert datetime.fromisoformat(sunday["local_time"]) == datetime(2026, 6, 14, 12, tzinfo=MSK)
    assert monday["decision"]["service"] == "operator" and sunday["decision"]["route"][-1]["kind"] == "voicemail"
    naive = await cli.json("explain", "+74951234567", "--at", "2026-06-15T12:00", "--json")  # company time
    assert naive["local_time"] == monday["local_time"] and naive["night"] is False


async def test_explain_at_a_holiday(cli: Cli) -> None:
    data = await cli.json("explain", "+74951234567", "--at", "2026-06-12T12:00:00+03:00", "--json")
    assert "hours.holiday" in [r["rule"] for r in data["decision"]["reasons"]]


async def test_explain_text_names_the_holder_source_and_company(cli: Cli) -> None:
    rc, out, _ = await cli("explain", "+78432777000", "--at", "2026-06-15T12:00:00+03:00")
    assert rc == 0
    assert "Case holder: mgr1 (crm: responsible in the CRM (C-2001))" in out  # the parent company
    assert "legal entity Avtodom Service Kazan (part of Avtodom Holding)" in out
    edit(cli.config / "caseline.yaml", "adapter: file", "adapter: none")
    rc, out, _ = await cli("explain", "+78432777000", "--at", "2026-06-15T12:00:00+03:00")
    assert rc == 0 and "Case holder: mgr1 (directory: manager of " in out  # no CRM: the parent's entry


async def test_explain_json_of_a_branch_is_its_parent_company(cli: Cli) -> None:
    data = await cli.json("explain", "+78432777000", "--at", "2026-06-15T12:00:00+03:00", "--json")
    assert data["company"] == {"id": "avtodom-kazan", "name": "Avtodom Service Kazan", "parent": "Avtodom Holding",
                               "parent_id": "C-2001"}
    assert (data["crm_status"], data["crm"]["client_id"], data["owner"], data["owner_source"]) == (
        "ok", "C-2001", "mgr1", "crm")
    assert "parent company C-2001 of Avtodom Service Kazan" in data["crm"]["detail"]
    assert data["decision"]["route"][0]["target"] == "mgr1"


async def test_explain_at_must_be_iso_8601(cli: Cli) -> None:
    rc, out, err = await cli("explain", "+74951234567", "--at", "tomorrow")
    assert rc == 2 and out == "" and len(err.splitlines()) == 1 and "ISO 8601" in err


# -- import-cdr ------------------------------------------------------------------------------


async def test_import_cdr_reads_times_in_the_given_zone(cli: Cli, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    cdr = tmp_path / "Master.csv"
    cdr.write_text(cdr_row("79990007731", start.astimezone(MSK).replace(tzinfo=None)))
    rc, out, err = await cli("import-cdr", str(cdr), "--cdr-timezone", "Europe/Moscow")
    assert (rc, err) == (0, "")
    assert out.startswith("rows 1: inbound 1, outbound 0") and "written 1 calls" in out
    data = await cli.json("explain", "+79990007731", "--at", datetime.now(UTC).isoformat(), "--json")
    assert datetime.fromisoformat(data["last_contact"]) == start
    assert (data["class"], data["owner"], data["owner_source"]) == ("repeat", "mgr1", "history")


async def test_import_cdr_default_zone_is_utc_and_history_alias_works(cli: Cli, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    cdr = tmp_path / "Master.csv"
    cdr.write_text(cdr_row("79990007732", start.replace(tzinfo=None)))
    rc, _, err = await cli("history", "import-cdr", str(cdr))
    assert (rc, err) == (0, "")
    data = await cli.json("explain", "+79990007732", "--json")
    assert datetime.fromisoformat(data["last_contact"]) == start


async def test_import_cdr_counts_what_was_written(cli: Cli, tmp_path: Path) -> None:
    cdr = tmp_path / "Master.csv"
    long_ago = datetime(2001, 1, 1, 12, 0)  # beyond the history retention: not stored
    cdr.write_text(cdr_row("79990007733", long_ago) + cdr_row("79990007734", datetime.now(UTC).replace(tzinfo=None)))
    rc, out, _ = await cli("import-cdr", str(cdr))
    assert rc == 0
    assert "written 1 calls (1 older than the history retention, not stored)" in out


@pytest.mark.parametrize("what", ["missing", "directory"])
async def test_import_cdr_unreadable_file_is_one_line(cli: Cli, tmp_path: Path, what: str) -> None:
    path = tmp_path / "no-such-Master.csv" if what == "missing" else tmp_path
    for args in (["import-cdr", str(path)], ["history", "import-cdr", str(path)]):
        line = one_line_error(*await cli(*args))
        assert line.startswith(f"caseline: import-cdr: cannot read {path}: ")


async def test_import_cdr_with_redis_down_is_one_line(cli: Cli, env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cdr = tmp_path / "Master.csv"
    cdr.write_text(cdr_row("79990007735", datetime.now(UTC).replace(tzinfo=None)))
    env.setenv("CASELINE_REDIS_URL", dead_redis_url())
    line = one_line_error(*await cli("import-cdr", str(cdr)))
    assert line.startswith("caseline: import-cdr: Redis unavailable after writing 0 calls")


async def test_import_cdr_unknown_zone_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    rc, _, err = await cli("import-cdr", str(tmp_path), "--cdr-timezone", "Mars/Olympus")
    assert rc == 2 and len(err.splitlines()) == 1 and "unknown IANA time zone" in err


# -- check-config and CASELINE_CONFIG -------------------------------------------------------


@pytest.mark.parametrize("command", ["check-config", "check"])
async def test_check_config_accepts_the_shipped_config(cli: Cli, command: str) -> None:
    rc, out, err = await cli(command)
    assert (rc, err) == (0, "") and out.strip() == f"{cli.config}: config OK"


async def test_check_config_names_file_line_key_and_reason(cli: Cli, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    shutil.copy(cli.config / "routing.yaml", candidate)
    line = edit(candidate, '"0": "queue:operators"', '"0": "manager:mgr9"')
    rc, out, err = await cli("check-config", "--routing", str(candidate))
    assert (rc, out) == (1, "") and "Traceback" not in err
    assert err.strip() == (f"caseline: config error: {candidate}:{line}: ivr.main.options.0.0: "
                           "manager:mgr9 not found in people.managers")


async def test_check_config_lists_every_file_with_a_problem(cli: Cli) -> None:
    first = edit(cli.config / "legal_entities.yaml", "manager: mgr1", "manager: petrov")
    second = edit(cli.config / "clients.yaml", "responsible: mgr3", "responsible: sidorova")
    rc, out, err = await cli("check-config")
    assert (rc, out) == (1, "")
    assert err.splitlines() == [
        f"caseline: config error: {cli.config / 'legal_entities.yaml'}:{first}: entities.0.manager: 'petrov' not "
        "found in people (managers, supervisors) of the routing policy",
        f"caseline: config error: {cli.config / 'clients.yaml'}:{second}: clients.2.responsible: 'sidorova' not "
        "found in people (managers, supervisors) of the routing policy"]


async def test_caseline_config_is_honoured_like_config(cli: Cli, env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env.chdir(elsewhere)  # no ./config here
    env.setenv("CASELINE_CONFIG", str(cli.config))
    rc, out, _ = await cli("check-config", config=False)
    assert rc == 0 and str(cli.config) in out
    broken = tmp_path / "broken"
    shutil.copytree(cli.config, broken)
    edit(broken / "routing.yaml", "mode: retention", "mode: growth")
    env.setenv("CASELINE_CONFIG", str(broken))
    rc, _, err = await cli("check-config", config=False)
    assert rc == 1 and f"{broken / 'routing.yaml'}:" in err
    rc, _, _ = await cli("check-config")  # --config wins over the environment
    assert rc == 0
    rc, _, _ = await cli("check-config", "--config", str(cli.config), config=False)  # after the command too
    assert rc == 0


async def test_a_missing_config_folder_is_one_line(cli: Cli, tmp_path: Path) -> None:
    cli.config = tmp_path / "nowhere"
    line = one_line_error(*await cli("explain", "+79161234567"))
    assert line.startswith("caseline: config error: ") and "routing.yaml" in line and "cannot read" in line


# -- numbering plan --------------------------------------------------------------------------

FAR_EAST_ROWS = ("АВС/ DEF;От;До;Емкость;Оператор;Регион;ИНН\n"
                 '914;7000000;7099999;100000;ПАО "МТС";Приморский край;7740000076\n'
                 '924;1000000;1099999;100000;ПАО "МегаФон";Хабаровский край;7812014560\n')


async def test_numbering_import_refreshes_the_plan_explain_uses(cli: Cli, tmp_path: Path) -> None:
    (cli.config / "numbering" / "ru.csv").unlink()
    before = await cli.json("explain", "+79147001234", "--at", "2026-06-15T22:30:00+03:00", "--json")
    assert (before["timezone"], before["timezone_source"], before["night"]) == (None, None, None)
    assert before["decision"]["route"][-1]["kind"] == "voicemail" and before["decision"]["priority"] == 20

    source = tmp_path / "DEF-9xx.csv"
    source.write_text(FAR_EAST_ROWS, encoding="utf-8")
    rc, out, err = await cli("numbering", "import", str(source))
    assert (rc, err) == (0, "")
    assert out.startswith("rows 2: 2 ranges written, 0 bad") and str(cli.config / "numbering" / "ru.csv") in out

    after = await cli.json("explain", "+79147001234", "--at", "2026-06-15T22:30:00+03:00", "--json")
    assert (after["timezone"], after["timezone_source"], after["region"]) == ("Asia/Vladivostok", "numbering_plan",
                                                                              "Приморский край")
    assert after["local_time"] == "2026-06-16T05:30:00+10:00" and after["night"] is True
    assert "night_far_tz" in [r["rule"] for r in after["decision"]["reasons"]]
    assert after["decision"]["priority"] == 100
    rc, out, _ = await cli("explain", "+79241012345")
    assert rc == 0 and "Asia/Vladivostok (zone from numbering plan)" in out


async def test_numbering_import_of_a_missing_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    line = one_line_error(*await cli("numbering", "import", str(tmp_path / "nope.csv")))
    assert line.startswith("caseline: numbering import: cannot read") and "nope.csv" in line


async def test_numbering_import_without_ranges_keeps_the_plan(cli: Cli, tmp_path: Path) -> None:
    plan = (cli.config / "numbering" / "ru.csv").read_text(encoding="utf-8")
    empty = tmp_path / "empty.csv"
    empty.write_text("АВС/ DEF;От;До;Емкость;Оператор;Регион;ИНН\n", encoding="utf-8")
    line = one_line_error(*await cli("numbering", "import", str(empty)))
    assert "no ranges" in line and "left as it was" in line
    assert (cli.config / "numbering" / "ru.csv").read_text(encoding="utf-8") == plan


async def test_check_config_checks_the_numbering_plan(cli: Cli) -> None:
    line = edit(cli.config / "numbering" / "ru.csv", "Asia/Irkutsk", "Asia/Nowhere")
    rc, out, err = await cli("check-config")
    assert (rc, out) == (1, "")
    assert err.strip() == (f"caseline: config error: {cli.config / 'numbering' / 'ru.csv'}:{line}: line {line}: "
                           "unknown IANA time zone 'Asia/Nowhere'")


# -- replay ----------------------------------------------------------------------------------


async def log_calls(redis: Redis, config: Path) -> None:
    policy = load_policy(config / "routing.yaml")
    at = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)  # Monday, open
    a_client = CallerProfile("+79161234567", HistoryFacts(SourceStatus.OK, HistoryClass.OLD),
                             CrmFacts(SourceStatus.OK, CrmRecord("C-1001", abc="A", responsible="mgr1")))
    new = CallerProfile("+79990001123", HistoryFacts(SourceStatus.OK, HistoryClass.NEW), CrmFacts(SourceStatus.UNKNOWN))
    for call_id, profile in (("a1", a_client), ("a2", a_client), ("n1", new)):
        entry = decision_entry(call_id, at, profile, decide(profile, policy, at), Outcome(), 1.0, mask_numbers=True)
        await redis.xadd(DECISION_LOG, entry)
    await redis.xadd(DECISION_LOG, {"call_id": "before-profiles", "at": at.isoformat()})


async def test_replay_a_candidate_on_recent_calls(cli: Cli, redis: Redis, tmp_path: Path) -> None:
    await log_calls(redis, cli.config)
    candidate = tmp_path / "candidate.yaml"
    shutil.copy(cli.config / "routing.yaml", candidate)
    edit(candidate, "      target: holder\n      chain: vip", '      target: "queue:operators"\n      chain: vip')
    data = await cli.json("replay", "--since", "1h", "--routing", str(candidate), "--json")
    assert {k: data[k] for k in ("calls", "replayed", "without_profile", "changed", "unchanged")} == {
        "calls": 4, "replayed": 3, "without_profile": 1, "changed": 2, "unchanged": 1}
    assert data["changes"] == [{"from": {"service": "manager", "first_target": "manager:mgr1", "priority": 70},
                                "to": {"service": "operator", "first_target": "queue:operators", "priority": 70},
                                "count": 2, "examples": ["a1", "a2"]}]
    rc, out, _ = await cli("replay", "--since", "1h", "--routing", str(candidate))
    assert rc == 0 and "routed differently: 2" in out and "e.g. a1, a2" in out


async def test_replay_without_a_candidate_changes_nothing(cli: Cli, redis: Redis) -> None:
    await log_calls(redis, cli.config)
    data = await cli.json("replay", "--since", "24h", "--json")
    assert (data["calls"], data["changed"], data["changes"]) == (4, 0, [])


async def test_replay_an_invalid_candidate_is_exit_1_naming_file_and_line(cli: Cli, env: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    shutil.copy(cli.config / "routing.yaml", candidate)
    line = edit(candidate, '"0": "queue:operators"', '"0": "manager:nobody"')
    env.setenv("CASELINE_REDIS_URL", dead_redis_url())  # the candidate is checked before Redis is asked
    error = one_line_error(*await cli("replay", "--since", "24h", "--routing", str(candidate)))
    assert error == (f"caseline: config error: {candidate}:{line}: ivr.main.options.0.0: "
                     "manager:nobody not found in people.managers")


async def test_replay_needs_a_duration(cli: Cli) -> None:
    rc, _, err = await cli("replay", "--since", "yesterday")
    assert rc == 2 and len(err.splitlines()) == 1 and "expected a duration" in err


# -- one-line errors ---------------------------------------------------------------------------


async def test_calls_with_redis_down_is_one_line(cli: Cli, env: pytest.MonkeyPatch) -> None:
    env.setenv("CASELINE_REDIS_URL", dead_redis_url())
    line = one_line_error(*await cli("calls", "--last", "5"))
    assert line.startswith("caseline: calls: Redis unavailable: ")


async def test_replay_with_redis_down_is_one_line(cli: Cli, env: pytest.MonkeyPatch) -> None:
    env.setenv("CASELINE_REDIS_URL", dead_redis_url())
    line = one_line_error(*await cli("replay", "--since", "1h"))
    assert line.startswith("caseline: replay: Redis unavailable: ")


async def test_calls_lists_the_decision_log(cli: Cli, redis: Redis) -> None:
    await log_calls(redis, cli.config)
    rc, out, _ = await cli("calls", "--last", "10")
    assert rc == 0 and len(out.splitlines()) == 4 and "***4567" in out


async def test_calls_json_gives_reasons_as_a_list(cli: Cli, redis: Redis) -> None:
    await log_calls(redis, cli.config)
    rc, out, err = await cli("calls", "--last", "10", "--json")
    assert rc == 0, err
    entries = json.loads(out)
    assert [e["call_id"] for e in entries] == ["before-profiles", "n1", "a2", "a1"]
    for entry in entries:
        assert isinstance(entry["reasons"], list)
        assert all(set(r) == {"rule", "text"} for r in entry["reasons"])
    assert "abc.A" in [r["rule"] for r in entries[-1]["reasons"]]
    assert entries[0]["reasons"] == []  # an entry with no reasons stored


def test_usage_errors_are_one_line(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["explain", "+79161234567", "--colour"])
    _, err = capsys.readouterr()
    assert done.value.code == 2 and len(err.splitlines()) == 1
    assert "unrecognized arguments: --colour" in err


async def test_an_unexpected_error_is_one_line(cli: Cli, env: pytest.MonkeyPatch) -> None:
    import ari_app.record.replay as replay_mod

    def broken(*_args: object) -> None:
        raise RuntimeError("boom\nsecond line")

    env.setattr(replay_mod, "replay", broken)
    line = one_line_error(*await cli("replay", "--since", "1h"))
    assert line == "caseline: replay failed: RuntimeError: boom second line"
