"""Shared fixtures: the real lab (Asterisk, Redis, SIPp) and a running Caseline process.

Real parts are started, never faked. Without them a test skips locally and FAILS in CI
(CI=true), so a broken lab can never turn into a green run.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import urllib.error
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

from labkit import asterisk as lab_asterisk
from labkit import paths as lab_paths
from labkit import root as lab_root
from labkit import sipp
from labkit.config_copy import copy_config
from labkit.redis_server import RedisServer, RedisUnavailable
from redis.asyncio import Redis
from labkit.caseline_process import CaselineProcess, ari as lab_ari


IN_CI = os.environ.get("CI", "").lower() == "true"


def need(what: str, reason: str) -> None:
    """Skip locally, fail in CI: a test that needs a real part must not pass without it."""
    message = f"{what} unavailable: {reason}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class Lab:
    ari_url: str
    secrets: dict[str, str]
    root: Path

    def env(self) -> dict[str, str]:
        """Environment for a Caseline process talking to this lab."""
        return {**self.secrets, "CASELINE_ARI_URL": self.ari_url}

    @property
    def cdr_csv(self) -> Path:
        return self.root / "var/log/asterisk/cdr-csv/Master.csv"

    def cdr_rows(self, src: str) -> list[list[str]]:
        """Asterisk's own CSV CDRs whose source is `src` (Debian's 18 columns)."""
        if not self.cdr_csv.exists():
            return []
        # hostile-input tests put invalid UTF-8 caller IDs into CDRs: read them leniently
        with self.cdr_csv.open(newline="", errors="replace") as f:
            return [row for row in csv.reader(f) if len(row) > 1 and row[1] == src]

    def ari(self, method: str, path: str) -> object:
        return lab_ari(method, path)

    def reset(self) -> None:
        """Hang up every channel and destroy every bridge, so tests don't see each other."""
        for channel in self.ari("GET", "/channels") or []:
            try:
                self.ari("DELETE", f"/channels/{channel['id']}")
            except urllib.error.HTTPError:
                pass  # already gone
        for bridge in self.ari("GET", "/bridges") or []:
            try:
                self.ari("DELETE", f"/bridges/{bridge['id']}")
            except urllib.error.HTTPError:
                pass


@pytest.fixture(scope="session")
def lab() -> Lab:
    if shutil.which("sipp") is None and not IN_CI:
        need("SIPp", "sipp not installed (scripts/lab up installs it)")
    try:
        lab_asterisk.up()
    except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
        need("Asterisk lab", f"{type(e).__name__}: {e}")
    return Lab(lab_paths.ARI_URL, lab_root.lab_secrets(), lab_paths.ROOT)


@pytest.fixture
def asterisk(lab: Lab) -> Iterator[Lab]:
    lab.reset()
    yield lab
    lab.reset()


@pytest.fixture(autouse=True)
async def no_sipp_callers_left() -> AsyncIterator[None]:
    """A test that fails mid-call must not leave its SIPp callers running into the next one."""
    yield
    await sipp.stop_callers()


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[dict[str, sipp.Phone]]:
    """Start lab phones: phones['mgr1'] = ...; call `start(name, behaviour)` via the dict helper."""
    started: dict[str, sipp.Phone] = {}
    yield started
    for phone in started.values():
        phone.stop()


def start_phones(started: dict[str, sipp.Phone], workdir: Path, **behaviours: str) -> None:
    """start_phones(phones, tmp_path, mgr1="answer", mgr2="busy", op1="answer:3000")."""
    for name, spec in behaviours.items():
        behaviour, _, after = spec.partition(":")
        started[name] = sipp.Phone(name, workdir, behaviour, int(after or 0)).start()


@pytest.fixture
async def caseline(asterisk: Lab, tmp_path: Path) -> AsyncIterator[CaselineProcess]:
    process = CaselineProcess(tmp_path, ["--greet"], PROJECT / "config")
    process.lab = asterisk
    try:
        await process.registered()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def redis_session_server() -> Iterator[RedisServer]:
    """One real redis-server shared by the in-process tests (each gets a flushed database)."""
    try:
        server = RedisServer.start()
    except RedisUnavailable as e:
        need("redis-server", str(e))
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_session_server: RedisServer) -> AsyncIterator[Redis]:
    """A client on an empty database, closed after the test."""
    client = Redis.from_url(redis_session_server.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A fresh real redis-server for one test (the app under test and the test share it)."""
    try:
        server = RedisServer.start()
    except RedisUnavailable as e:
        need("redis-server", str(e))
    try:
        yield server.url
    finally:
        server.stop()


def lab_config(tmp_path: Path, **routing_changes: object) -> Path:
    """The shipped config, copied for one test; lab tests are open 24/7 (see labkit)."""
    return copy_config(tmp_path / "config", **routing_changes)


@pytest.fixture
async def routing(request: pytest.FixtureRequest, asterisk: Lab, tmp_path: Path,
                  redis_url: str) -> AsyncIterator[CaselineProcess]:
    """`caseline run` routing real calls, with its own Redis and the shipped config.

    `@pytest.mark.routing(defaults__ring_timeout_s=5)` changes routing.yaml for one test.
    """
    marker = request.node.get_closest_marker("routing")
    changes = marker.kwargs if marker else {}
    process = CaselineProcess(tmp_path, [], lab_config(tmp_path, **changes),
                              extra_env={"CASELINE_REDIS_URL": redis_url})
    process.lab = asterisk
    process.redis_url = redis_url
    try:
        await process.registered()
        yield process
    finally:
        process.stop()
