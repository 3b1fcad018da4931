"""`caseline run` as a real subprocess against the lab (shared by tests and the demo)."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from . import paths, root


def ari(method: str, path: str) -> object:
    """A synchronous ARI request with the lab's credentials (for set-up and assertions)."""
    password = root.lab_secrets()["CASELINE_ARI_PASSWORD"]
    token = base64.b64encode(f"caseline:{password}".encode()).decode()
    request = urllib.request.Request(f"{paths.ARI_URL}/ari{path}", method=method,
                                     headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        body = answer.read()
    return json.loads(body) if body else None


READY_LINE = "ARI events connected"


def lab_env() -> dict[str, str]:
    return {**root.lab_secrets(), "CASELINE_ARI_URL": paths.ARI_URL}


class CaselineProcess:
    def __init__(self, workdir: Path, args: list[str], config_dir: Path,
                 extra_env: dict[str, str] | None = None, project: Path | None = None) -> None:
        self.log = workdir / "caseline.log"
        env = {**os.environ, **lab_env(), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        with self.log.open("wb") as out:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ari_app.cli", "--config", str(config_dir), "run", *args],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=project or paths.PROJECT,
                start_new_session=True)

    async def registered(self, timeout: float = 15) -> None:
        """Wait until this process has its events websocket up: from then on it routes calls.

        Asterisk keeps listing an application for a while after its websocket closed, so
        /applications cannot tell a fresh process from the previous one; the process says it.
        """
        async with asyncio.timeout(timeout):
            while READY_LINE not in self.log.read_text(errors="replace"):
                if self.process.poll() is not None:
                    raise AssertionError(f"caseline exited: {self.log.read_text()[-3000:]}")
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
