"""`asterisk:` in caseline.yaml: the oldest Asterisk `caseline run` accepts, per branch.

The shipped minimum, 22.10.1, is the first release of the 22 branch with the fixes of two
2026 advisories (docs/security.md, "Minimum Asterisk version"): ARI could reach SHELL() and
FILE() without `live_dangerously` (fixed in 22.10.1), and the HTTP server's /httpstatus page
was on by default (fixed in 22.8.2). The fixed releases of other branches are not known here:
a site on another branch adds its minimum once it has checked the advisories.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ari_app.core.asterisk_version import AsteriskVersion, parse_version


class AsteriskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # one release per branch: "22.10.1", "certified-20.7-cert9"
    min_versions: tuple[str, ...] = Field(("22.10.1",), min_length=1, max_length=20)
    # refuse: `caseline run` logs one line and exits 1; warn: a WARNING and the metric
    # caseline_asterisk_below_min_version = 1, and it runs
    below_min_version: Literal["refuse", "warn"] = "refuse"

    @field_validator("min_versions")
    @classmethod
    def _releases(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        branches: set[str] = set()
        for text in values:
            version = parse_version(text)
            if version is None:
                raise ValueError(f"{text!r} is not an Asterisk release version (22.10.1, certified-20.7-cert9)")
            if version.branch in branches:
                raise ValueError(f"two minimum versions for branch {version.branch}")
            branches.add(version.branch)
        return values

    def minimums(self) -> tuple[AsteriskVersion, ...]:
        return tuple(v for v in map(parse_version, self.min_versions) if v is not None)
