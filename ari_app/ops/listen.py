"""Listening sockets that anyone on the host can reach: exclusive binds, bounded connections.

Every idle connection holds a file descriptor. Without bounds a few thousand idle sockets
to the ops port (no login needed) exhaust the process's descriptors (EMFILE): ARI, Redis,
the CRM and FastAGI then fail with it. So the ops API
- holds at most `limit` connections; a new one beyond it closes the oldest idle connection
  (one that never sent a complete request goes first), so a flood of idle sockets cannot
  lock ops staff out; when every connection is inside a handler the new one is refused;
- gives a connection `header_timeout` to deliver its first complete request; after a
  response aiohttp's keep-alive timeout bounds the wait for the next one.

Ports are bound exclusively (no SO_REUSEPORT): a second instance on the same port would
share its connections with the first, and `caseline reload` would reach only one of them.
"""
from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("caseline.ops.listen")


class PortInUse(OSError):
    """The port is taken (another Caseline instance?). str() is one line naming the port."""

    def __init__(self, what: str, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{what}: {host}:{port} is already in use "
                                           "(is another Caseline instance running?)")
        self.what, self.host, self.port = what, host, port

    def __str__(self) -> str:
        return str(self.strerror)


def is_port_in_use(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno == errno.EADDRINUSE


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # the descriptor is freed now, not when the peer gives up


class ConnectionGuard:
    """The protocol factory of a bounded aiohttp server (see the module docstring)."""

    def __init__(self, server: web.Server, *, limit: int, header_timeout: float) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.server = server
        self.limit = limit
        self.header_timeout = header_timeout
        self.evicted = self.refused = self.expired = 0
        self._served: set[RequestHandler] = set()  # has started at least one request
        self._busy: set[RequestHandler] = set()  # inside a request handler now
        server.request_handler = self._tracked(server.request_handler)

    def _tracked(self, handle: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]):
        async def tracked(request: web.BaseRequest) -> web.StreamResponse:
            protocol = request.protocol
            self._served.add(protocol)
            self._busy.add(protocol)
            try:
                return await handle(request)
            finally:
                self._busy.discard(protocol)
        return tracked

    def open_connections(self) -> list[RequestHandler]:
        """Oldest first; closed ones leave the server's list only once their task ends."""
        alive = [h for h in self.server.connections
                 if h.transport is not None and not h.transport.is_closing()]
        self._served.intersection_update(alive)
        return alive

    def __call__(self) -> asyncio.Protocol:
        connections = self.open_connections()
        if len(connections) >= self.limit:
            idle = [h for h in connections if h not in self._busy]
            if not idle:
                self.refused += 1
                log.warning("ops API: %d connections, all busy: refusing a new one", self.limit)
                return _Refused()
            never_served = [h for h in idle if h not in self._served]
            (never_served or idle)[0].force_close()
            self.evicted += 1
            log.warning("ops API: connection limit (%d) reached: closed the oldest idle connection",
                        self.limit)
        handler = self.server()
        asyncio.get_running_loop().call_later(self.header_timeout, self._deadline, handler)
        return handler

    def _deadline(self, handler: RequestHandler) -> None:
        if handler in self._served or handler.transport is None or handler.transport.is_closing():
            return
        self.expired += 1
        handler.force_close()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a ConnectionGuard; bound without SO_REUSEPORT."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard,
                 *, backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard, self._host, self._port,
                                                backlog=self._backlog, reuse_port=False)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (before, after).

    The usual soft limit is 1024 descriptors, shared by every socket of the process (ARI,
    Redis, AMI, the CRM, FastAGI, the ops API): the hard limit costs nothing until used.
    """
    import resource  # POSIX only, like the rest of the daemon

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as e:
        log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, e)
        return soft, soft
    return soft, target
