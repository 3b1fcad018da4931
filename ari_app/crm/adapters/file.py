"""The client directory shipped with the product: a YAML file, indexed by E.164 number.

    clients:
      - id: C-1001
        name: "OOO Romashka"
        numbers: ["+7 916 123-45-67", "8 (495) 765-43-21"]   # any format, default region applies
        status: active
        abc: A                        # A | B | C | empty
        responsible: mgr1
        open_deals: 1
        open_orders: 0
        open_claims: 0
        delivery_today: false         # static flag (demos), or:
        delivery_dates: [2025-03-14]  # compared with today's date in the CRM time zone
        vip: false
        extra: {city: Moscow}

`lookup_company(id)` finds a client by its `id` (a company the legal-entity directory
names as a branch's parent). `reload()` builds a new index and swaps it in one assignment: a
lookup sees the old directory or the new one, never half of each; a broken file keeps the
old one.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ari_app.config.files import load_model_doc
from ari_app.core.models import CrmRecord
from ari_app.core.numbers import normalize, sanitize_for_log
from ari_app.crm.records import MAX_EXTRA_KEYS, build_record

MAX_CLIENTS = 200_000


class ClientEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    name: str = Field("", max_length=200)
    numbers: list[str] = Field(min_length=1, max_length=50)
    status: str = Field("", max_length=64)
    abc: str | None = None
    responsible: str | None = Field(None, max_length=64)
    open_deals: int = Field(0, ge=0)
    open_orders: int = Field(0, ge=0)
    open_claims: int = Field(0, ge=0)
    delivery_today: bool = False
    delivery_dates: list[date] = Field(default_factory=list, max_length=100)
    vip: bool = False
    extra: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=MAX_EXTRA_KEYS)

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: object) -> object:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # "id: 1001"

    @field_validator("abc")
    @classmethod
    def _abc(cls, v: str | None) -> str | None:
        # Strict here (unlike CRM answers): a typo in a hand-edited file should be caught.
        if v is None or not v.strip():
            return None
        if v.strip().upper() not in ("A", "B", "C"):
            raise ValueError("must be A, B, C or empty")
        return v.strip().upper()


class ClientDirectory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: list[ClientEntry] = Field(default_factory=list, max_length=MAX_CLIENTS)


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    record: CrmRecord  # delivery_today as written in the file
    delivery_dates: frozenset[date]


@dataclasses.dataclass(frozen=True, slots=True)
class _Index:
    numbers: dict[str, _Entry]  # E.164 -> entry
    ids: dict[str, _Entry]  # client id -> entry


def load_directory(path: Path, default_region: str = "RU",
                   known_person: Callable[[str], bool] | None = None) -> _Index:
    """Read and index a client directory; any problem -> ConfigError(file, key, reason, line).

    `known_person(id)` (the routing policy's people) checks every client's `responsible`."""
    directory, doc = load_model_doc(path, ClientDirectory)

    index: dict[str, _Entry] = {}
    ids: dict[str, _Entry] = {}
    owners: dict[str, str] = {}
    seen_ids: set[str] = set()
    for i, c in enumerate(directory.clients):
        if c.id in seen_ids:
            raise doc.error(f"clients.{i}.id", f"duplicate client id {sanitize_for_log(c.id)}")
        seen_ids.add(c.id)
        if c.responsible and known_person is not None and not known_person(c.responsible):
            raise doc.error(f"clients.{i}.responsible", f"{sanitize_for_log(c.responsible)!r} not found in "
                            "people (managers, supervisors) of the routing policy")
        entry = _Entry(
            record=build_record(
                client_id=c.id, name=c.name, status=c.status, abc=c.abc,
                responsible=c.responsible, open_deals=c.open_deals,
                open_orders=c.open_orders, open_claims=c.open_claims,
                delivery_today=c.delivery_today, vip=c.vip, extra=c.extra,
            ),
            delivery_dates=frozenset(c.delivery_dates),
        )
        ids[c.id] = entry
        for j, raw in enumerate(c.numbers):
            key = f"clients.{i}.numbers.{j}"
            number = normalize(raw, default_region)
            if number is None:
                raise doc.error(key, f"not a phone number: {sanitize_for_log(raw)}")
            owner = owners.get(number)
            if owner is not None and owner != c.id:
                raise doc.error(key, f"{number} already belongs to client {sanitize_for_log(owner)}")
            owners[number] = c.id
            index[number] = entry
    return _Index(index, ids)


class FileCrm:
    """CrmClient over a client directory file. The constructor loads it (ConfigError if broken)."""

    def __init__(
        self,
        path: Path,
        *,
        default_region: str = "RU",
        timezone: str = "Europe/Moscow",
        today: Callable[[], date] | None = None,
        known_person: Callable[[str], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self._region = default_region
        self._known_person = known_person
        tz = ZoneInfo(timezone)
        self._today = today or (lambda: datetime.now(tz).date())
        self._index = _Index({}, {})
        self.reload()

    def __repr__(self) -> str:
        return f"FileCrm({str(self.path)!r}, {len(self._index.numbers)} numbers)"

    def __len__(self) -> int:
        return len(self._index.numbers)

    def reload(self) -> int:
        """Re-read the file and swap the index atomically; returns the number of numbers.

        On any problem raises ConfigError and keeps serving the previous index.
        """
        index = load_directory(self.path, self._region, self._known_person)
        self._index = index
        return len(index.numbers)

    def prepare_reload(self) -> Callable[[], int]:
        """Read and check the file now (blocking: off the event loop); the returned function
        swaps the new index in and returns its size. ConfigError here changes nothing."""
        index = load_directory(self.path, self._region, self._known_person)

        def swap() -> int:
            self._index = index
            return len(index.numbers)
        return swap

    async def lookup(self, number: str) -> CrmRecord | None:
        return self._record(self._index.numbers.get(number))

    async def lookup_company(self, company_id: str) -> CrmRecord | None:
        return self._record(self._index.ids.get(company_id))

    def _record(self, entry: _Entry | None) -> CrmRecord | None:
        if entry is None:
            return None
        if entry.delivery_dates and not entry.record.delivery_today and self._today() in entry.delivery_dates:
            return dataclasses.replace(entry.record, delivery_today=True)
        return entry.record
