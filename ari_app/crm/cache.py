"""A bounded LRU cache with per-entry expiry, for CRM answers (records and "unknown")."""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")
_MISS = object()


class TtlLru(Generic[V]):
    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: object = _MISS) -> V | object:
        """The live value, or `default` (a sentinel by default: None is a valid cached value)."""
        item = self._data.get(key)
        if item is None:
            return default
        expires, value = item
        if self._clock() >= expires:
            del self._data[key]
            return default
        self._data.move_to_end(key)
        return value

    def put(self, key: str, value: V, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        now = self._clock()
        self._data[key] = (now + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        # Callers nobody asked about again sit at the old end; once expired they only cost
        # memory and garbage-collector time, so they go as new entries come, not at the cap.
        while self._data and next(iter(self._data.values()))[0] <= now:
            self._data.popitem(last=False)

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    @staticmethod
    def is_miss(value: object) -> bool:
        return value is _MISS
