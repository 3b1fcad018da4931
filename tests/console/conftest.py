"""The console in a real browser: headless Chromium (Debian's) against the ops API in-process."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium
from tests.support.console_app import ConsoleApp, console_app


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    async with chromium(tmp_path / "chromium-profile", viewport={"width": 1360, "height": 900},
                        locale="en-GB", timezone_id="Europe/Moscow") as context:
        yield context


class Watched:
    """A page, and what must never happen on it: a dialog (alert), a script error, a CSP
    violation or any other console error."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # an HTTP error status the test asked for (401 for a wrong token, 404 for a missing
        # route) is logged by Chromium too; CSP violations and script errors are not that
        if message.type in ("error", "warning") and not message.text.startswith(
                "Failed to load resource: the server responded with a status of"):
            self.errors.append(f"console {message.type}: {message.text}")

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        assert self.errors == [], "\n".join(self.errors)


@pytest.fixture
async def watched(browser: Any) -> AsyncIterator[Watched]:
    page = browser.pages[0] if browser.pages else await browser.new_page()
    page.set_default_timeout(5000)
    watched = Watched(page)
    yield watched
    watched.assert_clean()


@pytest.fixture
async def console(tmp_path: Path, redis) -> AsyncIterator[ConsoleApp]:
    async with console_app(tmp_path, redis) as app:
        yield app
