"""The one place that builds and wires everything."""
from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from .ari.http import HttpAri
from .calls.app import StasisApp
from .calls.greet import make_greeter
from .settings import load_settings

log = logging.getLogger("caseline")


async def run_forever(config_dir: Path, *, greet: bool = False) -> int:
    settings = load_settings(config_dir)
    logging.basicConfig(level=settings.logging.level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with HttpAri(settings.ari.url, settings.ari.user, settings.ari.password.get_secret_value(),
                       settings.ari.app, heartbeat_s=settings.ari.heartbeat_s) as ari:
        app = StasisApp(ari, make_greeter(settings.calls.greeting))
        runner = asyncio.create_task(app.run(), name="stasis-app")
        stopper = asyncio.create_task(stop.wait(), name="stop-signal")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        runner.cancel()
        stopper.cancel()
        await asyncio.gather(runner, stopper, return_exceptions=True)
        if runner in done and runner.exception():
            raise runner.exception()
    return 0
