"""load_policy: the shipped routing.yaml loads; every broken variant names file, key and reason."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_app.config.files import ConfigError
from ari_app.config.policy import load_policy, parse_policy
from ari_app.core.policy import Policy, Ref, RefKind

ROUTING = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"
RAW: dict[str, Any] = yaml.safe_load(ROUTING.read_text(encoding="utf-8"))


def test_shipped_policy_loads_and_exposes_lookups() -> None:
    p = load_policy(ROUTING)
    assert isinstance(p, Policy)
    assert p.company.timezone == "Europe/Moscow"
    assert p.endpoint_of("mgr1") == "PJSIP/mgr1"
    assert p.endpoint_of("sup1") == "PJSIP/sup1"
    assert set(p.people.managers) == {"mgr1", "mgr2", "mgr3"}
    assert p.asterisk_queue_of("operators") == "operators"
    assert p.ivr["main"].options["0"] == (Ref(RefKind.QUEUE, "operators"),)
    assert p.defaults.target == Ref(RefKind.QUEUE, "operators")
    assert p.strategy.mode in ("expansion", "retention")
    with pytest.raises(KeyError):
        p.endpoint_of("nobody")


def test_shipped_sounds_are_core_sound_names() -> None:
    # names present in asterisk-core-sounds-en (the lab installs only that pack)
    core = {"demo-thanks", "demo-instruct", "vm-nobodyavail", "queue-thankyou", "pbx-invalid", "vm-goodbye"}
    p = load_policy(ROUTING)
    used = set(p.recordings.values()) | {m.prompt for m in p.ivr.values()} | {m.invalid_prompt for m in p.ivr.values()}
    assert used <= core


def test_dump_round_trips() -> None:
    p = load_policy(ROUTING)
    again = parse_policy(p.model_dump(mode="json"))
    assert again == p


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for part in path:
        data = data[part]
    if value is _DELETE:
        del data[last]
    else:
        data[last] = value


_DELETE = object()


def _scalars(value: Any) -> list[Any]:
    """The strings and numbers in a value (dict keys too)."""
    if isinstance(value, dict):
        return [*value, *_scalars(list(value.values()))]
    if isinstance(value, list):
        return [x for item in value for x in _scalars(item)]
    return [value] if isinstance(value, str | int) else []

# (scenario, [(dotted key in the YAML, new value)], expected key in the error, reason fragment)
BROKEN = [
    ("unknown manager", [("rules.abc.A.target", "manager:mgr9")], "rules.abc.A.target.0", "not found in people.managers"),
    ("unknown queue", [("defaults.target", "queue:nope")], "defaults.target", "not found in queues"),
    ("unknown menu in IVR option", [("ivr.main.options", {"1": "ivr:other"})], "ivr.main.options.1.0", "not found in ivr"),
    ("unknown mailbox", [("ivr.main.on_timeout", "voicemail:x")], "ivr.main.on_timeout.0", "not found in voicemail"),
    ("unknown recording", [("rules.abc.C.intro", "nope")], "rules.abc.C.intro", "not found in recordings"),
    ("unknown chain", [("rules.abc.B.chain", "gold")], "rules.abc.B.chain", "not found in chains"),
    ("unknown closed chain", [("rules.night_far_tz.closed_chain", "x")], "rules.night_far_tz.closed_chain", "not found"),
    ("chain_by_value to a missing chain", [("chain_by_value.A", "gold")], "chain_by_value.A", "not found in chains"),
    ("ring timeout zero", [("rules.callback.missed.ring_timeout_s", 0)], "rules.callback.missed.ring_timeout_s", "greater than or equal to 1"),
    ("ring timeout too long", [("defaults.ring_timeout_s", 121)], "defaults.ring_timeout_s", "less than or equal to 120"),
    ("escalation ring timeout", [("chains.vip.escalate_ring_timeout_s", 500)], "chains.vip.escalate_ring_timeout_s", "120"),
    ("priority above 100", [("rules.context.claim.priority", 101)], "rules.context.claim.priority", "less than or equal to 100"),
    ("negative base priority", [("strategy.retention.A", -1)], "strategy.retention.A", "greater than or equal to 0"),
    ("priority and boost", [("rules.context.claim.boost", 5)], "rules.context.claim", "not both"),
    ("boost out of range", [("rules.repeat.boost", 300)], "rules.repeat.boost", "100"),
    ("unknown strategy mode", [("strategy.mode", "growth")], "strategy.mode", "expansion"),
    ("non-terminal default", [("defaults.target", "manager:mgr1")], "defaults.target", "not terminal"),
    ("non-terminal step down", [("chains.standard.step_down_to", "supervisor:sup1")], "chains.standard.step_down_to", "not terminal"),
    ("escalate without a target", [("chains.vip.escalate_to", _DELETE)], "chains.vip.escalate_to", "required"),
    ("escalate to a queue", [("chains.vip.escalate_to", "queue:operators")], "chains.vip.escalate_to", "escalate to manager"),
    ("bad outcome", [("chains.vip.on_busy", "panic")], "chains.vip.on_busy", "step_down"),
    ("target kind unknown", [("rules.classes.new.target", "pstn:123")], "rules.classes.new.target.0", "unknown target kind"),
    ("target needs id", [("rules.classes.new.target", "queue")], "rules.classes.new.target.0", "needs an id"),
    ("holder takes no id", [("rules.abc.B.target", "holder:mgr1")], "rules.abc.B.target.0", "takes no"),
    ("empty target list", [("rules.abc.B.target", [])], "rules.abc.B.target", "at least 1"),
    ("target not a string", [("rules.abc.B.target", [42])], "rules.abc.B.target.0", "string"),
    ("typo in a rule name", [("rules.abcd", {"target": "hangup"})], "rules.abcd", "Extra inputs"),
    ("typo in a rule key", [("rules.repeat.bost", 3)], "rules.repeat.bost", "Extra inputs"),
    ("bad time zone", [("company.timezone", "Mars/Olympus")], "company.timezone", "unknown IANA"),
    ("reversed working hours", [("hours.mon", ["19:00-09:00"])], "hours.mon.0", "start must be before end"),
    ("bad hour", [("hours.tue", ["9-18"])], "hours.tue.0", "HH:MM"),
    ("empty night range", [("rules.night_far_tz.night", "23:00-23:00")], "rules.night_far_tz.night", "before end"),
    ("bad holiday", [("hours.holidays", ["2025-02-30"])], "hours.holidays.0", "date"),
    ("no working hours at all", [(f"hours.{d}", []) for d in ("mon", "tue", "wed", "thu", "fri", "sat")], "hours", "no working hours"),
    ("after-hours ivr without menu", [("hours.after_hours.action", "ivr"), ("hours.after_hours.ivr_menu", _DELETE)], "hours.after_hours.ivr_menu", "required"),
    ("callback request without intro", [("hours.after_hours.action", "callback_request"), ("hours.after_hours.intro", _DELETE)], "hours.after_hours.intro", "required"),
    ("after-hours unknown mailbox", [("hours.after_hours.mailbox", "x")], "hours.after_hours.mailbox", "not found in voicemail"),
    ("IVR digits", [("ivr.main.options", {"12345": "hangup"})], "ivr.main.options.12345.[key]", "pattern"),
    ("IVR timeout", [("ivr.main.timeout_s", 0)], "ivr.main.timeout_s", "greater than or equal to 1"),
    ("sound with a path", [("recordings.c_info", "../../etc/passwd")], "recordings.c_info", "pattern"),
    ("endpoint without technology", [("people.managers.mgr1.endpoint", "mgr1")], "people.managers.mgr1.endpoint", "pattern"),
    # names outside the dialplan's character set (core/dialplan.py): it would drop them
    ("endpoint with a dot", [("people.managers.mgr1.endpoint", "PJSIP/mgr.1")], "people.managers.mgr1.endpoint", "pattern"),
    ("dial string as an endpoint", [("people.managers.mgr1.endpoint", "PJSIP/101@trunk")], "people.managers.mgr1.endpoint", "pattern"),
    ("queue name with a dot", [("queues.operators.asterisk_queue", "ops.1")], "queues.operators.asterisk_queue", "pattern"),
    ("music class with a space", [("defaults.moh_class", "on hold")], "defaults.moh_class", "pattern"),
    ("person id twice", [("people.supervisors.mgr1", {"endpoint": "PJSIP/x"})], "people.supervisors.mgr1", "unique"),
    ("no queues", [("queues", {})], "queues", "at least 1"),
    ("version", [("version", 2)], "version", "1"),
]


@pytest.mark.parametrize(("changes", "key", "fragment"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_policy_names_key_and_reason(tmp_path: Path, changes: list[tuple[str, Any]], key: str, fragment: str) -> None:
    data = copy.deepcopy(RAW)
    for dotted, value in changes:
        _set(data, dotted, value)
    path = tmp_path / "routing.yaml"
    text = yaml.safe_dump(data)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert err.value.file == str(path)
    assert err.value.key == key
    assert fragment in err.value.reason
    assert key in str(err.value) and str(path) in str(err.value)
    # the line: where the key (or, for a missing one, its parent) or the new value is written
    assert err.value.line is not None and str(err.value).startswith(f"{path}:{err.value.line}: ")
    written = text.splitlines()[err.value.line - 1]
    assert any(part in written for part in key.split(".") if not part.isdigit() and part != "[key]") \
        or any(str(v) in written for v in _scalars([v for _, v in changes])), (key, written)


def test_several_problems_are_all_listed() -> None:
    data = copy.deepcopy(RAW)
    data["rules"]["abc"]["A"]["target"] = "manager:x"
    data["rules"]["abc"]["B"]["target"] = "manager:y"
    with pytest.raises(ConfigError) as err:
        parse_policy(data, "mem.yaml")
    assert err.value.key == "rules.abc.A.target.0"
    assert "and 1 more" in err.value.reason and "rules.abc.B.target.0" in err.value.reason


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"[1, 2]", "expected a mapping"),
        (b"a: [1,\n", "invalid YAML"),
        (b"a: &x 1\nb: *x\n", "aliases are not allowed"),
        (b"\xff\xfe", "not UTF-8"),
        (b"", "Field required"),
    ],
    ids=["list", "syntax", "alias", "encoding", "empty"],
)
def test_unreadable_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert fragment in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")


def test_parse_policy_rejects_non_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        parse_policy([1, 2])


def test_minimal_policy() -> None:
    minimal = {
        "company": {"timezone": "UTC"},
        "people": {},
        "queues": {"ops": {"asterisk_queue": "operators"}},
        "hours": {"enabled": False, "after_hours": {"action": "voicemail", "mailbox": "m"}},
        "voicemail": {"m": "100"},
        "strategy": {"mode": "expansion", **{m: dict.fromkeys(["A", "B", "C", "new", "old", "unknown"], 0) for m in ("expansion", "retention")}},
        "chains": {"s": {"step_down_to": "queue:ops"}},
        "chain_by_value": {"A": "s", "B": "s", "C": "s", "unknown": "s"},
        "defaults": {"target": "queue:ops"},
    }
    p = parse_policy(minimal)
    assert p.rules.repeat is None and p.defaults.ring_timeout_s == 25 and p.ivr == {}
