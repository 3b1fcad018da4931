"""Asterisk version strings, read and compared against the minimum of their branch (pure).

Asterisk reports its version in ARI's `GET /asterisk/info` (`system.version`). Caseline
relies on security fixes that exist only from a given release of each branch (README,
"Requirements"; docs/security.md): a version is acceptable only when a minimum is known for
its branch and it is at least that. A branch with no known minimum (a newer or older major
than the configured ones) counts as below it: we cannot tell whether it has the fixes.

    >>> parse_version("22.10.1-rc1")
    AsteriskVersion(branch='22', release=(22, 10, 1), stage=(3, 1))
    >>> parse_version("22.10.1+dfsg+~cs6.17.60671434-1")  # Debian's package, as ARI reports it
    AsteriskVersion(branch='22', release=(22, 10, 1), stage=(9, 0))
    >>> judge("22.8.0", [parse_version("22.10.1")]).standing
    <Standing.BELOW: 'below_minimum'>
    >>> judge("GIT-master-abc123", [parse_version("22.10.1")]).standing
    <Standing.UNRECOGNISED: 'unrecognised'>
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

# Pre-releases come before their release; the release itself is the highest stage.
_STAGES = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3}
_FINAL = (9, 0)
_SUFFIX = r"(?:-(pre|alpha|beta|rc)(\d{1,3}))?"
# a distribution's packaging suffix after the release ("22.10.1+dfsg+~cs6.17.60671434-1",
# Debian's) changes nothing of what Asterisk's own release contains
_PACKAGING = r"(?:[+~][0-9A-Za-z.+~-]{0,80})?"
_MAINLINE = re.compile(r"(\d{1,4})\.(\d{1,4})\.(\d{1,4})" + _SUFFIX + _PACKAGING, re.ASCII)
# certified releases: "certified-20.7-cert3" (their git tags write "certified/20.7-cert3")
_CERTIFIED = re.compile(r"certified[-/](\d{1,4})\.(\d{1,4})-cert(\d{1,4})" + _SUFFIX, re.ASCII)
MAX_SHOWN = 64  # Asterisk's answer is clipped in messages


@dataclass(frozen=True, slots=True)
class AsteriskVersion:
    branch: str  # "22", or "certified-20.7": versions compare only within a branch
    release: tuple[int, ...]  # (22, 10, 1); certified: (20, 7, 3) for cert3
    stage: tuple[int, int] = _FINAL  # (3, 1) for -rc1

    def __str__(self) -> str:
        if self.branch.startswith("certified"):
            text = f"{self.branch}-cert{self.release[-1]}"
        else:
            text = ".".join(map(str, self.release))
        if self.stage != _FINAL:
            name = next(n for n, rank in _STAGES.items() if rank == self.stage[0])
            text += f"-{name}{self.stage[1]}"
        return text

    def at_least(self, minimum: AsteriskVersion) -> bool:
        """True when this version is `minimum` or later on the same branch."""
        return self.branch == minimum.branch and (self.release, self.stage) >= (minimum.release, minimum.stage)


def parse_version(text: str) -> AsteriskVersion | None:
    """A release version ("22.10.1", "22.10.1-rc1", "certified-20.7-cert3"), else None
    (a build from git such as "GIT-master-abc123", an empty or foreign string)."""
    text = text.strip()
    if match := _MAINLINE.fullmatch(text):
        major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
        return AsteriskVersion(str(major), (major, minor, patch), _stage(match.group(4), match.group(5)))
    if match := _CERTIFIED.fullmatch(text):
        major, minor, cert = (int(match.group(i)) for i in (1, 2, 3))
        return AsteriskVersion(f"certified-{major}.{minor}", (major, minor, cert),
                               _stage(match.group(4), match.group(5)))
    return None


def _stage(name: str | None, number: str | None) -> tuple[int, int]:
    return _FINAL if name is None else (_STAGES[name], int(number or 0))


class Standing(StrEnum):
    OK = "ok"
    BELOW = "below_minimum"  # older than its branch's minimum, or a branch with none
    UNRECOGNISED = "unrecognised"  # not a release version: nothing to compare


@dataclass(frozen=True, slots=True)
class Verdict:
    standing: Standing
    reported: str  # what Asterisk said, clipped and printable
    minimum: AsteriskVersion | None = None  # its branch's minimum, when there is one

    def describe(self, minimums: Iterable[AsteriskVersion]) -> str:
        known = ", ".join(str(m) for m in minimums) or "none"
        if self.standing is Standing.OK:
            return f"Asterisk {self.reported} (minimum for its branch: {self.minimum})"
        if self.standing is Standing.UNRECOGNISED:
            return (f"Asterisk reports version {self.reported!r}, which is not a release version: "
                    f"cannot tell whether it has the fixes of the minimum versions ({known})")
        if self.minimum is None:
            return (f"Asterisk {self.reported}: no minimum version is known for its branch "
                    f"(known: {known}), so it counts as below the minimum")
        return f"Asterisk {self.reported} is older than {self.minimum}, the minimum for its branch"


def judge(reported: str, minimums: Iterable[AsteriskVersion]) -> Verdict:
    """How `reported` stands against the minimum of its branch among `minimums`."""
    text = str(reported)
    shown = "".join(c for c in text[:MAX_SHOWN] if c.isprintable())
    version = parse_version(text) if len(text) <= MAX_SHOWN else None
    if version is None:
        return Verdict(Standing.UNRECOGNISED, shown)
    minimum = next((m for m in minimums if m.branch == version.branch), None)
    if minimum is None or not version.at_least(minimum):
        return Verdict(Standing.BELOW, shown, minimum)
    return Verdict(Standing.OK, shown, minimum)
