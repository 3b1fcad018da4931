"""A TCP proxy for fault tests: forwards, and can freeze (a silent network) or cut (RST)."""
from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.frozen = asyncio.Event()  # set: existing connections stop carrying bytes
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        frozen = self.frozen.is_set()  # connections made after a freeze work normally
        self.links.append((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst, frozen_from_start=frozen))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *,
                    frozen_from_start: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                if self.frozen.is_set() and not frozen_from_start:
                    await asyncio.Event().wait()  # swallow silently, never close: a dead network
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError):
            dst.close()

    def freeze(self) -> None:
        """Existing connections go silent (no FIN, no RST); new ones are forwarded."""
        self.frozen.set()

    async def close(self) -> None:
        if self.server:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        for a, b in self.links:
            for w in (a, b):
                with contextlib.suppress(Exception):
                    w.close()
