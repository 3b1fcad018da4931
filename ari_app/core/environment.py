"""What the number itself says (country, region, time zone, carrier, UTC offset) and the
legal-entity directory that maps a branch's number or prefix to its parent company."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol

import phonenumbers
from phonenumbers import carrier as _carrier
from phonenumbers import timezone as _timezone

from ari_app.core.models import EnvironmentFacts, LegalEntity
from ari_app.core.numbering import NumberingPlan
from ari_app.core.numbers import is_e164
from ari_app.core.zones import zone


class RegionNamer(Protocol):
    """phonenumbers' geocoder module (~100 MB of data): loaded by config/directories.py at
    start-up, never on a call; until then profiles carry no region name."""

    def description_for_number(self, numobj: phonenumbers.PhoneNumber, lang: str) -> str: ...

def _zone_names(parsed: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    return tuple(z for z in _timezone.time_zones_for_number(parsed) if z != "Etc/Unknown")


def _agreed_offset(names: tuple[str, ...], now: datetime) -> tuple[str | None, float | None]:
    """The zone and its offset at `now`. A Russian mobile maps to 16 zones (first is
    Asia/Almaty): guessing would make every Moscow mobile look like a night call, so several
    zones give a zone only when they all agree on the offset now."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)  # naive would mean *host* local time
    offset: float | None = None
    for name in names:
        tz = zone(name)
        if tz is None:
            return None, None
        # astimezone, not tz.utcoffset(now): the latter reads `now` as local wall time.
        delta = now.astimezone(tz).utcoffset()
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
def _number_facts(number: str, lang: str, geocoder: RegionNamer | None) -> _NumberFacts | None:
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
    region_names: RegionNamer | None = None,
    numbering: NumberingPlan | None = None,
    lang: str = "en",
) -> EnvironmentFacts:
    """Environment facts for a strict E.164 number; empty facts for anything else.

    The numbering plan, where it holds the number, gives region and zone (phonenumbers
    knows no zone for a Russian mobile); other numbers keep phonenumbers' answer."""
    if not is_e164(number):
        return EnvironmentFacts()
    legal = directory.lookup(number) if directory is not None else None
    facts = _number_facts(number, lang, region_names)
    if facts is None:
        return EnvironmentFacts(legal_entity=legal)
    place = numbering.lookup(number) if numbering is not None else None
    tz_name, offset = _agreed_offset((place.timezone,), now) if place and place.timezone else (None, None)
    source = "numbering_plan" if tz_name else None
    if tz_name is None:
        tz_name, offset = _agreed_offset(facts.zones, now)
        source = "phonenumbers" if tz_name else None
    return EnvironmentFacts(
        country=facts.country,
        region=place.region if place else facts.region,
        timezone=tz_name,
        carrier=facts.carrier,
        utc_offset_hours=offset,
        legal_entity=legal,
        timezone_source=source,
    )


# --- legal-entity directory (loaded from YAML by config/directories.py) -----------------


class LegalDirectory:
    """Exact numbers first, then the longest matching prefix."""

    def __init__(self, exact: dict[str, LegalEntity], prefixes: dict[str, LegalEntity]) -> None:
        self._exact = dict(exact)
        self._prefixes = dict(prefixes)
        self._lengths = sorted({len(p) for p in self._prefixes}, reverse=True)

    def lookup(self, number: str) -> LegalEntity | None:
        if number in self._exact:
            return self._exact[number]
        for length in self._lengths:
            if length <= len(number) and (hit := self._prefixes.get(number[:length])):
                return hit
        return None

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefixes)

