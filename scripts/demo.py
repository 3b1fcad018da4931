"""The demo: scripted SIPp calls through the real lab and Caseline, and what happened to each."""
from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labkit import sipp  # noqa: E402
from labkit.caseline_process import CaselineProcess  # noqa: E402
from labkit.paths import PROJECT  # noqa: E402


async def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="caseline-demo-"))
    caseline = CaselineProcess(workdir, ["--greet"], PROJECT / "config")
    try:
        await caseline.registered()
        print("Caseline registered its Stasis app; placing 3 calls")
        run = await sipp.place_calls(workdir, ["+79161234567", "89167654321", "anonymous"],
                                     hold_ms=10000, rate=5)
        for number, event in await run.wait(timeout=60):
            print(f"  {number:>16}  {event}")
    finally:
        caseline.stop()
    print(f"logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
