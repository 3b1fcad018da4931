"""load_policy(path): routing.yaml -> Policy, or ConfigError naming file, key and reason.

Pydantic checks each field; `cross_check` then checks what spans sections: every
referenced person, queue, menu, mailbox, recording and chain exists, chains can end,
and after-hours settings match the chosen action.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from ari_app.config.files import ConfigError, load_model, validation_to_config_error
from ari_app.core.policy import TERMINAL_REFS, Policy, Ref, RefKind, Rule


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    policy = load_model(path, Policy)
    _raise_first(path, cross_check(policy))
    return policy


def parse_policy(data: object, file: str = "<memory>") -> Policy:
    """Same checks as load_policy, for an already parsed mapping (tests, reload previews)."""
    if not isinstance(data, dict):
        raise ConfigError(file, "", "expected a mapping at the top level")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as e:
        raise validation_to_config_error(Path(file), e) from None
    _raise_first(file, cross_check(policy))
    return policy


def _raise_first(file: str | Path, problems: list[tuple[str, str]]) -> None:
    if problems:
        key, reason = problems[0]
        if len(problems) > 1:
            reason += f" (and {len(problems) - 1} more: " + "; ".join(f"{k}: {r}" for k, r in problems[1:]) + ")"
        raise ConfigError(file, key, reason)


def _rules(policy: Policy) -> Iterator[tuple[str, Rule]]:
    r = policy.rules
    named: list[tuple[str, Rule | None]] = [
        ("rules.night_far_tz", r.night_far_tz),
        ("rules.context.claim", r.context.claim),
        ("rules.context.delivery_today", r.context.delivery_today),
        ("rules.callback.missed", r.callback.missed),
        ("rules.callback.after_talk", r.callback.after_talk),
        ("rules.repeat", r.repeat),
        ("rules.abc.A", r.abc.A),
        ("rules.abc.B", r.abc.B),
        ("rules.abc.C", r.abc.C),
        ("rules.classes.old", r.classes.old),
        ("rules.classes.new", r.classes.new),
    ]
    for key, rule in named:
        if rule is not None:
            yield key, rule


def cross_check(policy: Policy) -> list[tuple[str, str]]:
    """All cross-section problems as (dotted key, reason); empty when the policy is sound."""
    problems: list[tuple[str, str]] = []
    p = policy

    def ref_exists(key: str, ref: Ref) -> None:
        tables = {
            RefKind.MANAGER: ("people.managers", p.people.managers),
            RefKind.SUPERVISOR: ("people.supervisors", p.people.supervisors),
            RefKind.QUEUE: ("queues", p.queues),
            RefKind.IVR: ("ivr", p.ivr),
            RefKind.VOICEMAIL: ("voicemail", p.voicemail),
        }
        if ref.kind in tables:
            section, table = tables[ref.kind]
            if ref.id not in table:
                problems.append((key, f"{ref} not found in {section}"))

    def must_be_terminal(key: str, ref: Ref | None) -> None:
        if ref is not None and ref.kind not in TERMINAL_REFS:
            problems.append((key, f"{ref} is not terminal: use queue:, ivr:, voicemail: or hangup"))

    def has(key: str, table: dict[str, object], ident: str | None, section: str) -> None:
        if ident is not None and ident not in table:
            problems.append((key, f"{ident!r} not found in {section}"))

    for pid in sorted(set(p.people.managers) & set(p.people.supervisors)):
        problems.append((f"people.supervisors.{pid}", "id is also a manager id; person ids must be unique"))

    for key, rule in _rules(p):
        for i, ref in enumerate(rule.target):
            ref_exists(f"{key}.target.{i}", ref)
        has(f"{key}.intro", p.recordings, rule.intro, "recordings")
        has(f"{key}.chain", p.chains, rule.chain, "chains")
    if p.rules.night_far_tz is not None:
        has("rules.night_far_tz.closed_chain", p.chains, p.rules.night_far_tz.closed_chain, "chains")

    for name, chain in p.chains.items():
        key = f"chains.{name}"
        must_be_terminal(f"{key}.step_down_to", chain.step_down_to)
        ref_exists(f"{key}.step_down_to", chain.step_down_to)
        esc = chain.escalate_to
        if esc is not None:
            if esc.kind not in (RefKind.MANAGER, RefKind.SUPERVISOR):
                problems.append((f"{key}.escalate_to", f"{esc}: escalate to manager:<id> or supervisor:<id>"))
            ref_exists(f"{key}.escalate_to", esc)
        elif chain.escalates:
            problems.append((f"{key}.escalate_to", "required when an outcome is 'escalate'"))
    for seg in ("A", "B", "C", "unknown"):
        has(f"chain_by_value.{seg}", p.chains, getattr(p.chain_by_value, seg), "chains")

    for menu_id, menu in p.ivr.items():
        for digits, targets in menu.options.items():
            for i, ref in enumerate(targets):
                ref_exists(f"ivr.{menu_id}.options.{digits}.{i}", ref)
        for i, ref in enumerate(menu.on_timeout):
            ref_exists(f"ivr.{menu_id}.on_timeout.{i}", ref)

    must_be_terminal("defaults.target", p.defaults.target)
    ref_exists("defaults.target", p.defaults.target)

    ah = p.hours.after_hours
    has("hours.after_hours.intro", p.recordings, ah.intro, "recordings")
    has("hours.after_hours.ivr_menu", p.ivr, ah.ivr_menu, "ivr")
    has("hours.after_hours.mailbox", p.voicemail, ah.mailbox, "voicemail")
    needed = {"ivr": ("ivr_menu", ah.ivr_menu), "voicemail": ("mailbox", ah.mailbox), "callback_request": ("intro", ah.intro)}
    field, value = needed[ah.action]
    if value is None:
        problems.append((f"hours.after_hours.{field}", f"required when action is {ah.action}"))
    if p.hours.enabled and not any(p.hours.spans(d) for d in range(7)):
        problems.append(("hours", "enabled but no working hours on any day (set enabled: false for 24/7)"))
    return problems


__all__ = ["ConfigError", "cross_check", "load_policy", "parse_policy"]
