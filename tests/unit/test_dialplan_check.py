"""The dialplan checker (pure), and `reload_dialplan` against a stand-in AMI server on a real socket."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from ari_app.ops.ami import AmiAuthError, AmiClient, AmiUnavailable, ami_ready
from ari_app.ops.dialplan_check import check_dialplan, strip_comment, unbalanced
from ari_app.ops.dialplan_reload import read_dialplan_dir, reload_dialplan
from ari_app.config.settings import AmiSettings, Settings

PROJECT_DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan"
SECRET = "ami-s3cr3t"

GOOD = b"""[general]
static = yes

[globals]
CASELINE_APP = caseline

#include "extra.conf"

[inbound]
exten => s,1,Goto(caseline-route,s,1)
exten => _[+0-9].,1,Goto(caseline-route,s,1) ; a comment
 same => n(label),Set(X=$[${Y} + 1])
 same => n,Set(Z=a\\;b)
include => extra
exten => 100,hint,PJSIP/mgr1
;-- a block
comment --;
[caseline-route]
exten => s,1,Stasis(caseline,inbound)
 same => n,Hangup
"""
EXTRA = b"[extra]\nexten => 9100,1,NoOp()\n"


def problems(text: bytes, extra: bytes = EXTRA) -> list[str]:
    return [str(p) for p in check_dialplan({"extensions.conf": text, "extra.conf": extra})]


# -- the checker --------------------------------------------------------------------------


def test_the_project_dialplan_passes():
    files = read_dialplan_dir(PROJECT_DIALPLAN)
    assert {"extensions.conf", "caseline-agi.conf"} <= set(files)
    assert check_dialplan(files) == []


def test_a_good_dialplan_passes():
    assert problems(GOOD) == []


@pytest.mark.parametrize(("text", "expected"), [
    (b"[inbound\nexten => s,1,NoOp()\n", "extensions.conf:1: malformed context header"),
    (b"inbound]\n", "extensions.conf:1: unbalanced ']'"),
    (b"exten => s,1,NoOp()\n", "extensions.conf:1: statement outside any context"),
    (b"[a]\nexten => s,1\n", "extensions.conf:2: exten => needs 'pattern,priority,application'"),
    (b"[a]\nexten => s,n,NoOp()\n", "extensions.conf:2: extension 's' starts with 'n'"),
    (b"[a]\nexten => s,2,NoOp()\n", "extensions.conf:2: extension 's' starts at priority 2"),
    (b"[a]\nexten => s,1,NoOp()\nexten => s,1,NoOp()\n", "extensions.conf:3: extension 's' priority 1 defined twice"),
    (b"[a]\nexten => s,x,NoOp()\n", "extensions.conf:2: priority 'x'"),
    (b"[a]\nsame => n,NoOp()\n", "extensions.conf:2: 'same =>' without an 'exten =>'"),
    (b"[a]\nexten => s,1,Dial(PJSIP/x,20\n", "extensions.conf:2: application line: unclosed '('"),
    (b"[a]\nexten => s,1,Set(A=${B)\n", "extensions.conf:2: application line: unexpected ')'"),
    (b"[a]\nexten => s,1,Set(A=$[1+1)]\n", "extensions.conf:2: application line: unexpected ')'"),
    (b"[a]\nexten => s,1,\n", "extensions.conf:2: expected an application"),
    (b"[a]\nexten => s,1,9Bad()\n", "extensions.conf:2: expected an application"),
    (b"[a]\nexten => _[0-9,1,NoOp()\n", "extensions.conf:2: pattern '_[0-9': unbalanced brackets"),
    (b"[a]\nexten -> s,1,NoOp()\n", "extensions.conf:2: expected 'exten =>'"),
    (b"[a]\nfoo => bar\n", "extensions.conf:2: expected 'exten =>'"),
    (b"[a]\ninclude => nowhere\n", "extensions.conf:2: include => nowhere: no such context"),
    (b"[a]\ninclude =>\n", "extensions.conf:2: include => needs a context name"),
    (b'#include "missing.conf"\n', "extensions.conf:1: #include 'missing.conf': no such file"),
    (b'#include "/etc/passwd"\n', "extensions.conf:1: #include '/etc/passwd': only files of this folder"),
    (b'#include "../x.conf"\n', "extensions.conf:1: #include '../x.conf': only files of this folder"),
    (b"#exec /bin/sh -c 'echo [x]'\n", "extensions.conf:1: #exec runs a shell command"),
    (b"#define X\n", "extensions.conf:1: unknown directive"),
    (b"[general]\nstatic yes\n", "extensions.conf:2: expected 'key = value' in [general]"),
    (b"[a]\n;-- never closed\n", "extensions.conf: block comment ';--' never closed"),
    (b"[a]\r\nexten => s,1,NoOp()\r\n", "extensions.conf:1: CR character"),
    (b"[a]\nexten => s,1,NoOp(\x00)\n", "extensions.conf:2: NUL byte"),
    (b"[a]\nexten => s,1,NoOp(\xff)\n", "extensions.conf:2: not UTF-8"),
])
def test_problems_name_file_line_and_reason(text, expected):
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_missing_entry_file_and_bad_names():
    found = [str(p) for p in check_dialplan({"other.conf": b"[a]\n", "bad name.conf": b""})]
    assert "extensions.conf: missing (Asterisk reads the dialplan from it)" in found
    assert any(p.startswith("bad name.conf: file name") for p in found)


def test_oversized_file():
    found = problems(b"[a]\n" + b";" * (1024 * 1024 + 10))
    assert any("larger than" in p for p in found)


def test_tryinclude_of_a_missing_file_is_fine():
    assert problems(b'#tryinclude "local.conf"\n[a]\nexten => s,1,NoOp()\n') == []


def test_contexts_may_continue_across_sections_and_files():
    text = b"[a]\nexten => s,1,NoOp()\n[b]\nexten => s,1,NoOp()\n[a]\nexten => s,n,NoOp()\n"
    assert problems(text) == []


def test_helpers():
    assert strip_comment("exten => s,1,NoOp(a\\;b) ; c") == "exten => s,1,NoOp(a\\;b) "
    assert unbalanced("Set(X=${A}$[1+(2)])") is None
    assert unbalanced("Set(X=\\(") == "unclosed '('"


# -- reload against a stand-in AMI ---------------------------------------------------------


class FakeAmi:
    """Speaks Asterisk's AMI wire format: greeting, Login, Reload, Ping, Logoff."""

    def __init__(self, reload_answers: list[str] | None = None, *, silent: bool = False,
                 drop_on_reload: bool = False) -> None:
        # each answer is "Success:<message>" or "Error:<message>"
        self.reload_answers = list(reload_answers or ["Success:Module Reloaded"])
        self.silent = silent
        self.drop_on_reload = drop_on_reload
        self.actions: list[dict[str, str]] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def start(self) -> FakeAmi:
        self.server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        task = asyncio.get_running_loop().create_task(self._session(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.silent:
            await reader.read()  # accept, never answer
            return
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line)
                self.actions.append(fields)
                action, action_id = fields.get("Action", "").lower(), fields.get("ActionID", "")
                if action == "login":
                    if fields.get("Secret") == SECRET and fields.get("Username") == "caseline":
                        self._answer(writer, action_id, "Success", "Authentication accepted")
                    else:
                        self._answer(writer, action_id, "Error", "Authentication failed")
                        await writer.drain()
                        writer.close()
                        return
                elif action == "reload":
                    if self.drop_on_reload:
                        writer.close()
                        return
                    status, _, message = self.reload_answers.pop(0).partition(":")
                    self._answer(writer, action_id, status, message)
                elif action == "ping":
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n".encode())
                elif action == "logoff":
                    self._answer(writer, action_id, "Goodbye", "Thanks for all the fish.")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    self._answer(writer, action_id, "Error", "Invalid/unknown command")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    @staticmethod
    def _answer(writer: asyncio.StreamWriter, action_id: str, status: str, message: str) -> None:
        writer.write(f"Response: {status}\r\nActionID: {action_id}\r\nMessage: {message}\r\n\r\n".encode())

    def names(self) -> list[str]:
        return [a.get("Action", "") for a in self.actions]


@pytest.fixture
async def fake_ami() -> AsyncIterator[list[FakeAmi]]:
    started: list[FakeAmi] = []
    yield started
    for ami in started:
        await ami.stop()


async def ami(started: list[FakeAmi], **kwargs) -> FakeAmi:
    server = await FakeAmi(**kwargs).start()
    started.append(server)
    return server


def settings(port: int, secret: str = SECRET) -> Settings:
    return Settings(ami=AmiSettings(host="127.0.0.1", port=port, user="caseline", secret=SecretStr(secret)))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


async def test_reload_installs_and_reports_asterisks_answer(fake_ami, folders):
    source, etc = folders
    server = await ami(fake_ami)
    result = await reload_dialplan(settings(server.port), source, etc)

    assert result.ok, result
    assert result.message == "Module Reloaded" and result.attempts == 1
    assert result.installed == ("extensions.conf", "extra.conf")
    assert (etc / "extensions.conf").read_bytes() == GOOD
    assert (etc / "extra.conf").read_bytes() == EXTRA
    assert (etc / "extensions.conf").stat().st_mode & 0o777 == 0o640  # mode kept
    assert (etc / "manager.conf").read_bytes() == b"[general]\n"  # not ours: untouched
    assert not (etc / "README.txt").exists()
    assert not [p for p in etc.iterdir() if p.name.startswith(".")]  # no temp files left
    assert server.names()[:2] == ["Login", "Reload"]  # then a Logoff, not awaited
    assert result.summary() == "dialplan reloaded: Module Reloaded (extensions.conf, extra.conf)"
    assert server.actions[0]["Events"] == "off"
    assert server.actions[1]["Module"] == "pbx_config"


async def test_reload_retries_while_a_reload_is_in_progress(fake_ami, folders):
    source, etc = folders
    server = await ami(fake_ami, reload_answers=["Error:A reload is in progress"] * 2 + ["Success:Module Reloaded"])
    result = await reload_dialplan(settings(server.port), source, etc, retry_delay_s=0)
    assert result.ok and result.attempts == 3


async def test_reload_gives_up_after_the_retries_and_restores(fake_ami, folders):
    source, etc = folders
    before = snapshot(etc)
    server = await ami(fake_ami, reload_answers=["Error:A reload is in progress"] * 3)
    result = await reload_dialplan(settings(server.port), source, etc, retries=3, retry_delay_s=0)
    assert not result.ok and result.attempts == 3 and result.restored
    assert "A reload is in progress" in result.error
    assert snapshot(etc) == before


async def test_asterisk_refusing_the_reload_restores_the_previous_files(fake_ami, folders):
    source, etc = folders
    before = snapshot(etc)
    server = await ami(fake_ami, reload_answers=["Error:An unknown error occurred"])
    result = await reload_dialplan(settings(server.port), source, etc)
    assert not result.ok and result.restored
    assert result.message == "An unknown error occurred"
    assert "running dialplan unchanged" in result.error
    assert snapshot(etc) == before  # extra.conf, new in this reload, is gone again
    assert (etc / "extensions.conf").stat().st_mode & 0o777 == 0o640


async def test_refused_login_restores_and_never_shows_the_secret(fake_ami, folders):
    source, etc = folders
    before = snapshot(etc)
    server = await ami(fake_ami)
    result = await reload_dialplan(settings(server.port, secret="wrong-secret"), source, etc)
    assert not result.ok and result.restored and result.attempts == 0
    assert "refused user 'caseline'" in result.error and "Authentication failed" in result.error
    assert "wrong-secret" not in repr(result)
    assert snapshot(etc) == before
    assert server.names() == ["Login"]


async def test_ami_down_restores_quickly(folders):
    source, etc = folders
    before = snapshot(etc)
    result = await reload_dialplan(settings(closed_port()), source, etc)
    assert not result.ok and result.restored
    assert result.error.startswith("AMI at 127.0.0.1:")
    assert snapshot(etc) == before


async def test_ami_that_never_answers_is_bounded(fake_ami, folders):
    source, etc = folders
    before = snapshot(etc)
    server = await ami(fake_ami, silent=True)
    result = await reload_dialplan(settings(server.port), source, etc, connect_timeout=0.2)
    assert not result.ok and result.restored and "within 0.2 s" in result.error
    assert snapshot(etc) == before


async def test_connection_lost_after_the_request_says_the_outcome_is_unknown(fake_ami, folders):
    source, etc = folders
    server = await ami(fake_ami, drop_on_reload=True)
    result = await reload_dialplan(settings(server.port), source, etc)
    assert not result.ok and result.restored and result.attempts == 1
    assert "AMI connection lost" in result.error and "reload again" in result.error


async def test_a_dialplan_with_problems_is_never_installed(fake_ami, folders):
    source, etc = folders
    before = snapshot(etc)
    server = await ami(fake_ami)
    (source / "extra.conf").write_bytes(b"[extra\n")
    result = await reload_dialplan(settings(server.port), source, etc)
    assert not result.ok and "nothing installed" in result.error
    assert "extra.conf:1: malformed context header (expected [name])" in result.problems
    assert result.summary().startswith("dialplan NOT reloaded: dialplan check failed")
    assert "\n  extra.conf:1: malformed context header" in result.summary()
    assert snapshot(etc) == before
    assert server.actions == []  # Asterisk was not even asked


@pytest.mark.parametrize("case", ["no_secret", "no_install_dir", "no_source", "empty_source"])
async def test_configuration_mistakes_change_nothing(folders, case):
    source, etc = folders
    before = snapshot(etc)
    target_settings = settings(closed_port(), secret="" if case == "no_secret" else SECRET)
    etc_arg = etc / "missing" if case == "no_install_dir" else etc
    if case == "no_source":
        source = source / "missing"
    elif case == "empty_source":
        for p in source.glob("*.conf"):
            p.unlink()
    result = await reload_dialplan(target_settings, source, etc_arg)
    assert not result.ok and result.error and not result.restored
    assert snapshot(etc) == before


async def test_ami_client_and_readiness(fake_ami):
    server = await ami(fake_ami)
    async with AmiClient(settings(server.port).ami) as client:
        assert client.connected
        assert await client.ping()
    assert not client.connected
    assert await ami_ready(settings(server.port).ami)
    assert not await ami_ready(settings(closed_port()).ami)
    assert not await ami_ready(settings(server.port, secret="nope").ami)
    with pytest.raises(AmiAuthError):
        await AmiClient(settings(server.port, secret="").ami).connect()
    with pytest.raises(AmiUnavailable):
        await AmiClient(settings(closed_port()).ami, connect_timeout=1).connect()
