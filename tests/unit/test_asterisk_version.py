"""The minimum Asterisk version: parsing and comparing (pure), the `asterisk:` settings, the
check over ARI (VersionGate on the in-memory ARI), and `caseline run` refusing a 22.8.0
Asterisk before it starts anything (a real process against a stand-in ARI)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from ari_app.ari.fake import FakeAri
from ari_app.ari.version_gate import VersionGate
from ari_app.config.asterisk_settings import AsteriskSettings
from ari_app.config.files import ConfigError
from ari_app.config.settings import load_settings
from ari_app.core.asterisk_version import AsteriskVersion, Standing, judge, parse_version
from ari_app.ops.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = AsteriskSettings().minimums()


# -- parsing and comparing -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "branch", "shown"), [
    ("22.10.1", "22", "22.10.1"),
    ("22.10.1-rc1", "22", "22.10.1-rc1"),
    ("22.0.0-pre1", "22", "22.0.0-pre1"),
    (" 22.8.2\n", "22", "22.8.2"),
    ("certified-20.7-cert3", "certified-20.7", "certified-20.7-cert3"),
    ("certified/20.7-cert3", "certified-20.7", "certified-20.7-cert3"),
])
def test_release_versions_parse(text: str, branch: str, shown: str) -> None:
    version = parse_version(text)
    assert version is not None and version.branch == branch and str(version) == shown


@pytest.mark.parametrize("text", ["GIT-master-abc123", "SVN-branch-22-r1", "", "22.10", "22.10.1.4",
                                  "22.10.1-foo1", "v22.10.1", "22.10.1\x00", "٢٢.١٠.١", "22.10.1 beta"])
def test_anything_else_is_not_a_release(text: str) -> None:
    assert parse_version(text) is None


@pytest.mark.parametrize(("reported", "standing"), [
    ("22.10.1", Standing.OK),
    ("22.10.2", Standing.OK),
    ("22.11.0-rc1", Standing.OK),
    ("22.10.1-rc1", Standing.BELOW),  # a pre-release comes before its release
    ("22.8.2", Standing.BELOW),  # /httpstatus fixed, SHELL()/FILE() through ARI not
    ("22.8.0", Standing.BELOW),
    ("21.12.0", Standing.BELOW),  # an older major: no minimum known for it
    ("23.1.0", Standing.BELOW),  # a newer major too: its fixed release is not known here
    ("certified-20.7-cert3", Standing.BELOW),
    ("GIT-master-abc123", Standing.UNRECOGNISED),
    ("", Standing.UNRECOGNISED),
])
def test_versions_are_judged_against_their_branchs_minimum(reported: str, standing: Standing) -> None:
    assert judge(reported, SHIPPED).standing is standing


def test_another_branch_counts_once_its_minimum_is_listed() -> None:
    minimums = AsteriskSettings(min_versions=("22.10.1", "23.2.1", "certified-20.7-cert9")).minimums()
    assert judge("23.2.1", minimums).standing is Standing.OK
    assert judge("23.2.0", minimums).standing is Standing.BELOW
    assert judge("certified-20.7-cert9", minimums).standing is Standing.OK
    assert judge("certified-20.7-cert8", minimums).standing is Standing.BELOW


def test_verdicts_say_what_and_why() -> None:
    assert judge("22.8.0", SHIPPED).describe(SHIPPED) == \
        "Asterisk 22.8.0 is older than 22.10.1, the minimum for its branch"
    assert "no minimum version is known for its branch (known: 22.10.1)" in judge("23.0.0", SHIPPED).describe(SHIPPED)
    assert "'GIT-master-abc', which is not a release version" in judge("GIT-master-abc", SHIPPED).describe(SHIPPED)


@given(st.text(max_size=200))
def test_judging_never_fails_and_shows_only_printable_text(text: str) -> None:
    verdict = judge(text, SHIPPED)
    assert verdict.reported.isprintable() and len(verdict.reported) <= 64
    assert verdict.describe(SHIPPED)


def test_versions_compare_only_within_their_branch() -> None:
    assert not AsteriskVersion("23", (23, 0, 0)).at_least(AsteriskVersion("22", (22, 10, 1)))
    assert AsteriskVersion("22", (22, 10, 1)).at_least(AsteriskVersion("22", (22, 10, 1)))


# -- settings ----------------------------------------------------------------------------------


def test_shipped_settings_refuse_below_22_10_1() -> None:
    shipped = load_settings(ROOT / "config", env={}).asterisk
    assert shipped == AsteriskSettings()
    assert shipped.min_versions == ("22.10.1",) and shipped.below_min_version == "refuse"


@pytest.mark.parametrize(("yaml_text", "reason"), [
    ('asterisk: {min_versions: ["GIT-master"]}', "is not an Asterisk release version"),
    ('asterisk: {min_versions: ["22.10.1", "22.11.0"]}', "two minimum versions for branch 22"),
    ("asterisk: {min_versions: []}", "at least 1"),
    ("asterisk: {below_min_version: ignore}", "'refuse' or 'warn'"),
])
def test_bad_minimums_are_config_errors(tmp_path: Path, yaml_text: str, reason: str) -> None:
    (tmp_path / "caseline.yaml").write_text(yaml_text + "\n")
    with pytest.raises(ConfigError, match=reason):
        load_settings(tmp_path, env={})


# -- the check over ARI --------------------------------------------------------------------------


def fake_asterisk(version: str) -> FakeAri:
    fake = FakeAri()
    fake.version = version
    return fake


async def test_below_the_minimum_is_refused_with_one_error_line(caplog: pytest.LogCaptureFixture) -> None:
    gate = VersionGate(fake_asterisk("22.8.0"), AsteriskSettings())
    with caplog.at_level(logging.INFO, logger="caseline.asterisk"):
        assert await gate.check()
    assert gate.refused and gate.below_minimum() == 1.0
    [line] = caplog.records
    assert line.levelno == logging.ERROR
    assert line.getMessage().startswith("Asterisk 22.8.0 is older than 22.10.1, the minimum for its branch: "
                                        "refusing to run.")


async def test_warn_runs_on_with_a_warning_and_the_metric(caplog: pytest.LogCaptureFixture) -> None:
    gate = VersionGate(fake_asterisk("22.8.0"), AsteriskSettings(below_min_version="warn"))
    metrics = Metrics()
    metrics.asterisk_below_min_version.set_function(gate.below_minimum)
    assert b"caseline_asterisk_below_min_version 0.0" in metrics.render()  # before Asterisk answered
    with caplog.at_level(logging.INFO, logger="caseline.asterisk"):
        assert await gate.check()
    assert not gate.refused
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "running anyway" in caplog.records[0].getMessage()
    assert b"caseline_asterisk_below_min_version 1.0" in metrics.render()


@pytest.mark.parametrize(("version", "level", "below"), [
    ("22.10.1", logging.INFO, 0.0),
    ("GIT-master-abc123", logging.WARNING, 1.0),  # nothing to compare: warned, never refused
])
async def test_a_recent_or_unrecognised_version_runs(caplog: pytest.LogCaptureFixture, version: str, level: int,
                                                     below: float) -> None:
    fake = fake_asterisk(version)
    gate = VersionGate(fake, AsteriskSettings())
    with caplog.at_level(logging.INFO, logger="caseline.asterisk"):
        assert await gate.check()
    assert not gate.refused and gate.below_minimum() == below
    assert [r.levelno for r in caplog.records] == [level]
    assert fake.sent("asterisk_info") == [{}]


async def test_an_asterisk_not_answering_at_start_is_checked_once_connected() -> None:
    fake = fake_asterisk("22.8.0")
    fake.booted = False  # 503 "Asterisk not booted"
    gate = VersionGate(fake, AsteriskSettings())
    assert not await gate.check() and not gate.refused and gate.verdict is None
    connected, stop = asyncio.Event(), asyncio.Event()
    watching = asyncio.create_task(gate.watch(connected, stop, retry_s=0))
    await asyncio.sleep(0.01)
    assert not watching.done() and len(fake.sent("asterisk_info")) == 1  # waits for the connection
    fake.booted = True
    connected.set()
    await asyncio.wait_for(watching, 2)
    assert gate.refused and stop.is_set()


# -- `caseline run` -------------------------------------------------------------------------------


async def test_caseline_run_refuses_an_old_asterisk_before_starting_anything(tmp_path: Path) -> None:
    fake = fake_asterisk("22.8.0")
    requests: list[str] = []

    async def ari(request: web.Request) -> web.Response:
        requests.append(f"{request.method} {request.path_qs}")
        if request.path == "/ari/asterisk/info":
            return web.json_response(await fake.asterisk_info())
        return web.json_response({"message": "not in this stand-in"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ari)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASELINE_")}
    env.update(CASELINE_ARI_URL=f"http://127.0.0.1:{server.port}", CASELINE_ARI_PASSWORD="x" * 16,
               # were it to run on, it would touch nothing real: an address nobody uses
               CASELINE_AGI_HOST="127.0.0.77", CASELINE_OPS_HOST="127.0.0.77", CASELINE_AMI_HOST="127.0.0.77",
               CASELINE_REDIS_URL="redis://127.0.0.77:6379/0")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ari_app.cli", "--config", str(ROOT / "config"), "run",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:  # it did not refuse: it would run on
            process.kill()
            await process.wait()
        await server.close()

    assert process.returncode == 1, err.decode()
    assert out == b""
    lines = [json.loads(line) for line in err.decode().splitlines()]
    errors = [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]
    assert len(errors) == 1, lines
    assert errors[0]["msg"].startswith("Asterisk 22.8.0 is older than 22.10.1, the minimum for its branch: "
                                       "refusing to run.")
    # nothing but the version was asked: no events websocket (no Stasis app registered)
    assert requests == ["GET /ari/asterisk/info?only=system"]


def test_a_distribution_package_is_judged_by_its_asterisk_release() -> None:
    """Debian's asterisk reports "22.10.1+dfsg+~cs6.17.60671434-1" (the lab's): its release
    counts, the packaging suffix does not, and an old package is still refused."""
    minimums = [parse_version("22.10.1")]
    assert judge("22.10.1+dfsg+~cs6.17.60671434-1", minimums).standing is Standing.OK
    assert judge("22.8.0+dfsg+~cs6.15-1", minimums).standing is Standing.BELOW
