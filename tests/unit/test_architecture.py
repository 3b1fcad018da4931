"""The layout holds: the import-linter contracts in pyproject.toml, and a core that loads no I/O."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_importing_the_core_loads_no_io_library() -> None:
    code = ("import sys, ari_app.core.decide, ari_app.core.identify, ari_app.core.explain;"
            "loaded = {'redis', 'aiohttp', 'yaml', 'panoramisk', 'asyncio'} & set(sys.modules);"
            "assert not loaded, sorted(loaded)")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
