"""docs/caseline.service: systemd accepts it, it runs `caseline run` on the folder it may
write, hardened, after Asterisk and Redis, and its logs reach journald."""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ari_app import cli
from ari_app.ops.logs import configure_json_logging

UNIT = Path(__file__).resolve().parents[2] / "docs" / "caseline.service"
IN_CI = os.environ.get("CI", "").lower() == "true"


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}: systemd allows a key more than once."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not a unit line: {line!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit() -> dict[str, dict[str, list[str]]]:
    return directives(UNIT.read_text(encoding="utf-8"))


def one(section: dict[str, list[str]], key: str) -> str:
    assert len(section.get(key, [])) == 1, f"{key}: expected once, got {section.get(key)}"
    return section[key][0]


def test_it_starts_after_asterisk_and_redis() -> None:
    u = unit()["Unit"]
    for key in ("After", "Wants"):
        named = " ".join(u[key]).split()
        assert {"asterisk.service", "redis-server.service"} <= set(named), key


def test_it_runs_caseline_run_on_the_config_folder_it_may_write() -> None:
    service = unit()["Service"]
    argv = shlex.split(one(service, "ExecStart"))
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "caseline"
    args = cli.parser().parse_args(argv[1:])  # the real CLI: exits on an unknown verb or option
    assert args.command == "run" and not args.greet
    assert str(args.config) in one(service, "ReadWritePaths").split()  # the console's routing apply


def test_it_is_hardened_and_restarts_on_failure() -> None:
    service = unit()["Service"]
    expected = {"User": "caseline", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "Restart": "on-failure",
                "CapabilityBoundingSet": ""}
    assert {k: one(service, k) for k in expected} == expected
    secrets = Path(one(service, "EnvironmentFile").lstrip("-"))
    writable = [Path(p) for p in one(service, "ReadWritePaths").split()]
    assert not any(secrets.is_relative_to(p) for p in writable), "the service could rewrite its secrets"
    assert one(unit()["Install"], "WantedBy") == "multi-user.target"


def test_logs_go_to_journald() -> None:
    """`caseline run` logs JSON lines to stderr (no file to configure or rotate), and the
    unit hands stderr to the journal."""
    service = unit()["Service"]
    assert one(service, "StandardError") == "journal" and one(service, "StandardOutput") == "journal"
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        handler = configure_json_logging("INFO")
        assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
        assert root.handlers == [handler]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_systemd_accepts_it(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        message = "systemd-analyze unavailable (Debian's systemd package; scripts/setup-env installs it)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    # verify checks that ExecStart's program exists: point it at this checkout's caseline
    here = Path(sys.executable).with_name("caseline")
    assert here.exists(), f"{here}: pip install -e . first"
    text = UNIT.read_text(encoding="utf-8")
    installed = shlex.split(one(unit()["Service"], "ExecStart"))[0]
    (tmp_path / "caseline.service").write_text(text.replace(installed, str(here)), encoding="utf-8")
    checked = subprocess.run([tool, "verify", str(tmp_path / "caseline.service")], capture_output=True,
                             timeout=60, check=False, stdin=subprocess.DEVNULL)
    said = (checked.stdout + checked.stderr).decode(errors="replace").strip()
    assert checked.returncode == 0 and not said, said  # a warning (unknown key, bad value) counts
