from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ari_app.config.directories import (
    LegalEntitiesFile,
    RegionNames,
    directory_from_model,
    load_legal_directory,
)
from ari_app.config.files import ConfigError
from ari_app.config.policy import load_policy
from ari_app.core.environment import LegalDirectory, describe_number
from ari_app.core.models import EnvironmentFacts, LegalEntity

ROOT = Path(__file__).resolve().parents[2]
WINTER = datetime(2024, 1, 15, 3, 0, tzinfo=UTC)
SUMMER = datetime(2024, 7, 15, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "now", "country", "zone", "offset"),
    [
        ("+74951234567", WINTER, "RU", "Europe/Moscow", 3.0),
        ("+74232123456", WINTER, "RU", "Asia/Vladivostok", 10.0),
        ("+12025550123", WINTER, "US", "America/New_York", -5.0),
        ("+12025550123", SUMMER, "US", "America/New_York", -4.0),
        ("+442079460000", SUMMER, "GB", "Europe/London", 1.0),
        # US DST starts 2024-03-10 07:00 UTC: the offset follows UTC time, not wall time.
        ("+12025550123", datetime(2024, 3, 10, 6, 30, tzinfo=UTC), "US", "America/New_York", -5.0),
        ("+12025550123", datetime(2024, 3, 10, 7, 30, tzinfo=UTC), "US", "America/New_York", -4.0),
        # A Russian mobile maps to 16 zones: no guess rather than a wrong one.
        ("+79161234567", WINTER, "RU", None, None),
    ],
)
def test_country_zone_offset(number: str, now: datetime, country: str,
                             zone: str | None, offset: float | None) -> None:
    facts = describe_number(number, now)
    assert (facts.country, facts.timezone, facts.utc_offset_hours) == (country, zone, offset)
    assert facts.region is None  # region names not loaded: optional, never loaded on a call


def test_non_geographic_number_has_no_country() -> None:
    facts = describe_number("+80012345678", WINTER)
    assert facts.country is None and facts.timezone is None


def test_carrier() -> None:
    assert describe_number("+79031234567", WINTER).carrier == "Beeline"
    assert describe_number("+74951234567", WINTER).carrier is None


@pytest.mark.parametrize("number", ["79161234567", "", "+7916\n", "garbage", "+0123456789"])
def test_non_e164_gives_empty_facts(number: str) -> None:
    assert describe_number(number, WINTER) == EnvironmentFacts()


def test_region_names_after_loading() -> None:
    names = RegionNames()
    assert not names.loaded
    names.load()
    names.load()  # idempotent
    assert names.loaded
    namer = names.namer
    assert describe_number("+74232123456", WINTER, region_names=namer).region == "Primorie territory"
    assert describe_number("+74951234567", WINTER, region_names=namer, lang="ru").region == "Московская обл."


# --- legal-entity directory -------------------------------------------------------------

def directory(*entities: dict[str, object]) -> LegalDirectory:
    return directory_from_model(LegalEntitiesFile.model_validate({"entities": list(entities)}))


def test_exact_beats_prefix_and_longest_prefix_wins() -> None:
    d = directory(
        {"company": "Short", "prefixes": ["+7495"]},
        {"company": "Long", "manager": "petrov", "abc": "A", "prefixes": ["+7495777"]},
        {"company": "Exact", "numbers": ["+74957771234"]},
    )
    assert d.lookup("+74957771234") == LegalEntity("Exact")
    assert d.lookup("+74957770000") == LegalEntity("Long", "petrov", "A")
    assert d.lookup("+74951110000") == LegalEntity("Short")
    assert d.lookup("+78121110000") is None
    assert len(d) == 3


def test_directory_reaches_environment_facts() -> None:
    d = directory({"company": "Branch", "manager": "sidorova", "prefixes": ["+78432"]})
    facts = describe_number("+78432777000", WINTER, directory=d)
    assert facts.legal_entity == LegalEntity("Branch", "sidorova")


def test_sample_config_loads() -> None:
    policy = load_policy(ROOT / "config" / "routing.yaml")
    d = load_legal_directory(ROOT / "config" / "legal_entities.yaml",
                             known_person=lambda pid: policy.person(pid) is not None)
    assert d.lookup("+74957771234") == LegalEntity("Avtodom Holding", "mgr1", "A", id="C-2001")
    # a branch without its own manager and category has its parent's
    assert d.lookup("+78432777999") == LegalEntity("Avtodom Service Kazan", "mgr1", "A", id="avtodom-kazan",
                                                   parent="Avtodom Holding", parent_id="C-2001")
    assert d.lookup("+78432777999").crm_company == "C-2001"
    assert d.lookup("+74957770000").crm_company == "C-2001"  # the company itself
    assert d.lookup("+78125550100") == LegalEntity("Romashka LLC", None, "C")
    assert d.lookup("+78125550100").crm_company is None


def test_entries_are_named_by_name_or_the_older_company() -> None:
    d = directory({"name": "Holding", "id": "h", "manager": "mgr1", "abc": "B", "prefixes": ["+7495"]},
                  {"company": "Branch", "parent": "h", "abc": "A", "prefixes": ["+7843"]})
    assert d.lookup("+74950000000") == LegalEntity("Holding", "mgr1", "B", id="h")
    assert d.lookup("+78430000000") == LegalEntity("Branch", "mgr1", "A", parent="Holding", parent_id="h")


def test_directory_manager_must_be_a_known_person(tmp_path: Path) -> None:
    path = tmp_path / "legal_entities.yaml"
    path.write_text("entities:\n  - company: X\n    prefixes: ['+7495']\n\n  - company: Y\n"
                    "    manager: petrov\n    prefixes: ['+7812']\n")
    assert len(load_legal_directory(path)) == 2  # without a policy to check against
    with pytest.raises(ConfigError) as err:
        load_legal_directory(path, known_person=lambda pid: pid == "mgr1")
    assert (err.value.key, err.value.line) == ("entities.1.manager", 6)
    assert "'petrov' not found in people" in err.value.reason
    assert str(err.value).startswith(f"{path}:6: entities.1.manager: ")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("entities:\n  - {company: X, numbers: ['89161234567']}\n", "entities.0", "not E.164"),
        ("entities:\n  - {company: X, prefixes: ['7495']}\n", "entities.0", "prefix"),
        ("entities:\n  - {company: X}\n", "entities.0", "at least one"),
        ("entities:\n  - {company: X, abc: D, prefixes: ['+7']}\n", "entities.0.abc", ""),
        ("entities:\n  - {company: X, prefixes: ['+7'], color: red}\n", "entities.0.color", ""),
        ("entities:\n  - {company: X, prefixes: ['+7495']}\n  - {company: Y, prefixes: ['+7495']}\n",
         "entities.1", "listed twice"),
        ("entities:\n  - {company: X, id: x, prefixes: ['+7495']}\n  - {company: Y, id: x, prefixes: ['+7']}\n",
         "entities.1.id", "already entities.0"),
        ("entities:\n  - {company: X, parent: nope, prefixes: ['+7495']}\n", "entities.0.parent", "not the id"),
        ("entities:\n  - {company: X, id: x, parent: x, prefixes: ['+7495']}\n", "entities.0.parent", "not the id"),
    ],
)
def test_bad_directory_names_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "legal_entities.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_legal_directory(path)
    assert err.value.key == key and reason in err.value.reason
