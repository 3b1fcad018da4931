"""The bounded AMI client (ari_app/ops/ami.py) and the readiness probe, against a stand-in AMI
server on a real socket. Caseline's AMI user has no write class (config/asterisk/manager.conf),
so what the client sends must need none: Login, Ping, Logoff."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from ari_app.config.settings import AmiSettings
from ari_app.ops.ami import AmiAuthError, AmiClient, AmiUnavailable, ami_ready

SECRET = "ami-s3cr3t"
NO_CLASS_NEEDED = {"Login", "Ping", "Logoff"}  # main/manager.c registers them with privilege 0


class FakeAmi:
    """Speaks Asterisk's AMI wire format: greeting, Login, Ping, Logoff (any other action:
    "Permission denied", as for a user without write classes, which Caseline's is)."""

    def __init__(self, *, silent: bool = False) -> None:
        self.silent = silent
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
                elif action == "ping":
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n".encode())
                elif action == "logoff":
                    self._answer(writer, action_id, "Goodbye", "Thanks for all the fish.")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    self._answer(writer, action_id, "Error", "Permission denied")
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


def settings(port: int, secret: str = SECRET) -> AmiSettings:
    return AmiSettings(host="127.0.0.1", port=port, user="caseline", secret=SecretStr(secret))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_ami_client_and_readiness(fake_ami):
    server = await ami(fake_ami)
    async with AmiClient(settings(server.port)) as client:
        assert client.connected
        assert await client.ping()
    assert not client.connected
    assert await ami_ready(settings(server.port))
    assert not await ami_ready(settings(closed_port()))
    assert not await ami_ready(settings(server.port, secret="nope"))
    with pytest.raises(AmiAuthError):
        await AmiClient(settings(server.port, secret="")).connect()
    with pytest.raises(AmiUnavailable):
        await AmiClient(settings(closed_port()), connect_timeout=1).connect()
    assert set(server.names()) <= NO_CLASS_NEEDED, server.names()


async def test_an_ami_that_never_answers_is_bounded(fake_ami):
    server = await ami(fake_ami, silent=True)
    with pytest.raises(AmiUnavailable, match="within 0.2 s"):
        await AmiClient(settings(server.port), connect_timeout=0.2).connect()
    assert not await ami_ready(settings(server.port), timeout=0.2)
