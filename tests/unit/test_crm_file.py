"""The `file` adapter: client directory YAML, normalisation, reload, ConfigError."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ari_app.config.files import ConfigError
from ari_app.crm import CrmSettings, build_crm
from ari_app.crm.adapters.file import FileCrm
from ari_app.crm.records import MAX_EXTRA_KEYS, MAX_NAME

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "clients.yaml"

DIRECTORY = """
clients:
  - id: C-1
    name: Alpha
    numbers: ["8 (916) 123-45-67", "+7 495 111-22-33"]
    abc: a
    responsible: mgr1
    open_deals: 2
    open_claims: 1
    vip: true
    extra: {city: Moscow, floors: 3}
  - id: 42
    numbers: ["79031112233"]
    delivery_dates: [2025-03-14]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clients.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_numbers_in_any_format_are_found_by_e164(tmp_path: Path) -> None:
    crm = FileCrm(write(tmp_path, DIRECTORY))
    assert len(crm) == 3
    for number in ("+79161234567", "+74951112233"):
        record = await crm.lookup(number)
        assert record is not None and record.client_id == "C-1"
    assert (await crm.lookup("+79031112233")).client_id == "42"  # type: ignore[union-attr]
    assert await crm.lookup("+79990000000") is None


async def test_record_fields(tmp_path: Path) -> None:
    record = await FileCrm(write(tmp_path, DIRECTORY)).lookup("+79161234567")
    assert record is not None
    assert (record.name, record.abc, record.responsible, record.vip) == ("Alpha", "A", "mgr1", True)
    assert (record.open_deals, record.open_orders, record.open_claims) == (2, 0, 1)
    assert record.most_urgent == "claim"
    assert record.extra == {"city": "Moscow", "floors": "3"}


async def test_delivery_dates_compare_with_today(tmp_path: Path) -> None:
    today = date(2025, 3, 14)
    crm = FileCrm(write(tmp_path, DIRECTORY), today=lambda: today)
    assert (await crm.lookup("+79031112233")).delivery_today is True  # type: ignore[union-attr]
    today = date(2025, 3, 15)
    assert (await crm.lookup("+79031112233")).delivery_today is False  # type: ignore[union-attr]


async def test_reload_swaps_the_whole_index(tmp_path: Path) -> None:
    path = write(tmp_path, DIRECTORY)
    crm = FileCrm(path)
    path.write_text('clients:\n  - {id: C-9, numbers: ["+79990000000"], abc: C}\n', encoding="utf-8")
    assert crm.reload() == 1
    assert await crm.lookup("+79161234567") is None
    assert (await crm.lookup("+79990000000")).client_id == "C-9"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('clients:\n  - {id: C-1, numbers: ["+79161234567", "call me"]}\n', "clients.0.numbers.1", "not a phone number"),
        ('clients:\n  - {id: C-1, numbers: ["+79161234567"], abc: D}\n', "clients.0.abc", "A, B, C"),
        ('clients:\n  - {id: C-1, numbers: ["+79161234567"]}\n  - {id: C-2, numbers: ["89161234567"]}\n',
         "clients.1.numbers.0", "already belongs to client C-1"),
        ('clients:\n  - {id: C-1, numbers: ["+79161234567"]}\n  - {id: C-1, numbers: ["+79161234500"]}\n',
         "clients.1.id", "duplicate"),
        ('clients:\n  - {id: C-1, numbers: []}\n', "clients.0.numbers", "at least 1"),
        ('clients:\n  - {id: C-1, numbers: ["+79161234567"], colour: red}\n', "clients.0.colour", "Extra inputs"),
        ('clients:\n  - {id: C-1, numbers: ["+79161234567"], open_deals: -1}\n', "clients.0.open_deals", "greater than"),
        ("clients: [\n", "line 2, column 1", "invalid YAML"),
        ("- just a list\n", "", "mapping"),
    ],
)
async def test_broken_file_raises_config_error_and_keeps_old_index(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, DIRECTORY)
    crm = FileCrm(path)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        crm.reload()
    assert info.value.file == str(path) and info.value.key == key
    assert reason in info.value.reason
    assert (await crm.lookup("+79161234567")).client_id == "C-1"  # type: ignore[union-attr]


def test_missing_file_fails_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        FileCrm(tmp_path / "nope.yaml")


async def test_bounded_sizes(tmp_path: Path) -> None:
    extra = ", ".join(f"k{i}: v{i}" for i in range(MAX_EXTRA_KEYS))
    text = f'clients:\n  - {{id: C-1, name: "{"x" * MAX_NAME}", numbers: ["+79161234567"], extra: {{{extra}}}}}\n'
    record = await FileCrm(write(tmp_path, text)).lookup("+79161234567")
    assert record is not None and len(record.extra) == MAX_EXTRA_KEYS
    too_many = text.replace("extra: {", "extra: {k99: x, ")
    with pytest.raises(ConfigError) as info:
        FileCrm(write(tmp_path, too_many))
    assert info.value.key == "clients.0.extra"
    with pytest.raises(ConfigError) as info:
        FileCrm(write(tmp_path, text.replace("x" * MAX_NAME, "x" * (MAX_NAME + 1))))
    assert info.value.key == "clients.0.name"


async def test_build_crm_resolves_path_against_config_dir(tmp_path: Path) -> None:
    write(tmp_path, DIRECTORY)
    crm = build_crm(CrmSettings(adapter="file"), tmp_path)
    assert isinstance(crm, FileCrm)
    assert (await crm.lookup("+79161234567")).client_id == "C-1"  # type: ignore[union-attr]
    assert "clients.yaml" in repr(crm)


async def test_shipped_sample_directory() -> None:
    crm = FileCrm(SAMPLE)
    records = {r.client_id: r for r in [await crm.lookup(n) for n in crm._index.numbers] if r}
    assert 6 <= len(records) <= 10
    assert all(n.startswith("+7") for n in crm._index.numbers)
    assert {r.responsible for r in records.values()} <= {"mgr1", "mgr2", "mgr3", None}
    assert {r.abc for r in records.values()} >= {"A", "B", "C"}
    assert any(r.open_claims for r in records.values())
    assert any(r.delivery_today for r in records.values())
    assert any(r.vip for r in records.values())
    assert (await crm.lookup("+79161234567")).responsible == "mgr1"  # type: ignore[union-attr]
