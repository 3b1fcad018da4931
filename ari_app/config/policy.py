"""load_policy(path): routing.yaml -> Policy, or ConfigError naming file, line, key and reason.

Pydantic checks each field; `cross_check` then checks what spans sections: every
referenced person, queue, menu, mailbox, recording and chain exists, chains can end,
IVR menus can be left, and after-hours settings match the chosen action.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import ValidationError

from ari_app.config.files import (
    ConfigError,
    YamlDoc,
    parse_yaml_doc,
    read_yaml_doc,
    validate_doc,
    validation_to_config_error,
)
from ari_app.core import public_holidays
from ari_app.core.policy import (
    CONDITIONAL_REFS,
    TERMINAL_REFS,
    Policy,
    Ref,
    RefKind,
    Rule,
)


def load_policy(path: str | Path) -> Policy:
    return policy_from_doc(read_yaml_doc(Path(path)))


def load_policy_bytes(raw: bytes, name: str) -> Policy:
    """A candidate policy that is not (yet) a file, e.g. the body of POST /replay."""
    return policy_from_doc(parse_yaml_doc(raw, Path(name)))


def policy_from_doc(doc: YamlDoc) -> Policy:
    policy = validate_doc(doc, Policy)
    _raise_first(doc.path, cross_check(policy), doc)
    return policy


def policy_problems(path: Path) -> tuple[Policy | None, list[ConfigError]]:
    """Every problem of a routing file, each with its line (`caseline check-config`); the
    policy when there are none."""
    try:
        doc = read_yaml_doc(path)
    except ConfigError as e:
        return None, [e]
    return doc_policy_problems(doc)


def doc_policy_problems(doc: YamlDoc) -> tuple[Policy | None, list[ConfigError]]:
    """policy_problems of a parsed document (a candidate sent to the ops API, too)."""
    try:
        data = {} if doc.data is None else doc.data
        if not isinstance(data, dict):
            validate_doc(doc, Policy)  # raises the "expected a mapping" error
        policy = Policy.model_validate(data)
    except ConfigError as e:
        return None, [e]
    except ValidationError as e:
        return None, [doc.error(".".join(str(p) for p in item["loc"]), item["msg"]) for item in e.errors()]
    problems = [doc.error(key, reason) for key, reason in cross_check(policy)]
    return (None if problems else policy), problems


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


def _raise_first(file: str | Path, problems: list[tuple[str, str]], doc: YamlDoc | None = None) -> None:
    if problems:
        key, reason = problems[0]
        if len(problems) > 1:
            reason += f" (and {len(problems) - 1} more: " + "; ".join(f"{k}: {r}" for k, r in problems[1:]) + ")"
        raise ConfigError(file, key, reason, doc.line_of(key) if doc is not None else None)


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
            RefKind.CALLBACK: ("recordings", p.recordings),  # callback:<recording> plays it
        }
        if ref.kind in tables and (ref.id or ref.kind is not RefKind.CALLBACK):
            section, table = tables[ref.kind]
            if ref.id not in table:
                problems.append((key, f"{ref} not found in {section}"))

    def must_be_terminal(key: str, ref: Ref | None) -> None:
        if ref is not None and ref.kind is RefKind.CALLBACK:
            problems.append((key, f"{ref} cannot be a fallback (a withheld caller cannot be called "
                             "back): use it as an alternative of a rule's or an IVR option's target"))
        elif ref is not None and ref.kind not in TERMINAL_REFS:
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
    problems.extend(ivr_traps(p))

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
    problems.extend(holiday_problems(p))
    return problems


def holiday_problems(policy: Policy) -> list[tuple[str, str]]:
    """The holiday calendar: a country and subdivision the `holidays` package knows (this
    also builds the calendar, so no call pays for it), and working days that are public
    holidays of that country and not also our own closed days."""
    hours, country = policy.hours, policy.holiday_country
    problems: list[tuple[str, str]] = []
    if country is not None:
        why = public_holidays.problem(country, hours.subdivision)
        if why is not None:
            key = "hours.subdivision" if why.startswith("unknown subdivision") else (
                "hours.country" if hours.country else "company.country")
            return [(key, why)]
    elif hours.subdivision is not None:
        problems.append(("hours.subdivision", "needs a country (hours.country or company.country)"))
    own = set(hours.holidays)
    for i, day in enumerate(hours.working_days):
        key = f"hours.working_days.{i}"
        if country is None:
            problems.append((key, "no public holidays to work on (set hours.country or company.country)"))
        elif day in own:
            problems.append((key, f"{day} is also in hours.holidays"))
        elif public_holidays.holiday_name(country, hours.subdivision, day) is None:
            problems.append((key, f"{day} is not a public holiday in {country}: only public holidays "
                                  "can be made working days"))
    return problems


def _may_lead_to(targets: Sequence[Ref]) -> list[tuple[int, Ref]]:
    """The alternatives a choice may end on: up to the first that always resolves (holder
    and history_owner resolve only when the caller has one, callback only with a number)."""
    out = []
    for i, ref in enumerate(targets):
        out.append((i, ref))
        if ref.kind not in CONDITIONAL_REFS:
            break
    return out


def ivr_traps(policy: Policy) -> list[tuple[str, str]]:
    """Options leading back into a menu that has no other way out: every option and the
    timeout of the menus reachable from it lead only to IVR menus, never to a person, a
    queue, voicemail or hangup. (The executor cuts such a loop after a few menus, with the
    caller none the wiser.)"""
    choices = {mid: [*menu.options.items(), ("on_timeout", menu.on_timeout)] for mid, menu in policy.ivr.items()}
    free: set[str] = set()  # menus with a way out, directly or through other menus
    changed = True
    while changed:
        changed = False
        for mid, options in choices.items():
            if mid in free:
                continue
            if any(ref.kind is not RefKind.IVR or ref.id in free
                   for _, targets in options for _, ref in _may_lead_to(targets)):
                free.add(mid)
                changed = True
    problems = []
    for mid, options in choices.items():
        if mid in free:
            continue
        for label, targets in options:
            for i, ref in _may_lead_to(targets):
                if ref.kind is RefKind.IVR and ref.id in choices:
                    where = "on_timeout" if label == "on_timeout" else f"options.{label}"
                    back = "its own menu" if ref.id == mid else f"menu {ref.id}, which only leads back to IVR menus"
                    problems.append((f"ivr.{mid}.{where}.{i}", f"{ref} leads back to {back}, and menu {mid} "
                                     "has no other way out (give an option or on_timeout a person, queue, "
                                     "voicemail or hangup)"))
    return problems


__all__ = ["ConfigError", "cross_check", "holiday_problems", "ivr_traps", "load_policy", "load_policy_bytes",
           "parse_policy"]
