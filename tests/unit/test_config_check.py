"""Config errors name file, line, key and reason; check_config checks the files against each
other (people named in the legal-entity directory and the file CRM) and IVR menus that trap."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ari_app.config.checks import check_config
from ari_app.config.files import ConfigError, parse_yaml_doc
from ari_app.config.policy import ivr_traps, load_policy
from ari_app.config.yaml_lines import line_of
from ari_app.core.policy import Policy
from ari_app.crm.factory import build_crm

CONFIG = Path(__file__).resolve().parents[2] / "config"

DOC = """\
a:
  b: 1
  c:
    - x
    - y: 2
      z: [p, q]
  d: {e: 5}
"""


@pytest.mark.parametrize(("key", "line"), [
    ("", 1), ("a", 1), ("a.b", 2), ("a.c", 3), ("a.c.0", 4), ("a.c.1", 5), ("a.c.1.y", 5), ("a.c.1.z", 6),
    ("a.c.1.z.1", 6), ("a.d.e", 7),
    ("a.missing", 1), ("a.c.7", 3), ("a.b.0", 2), ("a.d.[key]", 7),  # not written: the nearest parent
])
def test_line_of_a_dotted_key(key: str, line: int) -> None:
    assert line_of(parse_yaml_doc(DOC.encode(), Path("x.yaml")).root, key) == line


def test_yaml_syntax_errors_carry_their_line(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("version: 1\ncompany:\n  timezone: [Europe/Moscow\n")
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert err.value.line == 4 and err.value.key == "line 4, column 1"
    assert str(err.value).startswith(f"{path}:4: ")


def copy_config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target, ignore=shutil.ignore_patterns("asterisk"))
    return target


def check(config: Path, routing: Path | None = None) -> list[ConfigError]:
    return check_config(config, routing=routing, check_crm=lambda settings, known: build_crm(
        settings.crm, config, None, known_person=known))


def edit(path: Path, old: str, new: str) -> int:
    """Replace `old` once; the 1-based line of the change."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def test_shipped_config_is_valid(tmp_path: Path) -> None:
    assert check(copy_config(tmp_path)) == []


def test_unknown_person_in_a_rule(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    line = edit(config / "routing.yaml", 'target: [holder, "supervisor:sup1"]  # the case holder',
                'target: "manager:ghost"  # the case holder')
    [problem] = check(config)
    assert (problem.file, problem.line) == (str(config / "routing.yaml"), line)
    assert (problem.key, problem.reason) == ("rules.night_far_tz.target.0", "manager:ghost not found in people.managers")


@pytest.mark.parametrize(("old", "new", "key", "reason"), [
    ('"0": "queue:operators"', '"0": "manager:ghost"', "ivr.main.options.0.0", "manager:ghost not found in people.managers"),
    ('escalate_to: "supervisor:sup1"', 'escalate_to: "supervisor:nobody"', "chains.vip.escalate_to",
     "supervisor:nobody not found in people.supervisors"),
    ('target: ["manager:mgr3", holder]', 'target: ["manager:mgr7", holder]', "rules.context.delivery_today.target.0",
     "manager:mgr7 not found"),
])
def test_unknown_person_in_ivr_chain_and_rules(tmp_path: Path, old: str, new: str, key: str, reason: str) -> None:
    config = copy_config(tmp_path)
    line = edit(config / "routing.yaml", old, new)
    [problem] = check(config)
    assert (problem.key, problem.line) == (key, line) and reason in problem.reason
    assert str(problem) == f"{config / 'routing.yaml'}:{line}: {key}: {problem.reason}"


def test_every_problem_is_listed_with_its_own_line(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    first = edit(config / "routing.yaml", '"0": "queue:operators"', '"0": "manager:ghost"')
    second = edit(config / "routing.yaml", "      boost: 15", "      boost: 500")
    problems = check(config)
    assert [(p.key, p.line) for p in problems] == [("rules.callback.missed.boost", second)]  # fields first
    edit(config / "routing.yaml", "      boost: 500", "      boost: 15")
    third = edit(config / "routing.yaml", "escalate_to: \"supervisor:sup1\"", "escalate_to: \"manager:nope\"")
    assert {(p.key, p.line) for p in check(config)} == {("ivr.main.options.0.0", first),
                                                        ("chains.vip.escalate_to", third)}


def test_a_candidate_routing_file_is_checked_instead(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    candidate = tmp_path / "candidate.yaml"
    shutil.copy(config / "routing.yaml", candidate)
    line = edit(candidate, '"0": "queue:operators"', '"0": "manager:ghost"')
    assert check(config) == []
    [problem] = check(config, routing=candidate)
    assert (problem.file, problem.line) == (str(candidate), line)


def test_unknown_manager_in_the_legal_entity_directory(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    line = edit(config / "legal_entities.yaml", "manager: mgr1", "manager: sidorova")
    [problem] = check(config)
    assert (problem.file, problem.key, problem.line) == (str(config / "legal_entities.yaml"), "entities.0.manager", line)
    assert "'sidorova' not found in people" in problem.reason


def test_unknown_responsible_in_the_file_crm(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    line = edit(config / "clients.yaml", "responsible: mgr2", "responsible: petrov")
    [problem] = check(config)
    assert (problem.file, problem.key, problem.line) == (str(config / "clients.yaml"), "clients.1.responsible", line)
    assert "'petrov' not found in people" in problem.reason


def test_people_are_not_checked_against_a_broken_policy(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    edit(config / "routing.yaml", "mode: retention", "mode: growth")
    assert [p.key for p in check(config)] == ["strategy.mode"]  # not also every manager as "unknown"


def test_settings_error_stops_the_check(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    line = edit(config / "caseline.yaml", "budget_ms: 300", "budget_ms: 0")
    [problem] = check(config)
    assert (problem.key, problem.line) == ("crm.budget_ms", line)


# -- IVR menus that cannot be left ---------------------------------------------------------

RAW = yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8"))


def policy_with_ivr(ivr: dict) -> Policy:
    return Policy.model_validate(dict(RAW, ivr=ivr))  # fields only: ivr_traps is the cross-check here


def menu(options: dict, on_timeout: object = "hangup") -> dict:
    return {"prompt": "demo-instruct", "options": options, "on_timeout": on_timeout}


@pytest.mark.parametrize("ivr", [
    {"main": menu({"1": "ivr:main", "0": "queue:operators"}, "ivr:main")},  # "press 1 to hear again"
    {"main": menu({"9": "ivr:main"})},  # the timeout hangs up
    {"main": menu({"1": ["holder", "ivr:main"]}, "ivr:main")},  # the holder when there is one
    {"main": menu({"1": "ivr:sub"}, "ivr:main"), "sub": menu({"1": "ivr:main"}, "voicemail:general")},
])
def test_menus_with_a_way_out(ivr: dict) -> None:
    assert ivr_traps(policy_with_ivr(ivr)) == []


def test_a_menu_leading_only_back_to_itself_is_refused(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    line = edit(config / "routing.yaml", '"0": "queue:operators"', '"0": "ivr:main"')
    edit(config / "routing.yaml", '"1": [holder, "queue:operators"]', '"1": "ivr:main"')
    edit(config / "routing.yaml", '"2": ["callback:thanks", "queue:operators"]', '"2": "ivr:main"')
    edit(config / "routing.yaml", 'on_timeout: "voicemail:general"', 'on_timeout: "ivr:main"')
    problems = check(config)
    assert {p.key for p in problems} == {"ivr.main.options.1.0", "ivr.main.options.0.0",
                                         "ivr.main.options.2.0", "ivr.main.on_timeout.0"}
    zero = next(p for p in problems if p.key == "ivr.main.options.0.0")
    assert zero.line == line and zero.reason.startswith("ivr:main leads back to its own menu, and menu main has no "
                                                        "other way out")


def test_two_menus_leading_only_to_each_other_are_refused() -> None:
    traps = ivr_traps(policy_with_ivr({"main": menu({"1": "ivr:sub"}, "ivr:main"),
                                       "sub": menu({"1": "ivr:main"}, "ivr:sub")}))
    assert {key for key, _ in traps} == {"ivr.main.options.1.0", "ivr.main.on_timeout.0",
                                         "ivr.sub.options.1.0", "ivr.sub.on_timeout.0"}
