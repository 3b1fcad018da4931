"""Headless Chromium from Debian (/usr/bin/chromium) driven by Playwright, for tests/console.

Playwright is pointed at Debian's executable: browsers are never downloaded
(`playwright install` is not run anywhere). Each launch gets a new empty profile folder.
Without Chromium a browser test skips locally and FAILS in CI (CI=true), like every other
test that needs a real part (tests/conftest.py `need`).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("CASELINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# quiet, offline, no GPU: this machine has no network but the package registries
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"]


def need_chromium(reason: str, *, module: bool = False) -> None:
    message = f"Chromium unavailable: {reason} (apt-get install chromium chromium-driver; scripts/setup-env does)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=module)


def need_playwright() -> Any:
    """playwright's `expect`, for a test module to import at its top."""
    try:
        from playwright.async_api import expect
    except ImportError as e:
        need_chromium(f"playwright not installed ({e}); pip install -e '.[test]'", module=True)
    return expect


@asynccontextmanager
async def chromium(profile: Path, **context: Any) -> AsyncIterator[Any]:
    """A Playwright BrowserContext of headless Chromium with an empty profile in `profile`."""
    if not Path(CHROMIUM).exists():
        need_chromium(f"{CHROMIUM} not found")
    need_playwright()
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright
    async with async_playwright() as pw:
        try:
            browser = await pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS, **context)
        except PlaywrightError as e:
            need_chromium(f"{CHROMIUM} did not start: {str(e).splitlines()[0]}")
        try:
            yield browser
        finally:
            await browser.close()
