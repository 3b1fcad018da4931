"""`caseline check-config`: every config file, alone and against each other.

Each problem is a ConfigError naming file, line, key and reason. Besides each file's own
checks, the people named outside routing.yaml (the legal-entity directory's managers, the
file CRM's `responsible`) must be people that routing.yaml can ring.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ari_app.config.directories import load_legal_directory
from ari_app.config.files import ConfigError
from ari_app.config.numbering import load_numbering_plan
from ari_app.config.policy import policy_problems
from ari_app.config.settings import Settings, load_settings

KnownPerson = Callable[[str], bool]
# check_crm(settings, known_person): builds the configured CRM adapter (which loads and
# checks its files), raising ConfigError. Injected: the CRM adapters sit above config.
CrmCheck = Callable[[Settings, KnownPerson | None], object]


def check_config(config_dir: Path, *, routing: Path | None = None,
                 check_crm: CrmCheck | None = None) -> list[ConfigError]:
    """All problems found; empty when the config is valid. `routing` replaces the routing
    file named in caseline.yaml (a candidate being checked)."""
    try:
        settings = load_settings(config_dir)
    except ConfigError as e:
        return [e]  # without settings, the other files' names are unknown
    policy, problems = policy_problems(routing or config_dir / settings.routing_file)
    # people are checked only against a valid policy: otherwise every name would be "unknown"
    known: KnownPerson | None = (lambda pid: policy.person(pid) is not None) if policy is not None else None
    directory = config_dir / settings.legal_entities_file
    if directory.exists():
        try:
            load_legal_directory(directory, known_person=known)
        except ConfigError as e:
            problems.append(e)
    numbering = config_dir / settings.numbering_file
    if numbering.exists():
        try:
            load_numbering_plan(numbering)
        except ConfigError as e:
            problems.append(e)
    if check_crm is not None:
        try:
            check_crm(settings, known)
        except ConfigError as e:
            problems.append(e)
    return problems
