"""`caseline callbacks [--json]` and `caseline callbacks dial ID`, run in-process
(ari_app.cli.main) against a real Redis, a copy of the shipped config and, for `dial`, a
real ops API server."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from ari_app.cli import main
from ari_app.config.callback_settings import CallbackSettings
from ari_app.ops.api import OpsServer, create_app
from ari_app.ops.callbacks_api import CallbackHooks
from ari_app.ops.metrics import Metrics
from ari_app.record.callbacks import CallbackFiler, CallbackRequest, CallbackStore

CONFIG = Path(__file__).resolve().parents[2] / "config"
TOKEN = "cli-ops-token"


@dataclass
class Cli:
    """`caseline --config <copy> ...` in a thread (it runs its own event loop)."""

    config: Path
    capsys: pytest.CaptureFixture[str]

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        try:
            rc = await asyncio.to_thread(main, ["--config", str(self.config), *args])
        except SystemExit as e:  # argparse's usage errors and --help
            rc = e.code
        out, err = self.capsys.readouterr()
        return rc, out, err


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("CASELINE_CONFIG", "CASELINE_REDIS_URL", "CASELINE_DEBUG", "CASELINE_OPS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


@pytest.fixture
async def cli(redis: Redis, redis_session_server, env: pytest.MonkeyPatch, tmp_path: Path,
              capsys: pytest.CaptureFixture[str]) -> Cli:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("asterisk"))
    env.setenv("CASELINE_REDIS_URL", redis_session_server.url)
    return Cli(config, capsys)


async def file(redis: Redis, number: str, ago_s: int = 0, **kw: Any) -> CallbackRequest:
    store = CallbackStore(redis)
    req = CallbackFiler(store, CallbackSettings()).new(number, **{"holder": "mgr1", "reason": "hours.after_hours",
                                                                  "priority": 70, **kw})
    req = replace(req, filed_at=req.filed_at - timedelta(seconds=ago_s))
    assert await store.file(req) == req.id
    return req


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_command_exists(cli: Cli) -> None:
    rc, out, _ = await cli("callbacks", "--help")
    assert rc == 0 and "dial" in out and "--json" in out


async def test_json_lists_the_requests_newest_first_with_numbers_masked(cli: Cli, redis: Redis) -> None:
    first = await file(redis, "+79161234567", ago_s=60)
    second = await file(redis, "+79031112200", holder="", reason="ivr:main:2 (abc.C)", priority=10)
    rc, out, err = await cli("callbacks", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["count"] == 2
    assert [c["id"] for c in data["callbacks"]] == [second.id, first.id]
    shown = data["callbacks"][1]
    assert {k: shown[k] for k in ("number", "holder", "reason", "priority", "status", "attempts")} == {
        "number": "***4567", "holder": "mgr1", "reason": "hours.after_hours", "priority": 70,
        "status": "open", "attempts": 0}
    assert {"filed_at", "due_at", "expires_at", "result", "person"} <= shown.keys()

    rc, out, _ = await cli("callbacks", "--json", "--status", "done")
    assert rc == 0 and json.loads(out) == {"callbacks": [], "count": 0}


async def test_text_is_one_line_per_request(cli: Cli, redis: Redis) -> None:
    rc, out, _ = await cli("callbacks")
    assert (rc, out) == (0, "no callback requests\n")
    req = await file(redis, "+79161234567")
    rc, out, _ = await cli("callbacks")
    [line] = out.splitlines()
    assert rc == 0 and req.id in line and "open" in line and "***4567" in line
    assert "holder mgr1" in line and "hours.after_hours" in line


async def test_redis_down_is_one_line(cli: Cli, env: pytest.MonkeyPatch) -> None:
    env.setenv("CASELINE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    rc, out, err = await cli("callbacks")
    assert rc == 1 and out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and "Redis unavailable" in err


async def test_dial_asks_the_running_process(cli: Cli, env: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    async def dial(request_id: str) -> tuple[int, Mapping[str, Any]]:
        asked.append(request_id)
        return 202, {"ok": True, "id": request_id, "status": "dialling", "person": "mgr1"}

    async def nothing(*_: object) -> list[Mapping[str, Any]]:
        return []

    port = free_port()
    caseline_yaml = cli.config / "caseline.yaml"
    caseline_yaml.write_text(caseline_yaml.read_text().replace("port: 8090", f"port: {port}"))
    env.setenv("CASELINE_OPS_TOKEN", TOKEN)
    app = create_app(token=TOKEN, metrics=Metrics(), checks={}, reload=nothing, live_calls=list,
                     invalidate=nothing, callbacks=CallbackHooks(listing=nothing, file=nothing, dial=dial))
    async with OpsServer(app, port=port):
        rc, out, err = await cli("callbacks", "dial", "3fa9c0d2e1")
    assert rc == 0, err
    assert json.loads(out)["status"] == "dialling" and asked == ["3fa9c0d2e1"]


async def test_dial_needs_a_request_id(cli: Cli) -> None:
    rc, _, err = await cli("callbacks", "dial", "../reload")
    assert rc == 2 and len(err.splitlines()) == 1 and "not a callback request id" in err
