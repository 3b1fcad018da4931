"""Admission control's dialplan gate: while Caseline sheds, new calls skip Stasis entirely.

Shedding inside the app (stasis/shed.py) still costs Asterisk a Stasis entry, its events and
a `continue` for every call; past the ARI path's ceiling that alone overloads Asterisk (the
first overload run: docs/reliability.md). So while admission sheds, one dialplan global,
CASELINE_ADMISSION=shed, sends new calls from [caseline-route] and [caseline-agi] straight to
the operators' queue (CASELINE_SHED_QUEUE) at CASELINE_SHED_PRIORITY (an unknown caller's
base priority), before
Stasis or AGI: what a plain-dialplan queue costs, nothing for Caseline.

The gate stays closed at least `hold_s` after shedding stopped: with no calls reaching the
app the load drops at once, and reopening at every call would flap. It is published again
after every ARI reconnect (a restarted Asterisk has lost it) and when a publish failed; a
dialplan reload resets it to open (`clearglobalvars`) until the next change. The calls it
sheds are counted from their CDRs (userfield `caseline:shed`), which the listener sees anyway.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ari_app.ari.interface import Ari, AriError, AriUnavailable
from ari_app.core.admission import ShedTarget

log = logging.getLogger("caseline.admission")

GATE_VARIABLE = "CASELINE_ADMISSION"  # "shed" closes the gate; empty opens it
PRIORITY_VARIABLE = "CASELINE_SHED_PRIORITY"
QUEUE_VARIABLE = "CASELINE_SHED_QUEUE"  # the policy's operators queue (Asterisk's name)
SHED_USERFIELD = "caseline:shed"  # the dialplan marks the CDRs of the calls it sheds
RETRY_S = 1.0
TICK_S = 0.5  # how often a pending reopen is looked at


class DialplanGate:
    def __init__(self, ari: Ari, shed_target: Callable[[], ShedTarget], *, hold_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ari = ari
        self.shed_target = shed_target  # read when the gate closes: the live policy's
        self.hold_s = hold_s
        self.clock = clock
        self.closed = False  # as last published to Asterisk
        self.closings = 0
        self._shedding = False
        self._last_shed = float("-inf")
        self._unknown = True  # Asterisk's value is not known to match ours: publish
        self._wake = asyncio.Event()
        self._wake.set()  # publish "open" at start: a dead predecessor may have left it closed
        # set while ARI's events connection is up (StasisApp.connected): nothing is sent to an
        # Asterisk that is down or still booting (503), only retried once it is back
        self.ready: asyncio.Event | None = None

    def admission_changed(self, reason: str | None) -> None:
        """Admission's state changed (ops/load.py): close at once, reopen after the hold."""
        self._shedding = reason is not None
        self._last_shed = self.clock()
        self._wake.set()

    def republish(self) -> None:
        """Asterisk may have lost the global (reconnect, restart): send it again."""
        self._unknown = True
        self._wake.set()

    def wanted_closed(self) -> bool:
        return self._shedding or self.clock() - self._last_shed < self.hold_s

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S if self.closed else None)
            self._wake.clear()
            closed = self.wanted_closed()
            if closed == self.closed and not self._unknown:
                continue
            if self.ready is not None and not self.ready.is_set():
                await self.ready.wait()
                closed = self.wanted_closed()
            resend, self._unknown = self._unknown, False  # a republish asked meanwhile counts
            try:
                await self._publish(closed, resend)
            except (AriError, AriUnavailable) as e:
                log.warning("admission: could not %s the dialplan gate (%s); retrying",
                            "close" if closed else "open", e)
                self._unknown = True
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def _publish(self, closed: bool, resend: bool) -> None:
        if closed:  # where the gate sends calls first: never a closed gate with old values
            target = self.shed_target()
            await self.ari.set_global(PRIORITY_VARIABLE, str(target.priority))
            await self.ari.set_global(QUEUE_VARIABLE, target.queue)
        await self.ari.set_global(GATE_VARIABLE, "shed" if closed else "")
        if closed and not self.closed:
            self.closings += 1
        if closed != self.closed or (resend and closed):
            log.warning("admission: dialplan gate %s", "closed: new calls go straight to the "
                        "operators' queue" if closed else "open: new calls reach Caseline again")
        self.closed = closed
