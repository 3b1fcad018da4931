"""`caseline run` checks Asterisk's version over ARI before it starts anything else.

Caseline relies on Asterisk security fixes (ARI reaching SHELL()/FILE() without
`live_dangerously`, fixed in 22.10.1; /httpstatus on by default, fixed in 22.8.2), so it reads
`GET /asterisk/info` and judges `system.version` against caseline.yaml's
`asterisk.min_versions` (core/asterisk_version.py). Below the minimum of its branch:
`refuse` (the default) logs one ERROR line and `caseline run` exits 1; `warn` logs a WARNING
and the metric caseline_asterisk_below_min_version stays 1. A version that is not a release
("GIT-master-...") is warned about, never refused: there is nothing to compare.

ARI may not answer at start (Asterisk down or still booting: 503): Caseline then starts as
usual (it reconnects on its own) and `watch` checks once the events connection is up, with the
same consequences.
"""
from __future__ import annotations

import asyncio
import logging

from ari_app.ari.interface import Ari, AriError, AriUnavailable
from ari_app.config.asterisk_settings import AsteriskSettings
from ari_app.core.asterisk_version import Standing, Verdict, judge

log = logging.getLogger("caseline.asterisk")


class VersionGate:
    def __init__(self, ari: Ari, settings: AsteriskSettings) -> None:
        self.ari = ari
        self.settings = settings
        self.minimums = settings.minimums()
        self.verdict: Verdict | None = None  # None: Asterisk has not answered yet
        self.refused = False  # below the minimum with `refuse`: the process must exit 1

    async def check(self) -> bool:
        """Read and judge Asterisk's version; False when ARI did not answer."""
        try:
            info = await self.ari.asterisk_info()
        except (AriError, AriUnavailable) as e:
            log.warning("Asterisk version not checked yet (%s); checking once ARI is connected", e)
            return False
        system = info.get("system") if isinstance(info, dict) else None
        reported = system.get("version", "") if isinstance(system, dict) else ""
        verdict = self.verdict = judge(str(reported), self.minimums)
        text = verdict.describe(self.minimums)
        if verdict.standing is Standing.OK:
            log.info("%s", text)
        elif verdict.standing is Standing.UNRECOGNISED:
            log.warning("%s; running anyway (docs/security.md)", text)
        elif self.settings.below_min_version == "refuse":
            self.refused = True
            log.error("%s: refusing to run. Upgrade Asterisk, or list the fixed release of its branch in "
                      "asterisk.min_versions (caseline.yaml), or set asterisk.below_min_version: warn "
                      "(docs/security.md)", text)
        else:
            log.warning("%s: running anyway (asterisk.below_min_version: warn); upgrade Asterisk: "
                        "security fixes Caseline relies on may be missing (docs/security.md)", text)
        return True

    async def watch(self, connected: asyncio.Event, stop: asyncio.Event, retry_s: float = 5.0) -> None:
        """After a check that got no answer: check again once ARI is connected, until Asterisk
        answers; a refused version sets `stop` (the process then exits 1)."""
        while True:
            await connected.wait()
            if await self.check():
                break
            await asyncio.sleep(retry_s)
        if self.refused:
            stop.set()

    def below_minimum(self) -> float:
        """caseline_asterisk_below_min_version: 1 while the Asterisk we talk to is below the
        minimum or its version is not a release, else 0 (also before it answered)."""
        return float(self.verdict is not None and self.verdict.standing is not Standing.OK)
