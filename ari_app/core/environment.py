"""What the number itself says (country, region, time zone, carrier, UTC offset) and the
legal-entity directory that maps a branch's number or prefix to its parent company."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import carrier as _carrier
from phonenumbers import timezone as _timezone
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ari_app.config.files import ConfigError, load_model

from ari_app.core.models import EnvironmentFacts, LegalEntity
from ari_app.core.numbers import is_e164

_geocoder: ModuleType | None = None
_geocoder_lock = threading.Lock()


def load_region_names() -> None:
    """Load the region-name data (~100 MB, ~0.5 s): do it at start-up, never on a call."""
    global _geocoder
    with _geocoder_lock:
        if _geocoder is None:
            from phonenumbers import geocoder

            _geocoder = geocoder


def region_names_loaded() -> bool:
    return _geocoder is not None


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    """ZoneInfo keeps only weak references beyond a few zones: without this cache a Russian
    mobile (16 zones) re-reads tzdata from disk on every call (~0.6 ms instead of ~20 µs)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _zone_and_offset(parsed: phonenumbers.PhoneNumber, now: datetime) -> tuple[str | None, float | None]:
    """The number's zone and its offset at `now`. A Russian mobile maps to 16 zones (first is
    Asia/Almaty): guessing would make every Moscow mobile look like a night call, so several
    zones give a zone only when they all agree on the offset now."""
    return _agreed_offset(_zone_names(parsed), now)


def _zone_names(parsed: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    return tuple(z for z in _timezone.time_zones_for_number(parsed) if z != "Etc/Unknown")


def _agreed_offset(names: tuple[str, ...], now: datetime) -> tuple[str | None, float | None]:
    now = now if now.tzinfo else now.replace(tzinfo=UTC)  # naive would mean *host* local time
    offset: float | None = None
    for name in names:
        zone = _zone(name)
        if zone is None:
            return None, None
        # astimezone, not zone.utcoffset(now): the latter reads `now` as local wall time.
        delta = now.astimezone(zone).utcoffset()
        if delta is None:
            continue
        hours = delta.total_seconds() / 3600
        if offset is None:
            offset = hours
        elif hours != offset:
            return None, None  # two zones disagree: no need to look at the other 14
    if offset is None:
        return None, None
    return names[0], offset


@dataclass(frozen=True, slots=True)
class _NumberFacts:
    """What a number says whatever the time: parsed once per number (see _number_facts)."""

    country: str | None
    region: str | None
    carrier: str | None
    zones: tuple[str, ...]


@lru_cache(maxsize=4096)
def _number_facts(number: str, lang: str, geocoder: ModuleType | None) -> _NumberFacts | None:
    """Parsing, zone, region and carrier look-ups cost ~60 µs and depend only on the number
    (and on whether region names are loaded, hence `geocoder` in the key): the same few
    numbers call again and again, so they are cached like `numbers._normalize`."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    region = geocoder.description_for_number(parsed, lang) if geocoder else None
    country = phonenumbers.region_code_for_number(parsed)  # "001" for +800 etc., "ZZ" unknown
    return _NumberFacts(
        country=country if country and country.isalpha() and country != "ZZ" else None,
        region=region or None,
        carrier=_carrier.name_for_number(parsed, lang) or None,
        zones=_zone_names(parsed),
    )


def describe_number(
    number: str,
    now: datetime,
    *,
    directory: LegalDirectory | None = None,
    lang: str = "en",
) -> EnvironmentFacts:
    """Environment facts for a strict E.164 number; empty facts for anything else."""
    if not is_e164(number):
        return EnvironmentFacts()
    legal = directory.lookup(number) if directory is not None else None
    facts = _number_facts(number, lang, _geocoder)
    if facts is None:
        return EnvironmentFacts(legal_entity=legal)
    zone, offset = _agreed_offset(facts.zones, now)
    return EnvironmentFacts(
        country=facts.country,
        region=facts.region,
        timezone=zone,
        carrier=facts.carrier,
        utc_offset_hours=offset,
        legal_entity=legal,
    )


# --- legal-entity directory -------------------------------------------------------------

_PREFIX_RE = re.compile(r"\+[1-9][0-9]{0,13}", re.ASCII)


class LegalEntityEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    company: str = Field(min_length=1, max_length=200)
    manager: str | None = Field(None, min_length=1, max_length=64)
    abc: Literal["A", "B", "C"] | None = None
    numbers: list[str] = []  # exact E.164 numbers
    prefixes: list[str] = []  # "+7495123": every number starting with it

    @model_validator(mode="after")
    def _check(self) -> LegalEntityEntry:
        if not self.numbers and not self.prefixes:
            raise ValueError("give at least one of numbers, prefixes")
        bad = [n for n in self.numbers if not is_e164(n)]
        if bad:
            raise ValueError(f"not E.164: {bad[0]!r}")
        bad = [p for p in self.prefixes if not _PREFIX_RE.fullmatch(p)]
        if bad:
            raise ValueError(f"prefix must be '+' and 1-14 digits: {bad[0]!r}")
        return self


class LegalEntitiesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entities: list[LegalEntityEntry] = []


class LegalDirectory:
    """Exact numbers first, then the longest matching prefix."""

    def __init__(self, exact: dict[str, LegalEntity], prefixes: dict[str, LegalEntity]) -> None:
        self._exact = dict(exact)
        self._prefixes = dict(prefixes)
        self._lengths = sorted({len(p) for p in self._prefixes}, reverse=True)

    @classmethod
    def from_model(cls, model: LegalEntitiesFile) -> LegalDirectory:
        """Build the directory; a number or prefix listed twice is a ValueError naming it."""
        exact: dict[str, LegalEntity] = {}
        prefixes: dict[str, LegalEntity] = {}
        for i, entry in enumerate(model.entities):
            entity = LegalEntity(company=entry.company, manager=entry.manager, abc=entry.abc)
            for table, keys in ((exact, entry.numbers), (prefixes, entry.prefixes)):
                for key in keys:
                    if key in table:
                        raise ValueError(f"entities.{i}: {key} is listed twice")
                    table[key] = entity
        return cls(exact, prefixes)

    def lookup(self, number: str) -> LegalEntity | None:
        if number in self._exact:
            return self._exact[number]
        for length in self._lengths:
            if length <= len(number) and (hit := self._prefixes.get(number[:length])):
                return hit
        return None

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefixes)


def load_legal_directory(path: Path) -> LegalDirectory:
    """Read config/legal_entities.yaml; raise ConfigError naming file, key and reason."""
    model = load_model(path, LegalEntitiesFile)
    try:
        return LegalDirectory.from_model(model)
    except ValueError as e:
        key, _, reason = str(e).partition(": ")
        raise ConfigError(path, key, reason) from None
