"""`caseline dialplan reload` against the lab's real Asterisk 22: `pbx_config.so` reloaded over
ARI (`PUT /asterisk/modules/pbx_config.so`, user `caseline`); AMI is not involved (its user
has no write class).

A copy of the project's dialplan with one extra probe context is installed and reloaded;
what Asterisk really runs is read back with `dialplan show` on its CLI. Every test ends by
reloading the project's own dialplan, so the lab is left as `scripts/lab up` made it.
"""
from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from ari_app.ari.http import HttpAri
from ari_app.ari.version_gate import VersionGate
from ari_app.config.settings import AmiSettings, AriSettings, Settings
from ari_app.main import reload_dialplan_over_ari as reload_dialplan
from ari_app.ops.ami import AmiActionError, AmiClient
from labkit import asterisk as lab_asterisk
from labkit import paths as lab_paths

pytestmark = pytest.mark.lab

PROJECT_DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan"
PROBE = "caseline-reload-probe"


def lab_settings(lab, password: str | None = None, url: str | None = None) -> Settings:
    password = lab.secrets["CASELINE_ARI_PASSWORD"] if password is None else password
    return Settings(ari=AriSettings(url=url or lab.ari_url, user="caseline", password=SecretStr(password)))


def etc(lab) -> Path:
    return lab.root / "etc/asterisk"


def dialplan_with_probe(tmp_path: Path, marker: str, broken: bool = False) -> Path:
    """The project's dialplan files plus a [caseline-reload-probe] context saying `marker`."""
    folder = tmp_path / "dialplan"
    folder.mkdir()
    for source in PROJECT_DIALPLAN.glob("*.conf"):
        shutil.copy(source, folder / source.name)
    probe = f"\n[{PROBE}]\nexten => s,1,NoOp({marker})\n"
    if broken:
        probe += "[unclosed\n"
    with (folder / "caseline-agi.conf").open("a") as f:
        f.write(probe)
    return folder


async def running(context: str) -> str:
    """What Asterisk currently runs for `context` (its CLI, not our files)."""
    return await asyncio.to_thread(lab_asterisk.cli, f"dialplan show {context}")


def installed(lab) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(etc(lab).glob("*.conf"))}


@pytest.fixture
async def lab_dialplan(asterisk) -> AsyncIterator[object]:
    """Yields the lab; afterwards the project's own dialplan is installed and running again."""
    yield asterisk
    result = await reload_dialplan(lab_settings(asterisk), PROJECT_DIALPLAN, etc(asterisk))
    assert result.ok, result
    # "dialplan show" of a missing context names it too; an existing one prints this header
    assert f"Context '{PROBE}'" not in await running(PROBE)


async def test_reload_installs_and_asterisk_runs_the_new_dialplan(lab_dialplan, tmp_path):
    marker = f"probe-{secrets.token_hex(4)}"
    source = dialplan_with_probe(tmp_path, marker)

    result = await reload_dialplan(lab_settings(lab_dialplan), source, etc(lab_dialplan))

    assert result.ok, result
    assert result.message == "pbx_config.so reloaded" and result.attempts == 1
    assert set(result.installed) == {p.name for p in source.glob("*.conf")}
    assert installed(lab_dialplan)["caseline-agi.conf"] == (source / "caseline-agi.conf").read_bytes()
    assert marker in await running(PROBE)
    # the rest of the dialplan is still there
    assert "Stasis" in await running("caseline-route")
    assert "AGI" in await running("caseline-agi")


async def test_refused_credentials_leave_files_and_running_dialplan_as_they_were(lab_dialplan, tmp_path):
    before = installed(lab_dialplan)
    source = dialplan_with_probe(tmp_path, "never-loaded")

    result = await reload_dialplan(lab_settings(lab_dialplan, password="wrong-" + secrets.token_hex(4)),
                                   source, etc(lab_dialplan))

    assert not result.ok and result.restored
    assert "refused user 'caseline'" in result.error and "Authentication required" in result.error
    assert installed(lab_dialplan) == before
    assert "never-loaded" not in await running(PROBE)


async def test_ari_unreachable_is_a_quick_clear_error(lab_dialplan, tmp_path):
    before = installed(lab_dialplan)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    started = time.monotonic()

    result = await reload_dialplan(lab_settings(lab_dialplan, url=f"http://127.0.0.1:{closed}"),
                                   dialplan_with_probe(tmp_path, "never-loaded"), etc(lab_dialplan))

    assert time.monotonic() - started < 5
    assert not result.ok and result.restored
    assert result.error.startswith(f"ARI at 127.0.0.1:{closed}: unreachable")
    assert "running dialplan unchanged" in result.error
    assert installed(lab_dialplan) == before
    assert "never-loaded" not in await running(PROBE)


async def test_a_broken_dialplan_never_reaches_asterisk(lab_dialplan, tmp_path):
    before = installed(lab_dialplan)
    source = dialplan_with_probe(tmp_path, "never-loaded", broken=True)

    result = await reload_dialplan(lab_settings(lab_dialplan), source, etc(lab_dialplan))

    assert not result.ok and "nothing installed" in result.error
    assert any("malformed context header" in p for p in result.problems)
    assert installed(lab_dialplan) == before
    assert "never-loaded" not in await running(PROBE)


async def test_concurrent_reloads_both_succeed(lab_dialplan, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = dialplan_with_probe(tmp_path / "a", "first")
    second = dialplan_with_probe(tmp_path / "b", "second")

    results = await asyncio.gather(
        reload_dialplan(lab_settings(lab_dialplan), first, etc(lab_dialplan)),
        reload_dialplan(lab_settings(lab_dialplan), second, etc(lab_dialplan)))

    assert all(r.ok for r in results), results
    shown = await running(PROBE)
    assert "second" in shown and "first" not in shown  # serialised (FIFO lock): the last one wins, whole


@pytest.mark.parametrize("action", [
    {"Action": "Reload", "Module": "pbx_config"},
    {"Action": "GetConfig", "Filename": "manager.conf"},
    {"Action": "ModuleLoad", "Module": "pbx_config.so", "LoadType": "reload"},
    {"Action": "Originate", "Channel": "Local/s@internal", "Application": "NoOp"},
], ids=lambda a: a["Action"])
async def test_the_ami_user_may_not_reload_read_config_or_load_modules(asterisk, action):
    """manager.conf's [caseline] has no write class: what `write = system` used to allow is refused."""
    ami_settings = AmiSettings(host="127.0.0.1", port=lab_paths.AMI_PORT, user="caseline",
                               secret=SecretStr(asterisk.secrets["CASELINE_AMI_SECRET"]))
    async with AmiClient(ami_settings) as ami:
        assert await ami.ping()  # logged in: the secret is right
        with pytest.raises(AmiActionError, match="Permission denied"):
            await ami.action(action)


async def test_asterisk_http_has_no_status_page_and_passes_the_version_check(asterisk):
    settings = lab_settings(asterisk)
    async with HttpAri(settings.ari.url, "caseline", settings.ari.password.get_secret_value(), "caseline") as ari:
        gate = VersionGate(ari, settings.asterisk)
        assert await gate.check() and not gate.refused, gate.verdict
        assert gate.verdict is not None and gate.verdict.standing == "ok"
    async with aiohttp.ClientSession() as http, http.get(asterisk.ari_url + "/httpstatus") as answer:
        assert answer.status == 404  # http.conf enable_status = no

