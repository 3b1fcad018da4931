"""Live reloads (POST /reload, `caseline reload`, SIGHUP) never touch the CRM cache off the loop.

Reproduced before: POST /reload ran the whole reload in a worker thread, which cleared the
CRM cache while calls used it on the event loop (3,493 errors in 905,873 cache operations),
and SIGHUP reloaded without the API's lock.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

from ari_app.config.live import LiveConfig
from ari_app.core.models import SourceStatus
from ari_app.crm.adapters.file import FileCrm
from ari_app.crm.cache import TtlLru
from ari_app.crm.service import CrmService
from ari_app.main import reload_hook
from ari_app.ops.config_reload import ConfigReloads

CONFIG = Path(__file__).resolve().parents[2] / "config"
NUMBERS = ["+79161234567", "+79161234568", "+79031112233", "+79990000001"]  # the last one: unknown


class ThreadRecordingCache(TtlLru):
    """The CRM cache, noting which thread touches it (it is not thread-safe)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def get(self, key, *default):  # type: ignore[no-untyped-def]
        self.threads.add(threading.get_ident())
        return super().get(key, *default)

    def put(self, key, value, ttl_s):  # type: ignore[no-untyped-def]
        self.threads.add(threading.get_ident())
        super().put(key, value, ttl_s)

    def pop(self, key):  # type: ignore[no-untyped-def]
        self.threads.add(threading.get_ident())
        super().pop(key)

    def clear(self):  # type: ignore[no-untyped-def]
        self.threads.add(threading.get_ident())
        super().clear()


class OneAtATime:
    """Wraps LiveConfig.prepare_reload (it runs in worker threads): how many ran, how many at once."""

    def __init__(self, config: LiveConfig) -> None:
        self.prepare = config.prepare_reload
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0
        config.prepare_reload = self  # type: ignore[method-assign]

    def __call__(self):  # type: ignore[no-untyped-def]
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return self.prepare()
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    for name in ("routing.yaml", "legal_entities.yaml", "clients.yaml"):
        shutil.copy(CONFIG / name, tmp_path / name)
    return tmp_path


def live(config_dir: Path) -> tuple[LiveConfig, CrmService, ThreadRecordingCache]:
    crm = CrmService(FileCrm(config_dir / "clients.yaml"))
    cache = crm._cache = ThreadRecordingCache()
    return LiveConfig(config_dir / "routing.yaml", config_dir / "legal_entities.yaml", crm), crm, cache


async def test_reloads_from_the_api_and_sighup_touch_the_cache_only_on_the_loop(config_dir: Path):
    config, crm, cache = live(config_dir)
    reloads = ConfigReloads(config)
    prepared = OneAtATime(config)
    done = asyncio.Event()
    lookups = 0

    async def calls() -> None:  # what calls do meanwhile: read (and fill) the CRM cache
        nonlocal lookups
        while not done.is_set():
            for number in NUMBERS:
                facts = await crm.facts(number)
                assert facts.status in (SourceStatus.OK, SourceStatus.UNKNOWN)
                lookups += 1
            await asyncio.sleep(0)  # a cache hit never suspends: let the reloads run

    hup = asyncio.Event()

    def on_sighup() -> None:  # main.py's wiring: loop.add_signal_handler(SIGHUP, reloads.on_signal)
        reloads.on_signal()
        hup.set()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    readers = [asyncio.create_task(calls()) for _ in range(2)]
    try:
        for _ in range(3):
            reloads.on_signal()
        os.kill(os.getpid(), signal.SIGHUP)  # and one real signal
        results = await asyncio.gather(*(reloads.reload() for _ in range(8)))
        await hup.wait()
        await reloads.wait_signalled()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        done.set()
        await asyncio.gather(*readers)
    assert results == [{"ok": True, "error": None}] * 8
    assert prepared.calls == 12 and prepared.most == 1  # one lock for every path
    assert lookups > 0
    assert cache.threads == {threading.get_ident()}, "the CRM cache was touched off the event loop"


async def test_the_reload_hook_of_the_api_keeps_the_cache_on_the_loop(config_dir: Path):
    config, crm, cache = live(config_dir)
    for number in NUMBERS:
        await crm.facts(number)
    assert crm.cache_size == len(NUMBERS)
    assert await reload_hook(config)() == {"ok": True, "error": None}
    assert crm.cache_size == 0  # dropped: a reassignment in clients.yaml counts at once
    assert cache.threads == {threading.get_ident()}


async def test_a_broken_file_keeps_the_running_config_and_the_cache(config_dir: Path):
    config, crm, _ = live(config_dir)
    before = config.current
    await crm.facts(NUMBERS[0])
    (config_dir / "clients.yaml").write_text("clients:\n  - id: C-1\n    numbers: [not-a-number]\n")
    result = await ConfigReloads(config).reload()
    assert result["ok"] is False and "clients.yaml" in str(result["error"])
    assert config.current is before and crm.cache_size == 1
    assert (await crm.facts(NUMBERS[0])).detail == "cached"
