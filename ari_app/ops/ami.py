"""A small, bounded AMI client on panoramisk's protocol (wire parsing, actions, ids).

panoramisk's `Manager.connect()` retries a failed connection forever (every
`reconnect_timeout` seconds, from a loop callback nobody awaits) and reconnects after a
lost connection the same way. A CLI command or a readiness probe must instead get one
bounded attempt and a clear error, so this client opens the connection itself, reuses
panoramisk's AMIProtocol and Message/Action types, and never reconnects on its own.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from ari_app.config.settings import AmiSettings

log = logging.getLogger("caseline.ami")


class AmiError(Exception):
    """Base of AMI failures; str() is safe to show to ops staff (never contains the secret)."""


class AmiUnavailable(AmiError):
    """Asterisk's AMI cannot be reached, timed out, or dropped the connection."""


class AmiAuthError(AmiError):
    """Asterisk refused our user/secret (or its ACL refused our address)."""


class AmiActionError(AmiError):
    """Asterisk answered `Response: Error`; `.message` is Asterisk's own text."""

    def __init__(self, action: str, message: str) -> None:
        self.action = action
        self.message = message
        super().__init__(f"Asterisk refused {action}: {message or 'no message'}")


class _NoReconnectManager(Manager):
    """Manager whose connection loss fails in-flight actions instead of reconnecting."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.inflight: set[asyncio.Future[Any]] = set()

    def connection_lost(self, exc: object) -> None:
        self._connected = False
        self.authenticated = False
        if self.pinger is not None:
            self.pinger.cancel()
            self.pinger = None
        self.awaiting_actions.clear()  # panoramisk would resend these after a reconnect
        for future in list(self.inflight):
            if not future.done():
                future.set_exception(AmiUnavailable("AMI connection lost"))


class _Protocol(AMIProtocol):
    """panoramisk's protocol, bound to its manager as soon as the socket exists."""

    def __init__(self, manager: _NoReconnectManager) -> None:
        self._manager = manager

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        m = self._manager
        # What Manager.connection_made would do, minus the pinger and the reconnect.
        self.factory = m
        self.log = m.log
        self.config = m.config
        self.encoding = m.encoding = m.config["encoding"]
        m.protocol = self
        m.responses = self.responses
        m._connected = True


class AmiClient:
    """`async with AmiClient(settings.ami) as ami: await ami.ping()`: Login, Ping and Logoff
    need no AMI class, so the readiness check works with a user that may only read `cdr`."""

    def __init__(self, settings: AmiSettings, *, connect_timeout: float = 3.0,
                 action_timeout: float = 10.0) -> None:
        self.settings = settings
        self.connect_timeout = connect_timeout
        self.action_timeout = action_timeout
        self._manager: _NoReconnectManager | None = None
        self._protocol: _Protocol | None = None

    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    async def connect(self) -> None:
        """Connect and log in, once, within `connect_timeout`; raise AmiError otherwise."""
        s = self.settings
        secret = s.secret.get_secret_value()
        if not secret:
            raise AmiAuthError("AMI secret not configured (CASELINE_AMI_SECRET)")
        loop = asyncio.get_running_loop()
        manager = _NoReconnectManager(loop=loop, host=s.host, port=s.port, events="off",
                                      log=logging.getLogger("caseline.ami.wire"))
        where = f"{s.host}:{s.port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(lambda: _Protocol(manager), s.host, s.port)
        except TimeoutError:
            raise AmiUnavailable(f"AMI at {where}: no connection within {self.connect_timeout:g} s") from None
        except OSError as e:
            raise AmiUnavailable(f"AMI at {where}: {e.strerror or type(e).__name__}") from None
        self._manager, self._protocol = manager, protocol
        try:
            answer = await self._send({"Action": "Login", "Username": s.user, "Secret": secret,
                                       "Events": "off"}, self.connect_timeout)
        except AmiError:
            self._abort()
            raise
        if not answer.success:
            self._abort()
            # Asterisk says "Authentication failed" for a bad user, secret or address
            raise AmiAuthError(f"AMI at {where} refused user {s.user!r}: {answer.message or 'login failed'}")
        manager.authenticated = True

    async def action(self, fields: Mapping[str, str]) -> Message:
        """Send one action; return Asterisk's response, raise AmiActionError on `Error`."""
        answer = await self._send(fields, self.action_timeout)
        if not answer.success:
            raise AmiActionError(str(fields.get("Action", "?")), str(answer.message))
        return answer

    async def ping(self) -> bool:
        try:
            await self.action({"Action": "Ping"})
        except AmiError:
            return False
        return True

    async def close(self) -> None:
        if self._protocol is not None and not self._protocol.closed:
            try:
                self._protocol.send({"Action": "Logoff"})  # polite, not awaited
            finally:
                self._abort(graceful=True)
        self._manager = self._protocol = None

    async def __aenter__(self) -> AmiClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(self, fields: Mapping[str, str], timeout: float) -> Message:
        if self._manager is None or not self.connected:
            raise AmiUnavailable("AMI not connected")
        manager = self._manager
        future = manager.send_action(dict(fields))
        manager.inflight.add(future)
        try:
            async with asyncio.timeout(timeout):
                answer: Any = await future
        except TimeoutError:
            raise AmiUnavailable(f"AMI: no answer to {fields.get('Action')} within {timeout:g} s") from None
        finally:
            manager.inflight.discard(future)
        if isinstance(answer, list):  # an event list; the first message is the response
            answer = answer[0]
        return answer

    def _abort(self, graceful: bool = False) -> None:
        protocol, manager = self._protocol, self._manager
        if protocol is None or manager is None:
            return
        # Fail whatever is still pending, then close without panoramisk re-queueing it.
        manager.connection_lost(None)
        protocol.responses.clear()
        protocol.closed = True
        if graceful:
            protocol.transport.close()
        else:
            protocol.transport.abort()


async def ami_ready(settings: AmiSettings, timeout: float = 2.0) -> bool:
    """Readiness probe: connect, log in, ping, log off, all within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            async with AmiClient(settings, connect_timeout=timeout, action_timeout=timeout) as ami:
                return await ami.ping()
    except (AmiError, TimeoutError):
        return False
