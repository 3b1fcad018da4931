"""Public holidays of a country, from the `holidays` package: computed, so they never run out.

Like zoneinfo's tzdata (core/zones.py), this is library data, not I/O of ours. A calendar
costs ~0.1 s to build and each year ~0.3 ms to expand the first time it is asked for, so
calendars are cached per (country, subdivision); the policy loader builds the configured one
when it checks the file, never a call.
"""
from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def supported() -> dict[str, tuple[str, ...]]:
    """Country code -> its subdivision codes, for every country the package knows."""
    import holidays  # ~0.1 s: only when a policy names a country

    return {code: tuple(subs) for code, subs in holidays.list_supported_countries().items()}


@lru_cache(maxsize=32)
def _calendar(country: str, subdivision: str | None) -> Any:
    import holidays

    return holidays.country_holidays(country, subdiv=subdivision)


def problem(country: str, subdivision: str | None) -> str | None:
    """Why (country, subdivision) cannot give public holidays, or None when it can.

    >>> problem("RU", None) is None
    True
    >>> problem("XX", None)
    "unknown country 'XX' (the holidays package knows ISO 3166 codes such as RU, KZ, DE)"
    """
    subs = supported().get(country)
    if subs is None:
        return f"unknown country {country!r} (the holidays package knows ISO 3166 codes such as RU, KZ, DE)"
    if subdivision is not None and subdivision not in subs:
        known = ", ".join(subs[:12]) + (", ..." if len(subs) > 12 else "") if subs else "none"
        return f"unknown subdivision {subdivision!r} of {country} (known: {known})"
    return None


def holiday_name(country: str, subdivision: str | None, day: date) -> str | None:
    """The public holiday's name on `day`, or None for a working day (or an unknown country).

    >>> holiday_name("RU", None, date(2031, 1, 7))
    'Christmas Day'
    >>> holiday_name("RU", None, date(2031, 1, 13)) is None
    True
    """
    try:
        name = _calendar(country, subdivision).get(day)
    except Exception:  # unknown code, a year the package cannot compute: no holiday
        return None
    return str(name) if name else None
