"""The Russian numbering plan: the registry's CSV in, a compact data file out, and its loader.

The registry ("Выписка из реестра Российской системы и плана нумерации", published by the
ministry as ABC-3xx, ABC-4xx, ABC-8xx and DEF-9xx .csv) has one row per range:

    АВС/ DEF;От;До;Емкость;Оператор;Регион;ИНН            (newer files add "Территория ГАР")
    924;1200000;1399999;200000;ПАО "МегаФон";Приморский край;7812014560

`caseline numbering import FILE...` reads such files (UTF-8 or Windows-1251, columns found
by their header), maps each region to a zone (ru_regions.py), merges neighbouring ranges of
one region and writes the compact file the loader reads:

    # comments
    79241200000;79241399999;Asia/Vladivostok;Приморский край

The loader caches by the file's size and modification time, so a config reload re-reads it
only after a new import.
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ari_app.config.files import ConfigError
from ari_app.config.ru_regions import zone_for_region
from ari_app.core.numbering import NumberingPlan, Place
from ari_app.core.zones import zone

COUNTRY_CODE = "7"
MAX_REGISTRY_BYTES = 256 * 1024 * 1024  # the four registry files are ~40 MB together
MAX_PLAN_BYTES = 64 * 1024 * 1024
_CODE_RE = re.compile(r"[0-9]{3}")
_SUB_RE = re.compile(r"[0-9]{1,7}")


# --- reading the registry ------------------------------------------------------------------


@dataclass
class ImportReport:
    rows: int = 0  # data rows read
    ranges: int = 0  # ranges written, after merging neighbours of one region
    bad: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, reason)
    overlapping: int = 0  # rows inside a range an earlier row already gave (skipped)
    no_zone: Counter[str] = field(default_factory=Counter)  # region -> rows it named

    def summary(self) -> str:
        text = (f"rows {self.rows}: {self.ranges} ranges written, {len(self.bad)} bad, "
                f"{self.overlapping} overlapping skipped")
        if self.no_zone:
            names = ", ".join(f"{name!r} ({n})" for name, n in self.no_zone.most_common(5))
            text += f"; {sum(self.no_zone.values())} rows of regions without a zone: {names}"
        return text


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1251")  # the registry's files were long Windows-1251


def _columns(header: list[str]) -> dict[str, int] | None:
    """Column indexes by the header's names; None when the row is not a header."""
    names = [re.sub(r"\s+", "", h).lower() for h in header]
    found: dict[str, int] = {}
    for i, name in enumerate(names):
        if "def" in name or name.startswith(("abc", "авс")):
            found.setdefault("code", i)
        elif name == "от":
            found.setdefault("first", i)
        elif name == "до":
            found.setdefault("last", i)
        elif name == "регион":
            found.setdefault("region", i)
    return found if len(found) == 4 else None


def read_registry(text: str, source: str, report: ImportReport) -> Iterable[tuple[int, int, str]]:
    """(first, last, region) of every good data row; bad rows go to the report. Lines
    starting with "#" are comments (the shipped sample's; the registry has none)."""
    cols = {"code": 0, "first": 1, "last": 2, "region": 5}  # the registry's order, if no header
    reader = csv.reader(io.StringIO(text.replace("\x00", ""), newline=""), delimiter=";")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # a field over csv's size limit: the reader goes on at the next line
            report.rows += 1
            report.bad.append((source, reader.line_num, f"unreadable: {e}"))
            continue
        if not row or row[0].startswith("#") or not any(cell.strip() for cell in row):
            continue
        header = _columns(row)
        if header is not None:
            cols = header
            continue
        report.rows += 1
        line = reader.line_num
        try:
            code, first, last, region = (row[cols[k]].strip() for k in ("code", "first", "last", "region"))
        except IndexError:
            report.bad.append((source, line, f"{len(row)} columns"))
            continue
        if not _CODE_RE.fullmatch(code) or not _SUB_RE.fullmatch(first) or not _SUB_RE.fullmatch(last):
            report.bad.append((source, line, f"not a range: {code!r} {first!r}..{last!r}"))
            continue
        lo, hi = int(COUNTRY_CODE + code + first.zfill(7)), int(COUNTRY_CODE + code + last.zfill(7))
        if hi < lo or not region:
            report.bad.append((source, line, "range ends before it starts" if hi < lo else "no region"))
            continue
        yield lo, hi, " ".join(region.split())[:120]


def import_registry(files: Iterable[Path], report: ImportReport) -> list[tuple[int, int, Place]]:
    """Every file's ranges with their zones, sorted, neighbours of one place merged."""
    rows: list[tuple[int, int, str]] = []
    for path in files:
        with path.open("rb") as f:
            raw = f.read(MAX_REGISTRY_BYTES + 1)
        if len(raw) > MAX_REGISTRY_BYTES:
            raise ValueError(f"{path}: larger than {MAX_REGISTRY_BYTES} bytes")
        rows.extend(read_registry(_decode(raw), str(path), report))
    zones: dict[str, str | None] = {}
    merged: list[tuple[int, int, Place]] = []
    for lo, hi, region in sorted(rows):
        if region not in zones:
            zones[region] = zone_for_region(region)
        tz = zones[region]
        if tz is None:
            report.no_zone[region] += 1
        place = Place(region, tz)
        if merged and lo <= merged[-1][1]:
            report.overlapping += 1
            continue
        if merged and lo == merged[-1][1] + 1 and merged[-1][2] == place:
            merged[-1] = (merged[-1][0], hi, place)
        else:
            merged.append((lo, hi, place))
    report.ranges = len(merged)
    return merged


def write_plan(path: Path, ranges: list[tuple[int, int, Place]], sources: list[str]) -> None:
    """The compact file, written to a temporary file and renamed: a reader never sees half."""
    head = [
        "# Caseline numbering plan (Russia): E.164 digits first;last -> IANA zone; region.",
        "# Written by `caseline numbering import` from: " + ", ".join(sources),
        "# Refresh it from the registry (README, \"Numbering plan\"); do not edit by hand.",
        "# first;last;timezone;region",
    ]
    body = [f"{lo};{hi};{p.timezone or ''};{p.region}" for lo, hi, p in ranges]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(head + body) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- loading the compact file ---------------------------------------------------------------


_cache: dict[Path, tuple[tuple[int, int], NumberingPlan]] = {}


def load_numbering_plan(path: Path) -> NumberingPlan:
    """Read the compact file; ConfigError naming file, line and reason on any problem."""
    try:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns)
        cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        if stat.st_size > MAX_PLAN_BYTES:
            raise ConfigError(path, "", f"larger than {MAX_PLAN_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 (byte {e.start})") from None
    plan = parse_plan(text, path)
    _cache[path] = (key, plan)
    return plan


def parse_plan(text: str, path: Path) -> NumberingPlan:
    ranges: list[tuple[int, int, Place]] = []
    places: dict[tuple[str, str], Place] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(";", 3)
        if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:2]):
            raise ConfigError(path, f"line {n}", "expected first;last;timezone;region", n)
        tz, region = parts[2].strip(), parts[3].strip()
        if tz and zone(tz) is None:
            raise ConfigError(path, f"line {n}", f"unknown IANA time zone {tz!r}", n)
        place = places.setdefault((tz, region), Place(region, tz or None))
        ranges.append((int(parts[0]), int(parts[1]), place))
    try:
        return NumberingPlan.from_ranges(ranges)
    except ValueError as e:
        raise ConfigError(path, "", str(e)) from None
