"""Shared fixtures: the real lab (Asterisk, Redis, SIPp) and a running Caseline process.

Real parts are started, never faked. Without them a test skips locally and FAILS in CI
(CI=true), so a broken lab can never turn into a green run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from labkit import asterisk as lab_asterisk
from labkit import paths as lab_paths
from labkit import root as lab_root
from labkit import sipp
from labkit.caseline_process import CaselineProcess
from labkit.redis_server import RedisServer, RedisUnavailable
from redis.asyncio import Redis

# before anything imports them: plain asserts in the shared helpers explain themselves too
pytest.register_assert_rewrite("tests.support")

from tests.support.lab import PROJECT, Lab, lab_config  # noqa: E402


IN_CI = os.environ.get("CI", "").lower() == "true"


def need(what: str, reason: str) -> None:
    """Skip locally, fail in CI: a test that needs a real part must not pass without it."""
    message = f"{what} unavailable: {reason}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


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
    """The test's SIPp phones, stopped afterwards: tests.support.phones.start_phones fills it."""
    started: dict[str, sipp.Phone] = {}
    yield started
    for phone in started.values():
        phone.stop()


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
