"""`caseline dialplan reload`: check, install, reload `pbx_config.so` over ARI, roll back.

Asterisk's answers come from the in-memory ARI (ari_app/ari/fake.py, resource_asterisk.c's
statuses) through `ari_module_reload`, and from a stand-in ARI on a real socket through the
real HttpAri (`reload_dialplan_over_ari`, what the CLI runs): credentials, an unreachable
or silent ARI. AMI is never involved (config/asterisk/manager.conf grants no write class).
"""
from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from ari_app.ari.fake import FakeAri
from ari_app.config.settings import AriSettings, Settings
from ari_app.main import ari_module_reload, reload_dialplan_over_ari
from ari_app.ops.dialplan_reload import reload_dialplan
from tests.unit.test_dialplan_check import EXTRA, GOOD

PASSWORD = "ari-s3cr3t-pw"
IN_PROGRESS = (409, "Another reload is currently in progress")  # AST_MODULE_RELOAD_IN_PROGRESS


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A project dialplan folder (good files) and an Asterisk folder with older files."""
    source, etc = tmp_path / "dialplan", tmp_path / "etc-asterisk"
    source.mkdir()
    etc.mkdir()
    (source / "extensions.conf").write_bytes(GOOD)
    (source / "extra.conf").write_bytes(EXTRA)
    (source / "README.txt").write_text("not a dialplan file")
    (etc / "extensions.conf").write_bytes(b"[old]\nexten => s,1,NoOp(old)\n")
    (etc / "extensions.conf").chmod(0o640)
    (etc / "manager.conf").write_bytes(b"[general]\n")
    return source, etc


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def over_fake(fake: FakeAri, source: Path, etc: Path, **kwargs):  # type: ignore[no-untyped-def]
    return await reload_dialplan(source, etc, ari_module_reload(fake, AriSettings()), retry_delay_s=0, **kwargs)


# -- Asterisk's answers (in-memory ARI) ----------------------------------------------------------


async def test_reload_installs_and_asks_asterisk_to_reload_pbx_config(folders):
    source, etc = folders
    fake = FakeAri()
    result = await over_fake(fake, source, etc)

    assert result.ok, result
    assert result.message == "pbx_config.so reloaded" and result.attempts == 1
    assert result.installed == ("extensions.conf", "extra.conf")
    assert (etc / "extensions.conf").read_bytes() == GOOD
    assert (etc / "extra.conf").read_bytes() == EXTRA
    assert (etc / "extensions.conf").stat().st_mode & 0o777 == 0o640  # mode kept
    assert (etc / "manager.conf").read_bytes() == b"[general]\n"  # not ours: untouched
    assert not (etc / "README.txt").exists()
    assert not [p for p in etc.iterdir() if p.name.startswith(".")]  # no temp files left
    assert fake.sent("reload_module") == [{"module": "pbx_config.so"}]
    assert result.summary() == "dialplan reloaded: pbx_config.so reloaded (extensions.conf, extra.conf)"


async def test_reload_retries_while_another_reload_is_in_progress(folders):
    source, etc = folders
    fake = FakeAri()
    fake.reload_answers = [IN_PROGRESS, IN_PROGRESS]
    result = await over_fake(fake, source, etc)
    assert result.ok and result.attempts == 3
    assert len(fake.sent("reload_module")) == 3


async def test_reload_gives_up_after_the_retries_and_restores(folders):
    source, etc = folders
    before = snapshot(etc)
    fake = FakeAri()
    fake.reload_answers = [IN_PROGRESS] * 3
    result = await over_fake(fake, source, etc, retries=3)
    assert not result.ok and result.attempts == 3 and result.restored
    assert "Another reload is currently in progress" in result.error
    assert snapshot(etc) == before


@pytest.mark.parametrize(("answer", "modules", "said"), [
    ((409, "An unknown error occurred while reloading the module"), {"pbx_config.so"},
     "Asterisk refused to reload pbx_config.so: An unknown error occurred while reloading the module"),
    (None, set(), "Asterisk has no module pbx_config.so loaded: Module not found in running modules"),
], ids=["refused", "not_loaded"])
async def test_asterisk_refusing_the_reload_restores_the_previous_files(folders, answer, modules, said):
    source, etc = folders
    before = snapshot(etc)
    fake = FakeAri()
    fake.modules = modules
    fake.reload_answers = [answer] if answer else []
    result = await over_fake(fake, source, etc)
    assert not result.ok and result.restored and result.attempts == 1
    assert result.error == f"{said}; previous dialplan files restored, running dialplan unchanged"
    assert result.message == said.partition(": ")[2]  # Asterisk's own words
    assert snapshot(etc) == before  # extra.conf, new in this reload, is gone again
    assert (etc / "extensions.conf").stat().st_mode & 0o777 == 0o640


async def test_asterisk_still_booting_restores(folders):
    source, etc = folders
    before = snapshot(etc)
    fake = FakeAri()
    fake.booted = False  # res_ari answers 503 to everything until fully booted
    result = await over_fake(fake, source, etc)
    assert not result.ok and result.restored
    assert result.error.startswith("Asterisk is not fully booted yet: Asterisk not booted;")
    assert snapshot(etc) == before


async def test_a_reload_asterisk_queued_counts_as_done(folders):
    source, etc = folders
    fake = FakeAri()
    fake.reload_answers = [(202, "")]  # AST_MODULE_RELOAD_QUEUED: done once fully booted
    result = await over_fake(fake, source, etc)
    assert result.ok and result.message == "pbx_config.so reload queued until Asterisk is fully booted"
    assert (etc / "extra.conf").read_bytes() == EXTRA


async def test_a_dialplan_with_problems_is_never_installed(folders):
    source, etc = folders
    before = snapshot(etc)
    fake = FakeAri()
    (source / "extra.conf").write_bytes(b"[extra\n")
    result = await over_fake(fake, source, etc)
    assert not result.ok and "nothing installed" in result.error
    assert "extra.conf:1: malformed context header (expected [name])" in result.problems
    assert result.summary().startswith("dialplan NOT reloaded: dialplan check failed")
    assert "\n  extra.conf:1: malformed context header" in result.summary()
    assert snapshot(etc) == before
    assert fake.requests == []  # Asterisk was not even asked


# -- the real HttpAri against a stand-in ARI on a real socket ---------------------------------------


class StandInAri:
    """ARI's `PUT /ari/asterisk/modules/{name}` behind basic auth (res_ari's 401), answering 204."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.expected = "Basic " + base64.b64encode(f"caseline:{PASSWORD}".encode()).decode()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != self.expected:
            return web.json_response({"message": "Authentication required"}, status=401)
        return web.Response(status=204)


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandInAri, int]]:
    ari = StandInAri()
    app = web.Application()
    app.router.add_route("PUT", "/ari/asterisk/modules/{name}", ari.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield ari, server.port
    finally:
        await server.close()


def settings(port: int, password: str = PASSWORD) -> Settings:
    return Settings(ari=AriSettings(url=f"http://127.0.0.1:{port}", password=SecretStr(password)))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_cli_path_reloads_over_ari(folders, stand_in):
    source, etc = folders
    ari, port = stand_in
    result = await reload_dialplan_over_ari(settings(port), source, etc)
    assert result.ok and result.message == "pbx_config.so reloaded"
    assert ari.requests == [("PUT", "/ari/asterisk/modules/pbx_config.so")]


async def test_refused_credentials_restore_and_never_show_the_password(folders, stand_in):
    source, etc = folders
    before = snapshot(etc)
    ari, port = stand_in
    result = await reload_dialplan_over_ari(settings(port, password="wrong-password"), source, etc)
    assert not result.ok and result.restored
    assert result.error.startswith(f"ARI at 127.0.0.1:{port} refused user 'caseline' (CASELINE_ARI_PASSWORD, "
                                   "ari.conf): Authentication required;")
    assert "wrong-password" not in repr(result) and PASSWORD not in repr(result)
    assert snapshot(etc) == before


async def test_ari_down_restores_quickly_and_says_the_dialplan_is_unchanged(folders):
    source, etc = folders
    before = snapshot(etc)
    port = closed_port()
    started = time.monotonic()
    result = await reload_dialplan_over_ari(settings(port), source, etc)
    assert time.monotonic() - started < 5
    assert not result.ok and result.restored
    assert result.error == (f"ARI at 127.0.0.1:{port}: unreachable (ClientConnectorError); "
                            "previous dialplan files restored, running dialplan unchanged")
    assert snapshot(etc) == before


async def test_an_ari_that_never_answers_is_bounded_and_the_outcome_unknown(folders):
    source, etc = folders
    before = snapshot(etc)
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await reload_dialplan_over_ari(settings(port), source, etc, timeout_s=0.3)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert not result.ok and result.restored and result.attempts == 1
    assert result.error.startswith(f"ARI at 127.0.0.1:{port}: no answer (")
    assert result.error.endswith("Asterisk may have loaded the new ones: reload again")  # the request left
    assert snapshot(etc) == before


@pytest.mark.parametrize("case", ["no_password", "no_install_dir", "no_source", "empty_source"])
async def test_configuration_mistakes_change_nothing(folders, case):
    source, etc = folders
    before = snapshot(etc)
    target = settings(closed_port(), password="" if case == "no_password" else PASSWORD)
    etc_arg = etc / "missing" if case == "no_install_dir" else etc
    if case == "no_source":
        source = source / "missing"
    elif case == "empty_source":
        for p in source.glob("*.conf"):
            p.unlink()
    result = await reload_dialplan_over_ari(target, source, etc_arg)
    assert not result.ok and result.error and not result.restored
    assert snapshot(etc) == before
