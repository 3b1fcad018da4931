"""The demo: the routing story through the real lab, and what Caseline decided for each call.

Real Asterisk 22, real Redis, SIPp as the callers and as every phone. Working hours are
switched off in the demo's copy of the config so that it shows the same story at any hour.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labkit import sipp  # noqa: E402
from labkit.caseline_process import CaselineProcess  # noqa: E402
from labkit.config_copy import copy_config  # noqa: E402
from labkit.paths import PROJECT  # noqa: E402
from labkit.redis_server import RedisServer  # noqa: E402

NEW = "+79057778899"  # in the CRM, no category, no manager
VIP = "+79161234567"  # A client, manager mgr1
DELIVERY = "+79031112233"  # delivery today: logistics (mgr3), who is busy
STORY = "+79990001122"  # known to nobody but the PBX's own history


def show_calls(config: Path, env: dict[str, str], last: int) -> None:
    subprocess.run([sys.executable, "-m", "ari_app.cli", "--config", str(config), "calls",
                    "--last", str(last)], env=env, cwd=PROJECT, check=False)


async def call(workdir: Path, number: str, title: str, **kwargs: object) -> None:
    print(f"\n== {title}\n   SIPp calls from {number}")
    run = await sipp.place_calls(workdir, [number], hold_ms=1500, **kwargs)
    for caller, event in await run.wait(timeout=90):
        print(f"   caller {caller}: {event}")


async def main() -> int:
    import os

    workdir = Path(tempfile.mkdtemp(prefix="caseline-demo-"))
    redis = RedisServer.start()
    config = copy_config(workdir / "config", defaults__ring_timeout_s=6)
    env = {**os.environ, "CASELINE_REDIS_URL": redis.url}
    caseline = CaselineProcess(workdir, [], config, extra_env={"CASELINE_REDIS_URL": redis.url})
    phones = [sipp.Phone("mgr1", workdir).start(), sipp.Phone("mgr2", workdir).start(),
              sipp.Phone("mgr3", workdir, "busy").start(), sipp.Phone("op1", workdir).start(),
              sipp.Phone("op2", workdir).start(), sipp.Phone("sup1", workdir).start(),
              sipp.Phone("client", workdir, "busy").start(*sipp.CLIENT_PHONE)]
    try:
        await caseline.registered()
        print("Caseline is routing calls (lab: Asterisk 22 on 127.0.0.1, phones are SIPp).")
        await call(workdir, NEW, "A new caller: operators' queue")
        await call(workdir, VIP, "An A client: straight to their manager mgr1")
        await call(workdir, DELIVERY, "Delivery today: logistics (mgr3) is busy -> operators")
        print(f"\n== The seed's story: manager mgr2 calls {STORY}; the client can't pick up")
        out = await sipp.place_calls(workdir, ["mgr2"], service=STORY, from_phone="mgr2")
        print(f"   mgr2's call: {await out.wait()}")
        await asyncio.sleep(1)  # Asterisk's CDR event reaches Caseline over AMI
        await call(workdir, STORY, "...so the client's return call is a callback to mgr2")
        await call(workdir, STORY, "...and the next one is a repeat, to the one who talked last")
        print("\n== The decision log (`caseline calls`):")
        show_calls(config, env, 10)
        for phone in phones:
            print(f"   phone {phone.name}: {phone.events()}")
    finally:
        caseline.stop()
        for phone in phones:
            phone.stop()
        redis.stop()
    print(f"\nlogs and SIPp traces: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
