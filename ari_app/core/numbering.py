"""A national numbering plan as sorted number ranges -> place (region, IANA zone).

phonenumbers gives a Russian mobile (+79xx) all 16 of Russia's zones, so it cannot tell a
Vladivostok mobile from a Moscow one. The operators' registry of the Russian numbering plan
can: each DEF range belongs to one region. config/numbering.py loads that data; here it is
only searched (a binary search over sorted arrays, ~1 µs), with no file reading.
"""
from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Place:
    region: str  # as the registry names it: "Приморский край"
    timezone: str | None  # IANA name, None when the region has no known zone


class NumberingPlan:
    """Ranges of E.164 digits (without "+": 79140000000..79140999999), each to a place.

    >>> plan = NumberingPlan.from_ranges([(79240000000, 79241099999, Place("Хабаровский край", "Asia/Vladivostok")),
    ...                                   (79161234000, 79161234999, Place("г. Москва", "Europe/Moscow"))])
    >>> plan.lookup("+79241234567") is None, plan.lookup("+79241000000").timezone
    (True, 'Asia/Vladivostok')
    >>> plan.lookup("+79161234567").region, len(plan)
    ('г. Москва', 2)
    """

    def __init__(self, starts: array, ends: array, place_of: array, places: tuple[Place, ...]) -> None:
        self._starts = starts
        self._ends = ends
        self._place_of = place_of
        self._places = places

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int, Place]]) -> NumberingPlan:
        """Build from (first, last, place) in any order; ValueError if two ranges overlap
        or a range ends before it starts."""
        rows = sorted(ranges, key=lambda r: r[0])
        index: dict[Place, int] = {}
        starts, ends, place_of = array("q"), array("q"), array("l")
        for first, last, place in rows:
            if last < first:
                raise ValueError(f"range {first}-{last} ends before it starts")
            if ends and first <= ends[-1]:
                raise ValueError(f"range {first}-{last} overlaps {starts[-1]}-{ends[-1]}")
            starts.append(first)
            ends.append(last)
            place_of.append(index.setdefault(place, len(index)))
        return cls(starts, ends, place_of, tuple(index))

    def lookup(self, number: str) -> Place | None:
        """The place of a strict E.164 number, or None when no range holds it."""
        digits = number[1:]
        if not digits.isascii() or not digits.isdigit():
            return None
        n = int(digits)
        i = bisect_right(self._starts, n) - 1
        if i < 0 or n > self._ends[i]:
            return None
        return self._places[self._place_of[i]]

    def ranges(self) -> Iterable[tuple[int, int, Place]]:
        for first, last, p in zip(self._starts, self._ends, self._place_of, strict=True):
            yield first, last, self._places[p]

    def __len__(self) -> int:
        return len(self._starts)
