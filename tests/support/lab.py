"""The lab as tests see it: Asterisk's ARI and CDRs, and config copies for `caseline run`."""
from __future__ import annotations

import asyncio
import csv
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.caseline_process import ari as lab_ari
from labkit.config_copy import copy_config

from tests.support.eventually import eventually

PROJECT = Path(__file__).resolve().parents[2]


def lab_config(tmp_path: Path, **routing_changes: object) -> Path:
    """The shipped config, copied for one test; lab tests are open 24/7 (see labkit)."""
    return copy_config(tmp_path / "config", **routing_changes)


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
        """Asterisk's own CSV CDRs whose source is `src` (Debian's 18 columns).

        Asterisk writes them after the call ended: wait for them with eventually().
        """
        if not self.cdr_csv.exists():
            return []
        # hostile-input tests put invalid UTF-8 caller IDs into CDRs: read them leniently
        with self.cdr_csv.open(newline="", errors="replace") as f:
            return [row for row in csv.reader(f) if len(row) > 1 and row[1] == src]

    def ari(self, method: str, path: str) -> Any:
        """A synchronous ARI request (set-up, fixtures); tests await `channels()`, `bridges()`."""
        return lab_ari(method, path)

    async def channels(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.ari, "GET", "/channels") or []

    async def bridges(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.ari, "GET", "/bridges") or []

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


async def idle(lab: Lab) -> None:
    """Asserts Asterisk holds no channel and no bridge (for eventually())."""
    assert await lab.channels() == [], "channels left in Asterisk"
    assert await lab.bridges() == [], "bridges left in Asterisk"


async def new_cdr_rows(lab: Lab, src: str, known: int, timeout: float = 10) -> list[list[str]]:
    """The CDR rows for `src` after the first `known`, once Asterisk has written one."""
    def written() -> list[list[str]]:
        return lab.cdr_rows(src)[known:]

    return await eventually(written, timeout=timeout, message=f"a new CDR row from {src}")
