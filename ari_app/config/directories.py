"""Directories read from files: the legal-entity directory (config/legal_entities.yaml) and
phonenumbers' region names. The core only looks them up (core/environment.py)."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from ari_app.config.files import load_model_doc
from ari_app.core.environment import LegalDirectory, RegionNamer
from ari_app.core.models import LegalEntity
from ari_app.core.numbers import is_e164

_PREFIX_RE = re.compile(r"\+[1-9][0-9]{0,13}", re.ASCII)


class LegalEntityEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # the company's name; `company:` is its older spelling
    name: str = Field(min_length=1, max_length=200, validation_alias=AliasChoices("name", "company"))
    # the company's id in the CRM (a call counts as this company's); what `parent` names
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    parent: str | None = Field(None, min_length=1, max_length=64)  # the id of the parent company's entry
    manager: str | None = Field(None, min_length=1, max_length=64)  # else the parent's
    abc: Literal["A", "B", "C"] | None = None  # else the parent's
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


def directory_from_model(model: LegalEntitiesFile) -> LegalDirectory:
    """Build the directory; a number or prefix listed twice, an id given twice or a parent
    that names no entry is a ValueError "key: reason". A branch without its own manager or
    category has its parent's: its calls are the parent company's."""
    ids: dict[str, int] = {}
    for i, entry in enumerate(model.entities):
        if entry.id is not None:
            if entry.id in ids:
                raise ValueError(f"entities.{i}.id: {entry.id!r} is already entities.{ids[entry.id]}")
            ids[entry.id] = i
    for i, entry in enumerate(model.entities):
        if entry.parent is not None and (entry.parent not in ids or entry.parent == entry.id):
            raise ValueError(f"entities.{i}.parent: {entry.parent!r} is not the id of another entry")
    exact: dict[str, LegalEntity] = {}
    prefixes: dict[str, LegalEntity] = {}
    for i, entry in enumerate(model.entities):
        parent = model.entities[ids[entry.parent]] if entry.parent is not None else None
        entity = LegalEntity(company=entry.name, manager=entry.manager or (parent.manager if parent else None),
                             abc=entry.abc or (parent.abc if parent else None), id=entry.id,
                             parent=parent.name if parent else None, parent_id=entry.parent)
        for table, keys in ((exact, entry.numbers), (prefixes, entry.prefixes)):
            for key in keys:
                if key in table:
                    raise ValueError(f"entities.{i}: {key} is listed twice")
                table[key] = entity
    return LegalDirectory(exact, prefixes)


def load_legal_directory(path: Path, known_person: Callable[[str], bool] | None = None) -> LegalDirectory:
    """Read config/legal_entities.yaml; raise ConfigError naming file, line, key and reason.

    `known_person(id)` (the routing policy's people) checks every entry's manager."""
    model, doc = load_model_doc(path, LegalEntitiesFile)
    if known_person is not None:
        for i, entry in enumerate(model.entities):
            if entry.manager is not None and not known_person(entry.manager):
                raise doc.error(f"entities.{i}.manager",
                                f"{entry.manager!r} not found in people (managers, supervisors) of the routing policy")
    try:
        return directory_from_model(model)
    except ValueError as e:
        key, _, reason = str(e).partition(": ")
        raise doc.error(key, reason) from None


class RegionNames:
    """phonenumbers' region names (~100 MB, ~0.5 s to load): load at start-up, in a thread,
    never on a call. `namer` is None until then (profiles carry no region name meanwhile)."""

    def __init__(self) -> None:
        self.namer: RegionNamer | None = None

    def load(self) -> None:
        from phonenumbers import (
            geocoder,  # the import is the load; the import lock serialises it
        )

        self.namer = geocoder

    @property
    def loaded(self) -> bool:
        return self.namer is not None
