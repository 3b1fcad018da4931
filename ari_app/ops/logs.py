"""One JSON line per call decision and per call outcome, through the std logging module.

Lines are built so they are safe to ship anywhere: caller numbers keep only their last
4 digits (unless `logging.mask_numbers` is off), secrets are never written (keys that
look like credentials are redacted, SecretStr never unwrapped), and every string is
stripped of control characters and bounded, so a caller-controlled value cannot forge a
log line.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO

from pydantic import SecretStr

from ari_app.core.models import CallerProfile, Decision
from ari_app.core.numbers import UNIDENTIFIED
from ari_app.core.numbers import mask as mask_digits
from ari_app.ops.log_flood import RepeatFilter

CALL_LOG = "caseline.calls"
MAX_TEXT = 300
MAX_ITEMS = 50
MAX_DEPTH = 3
REDACTED = "[redacted]"
RESERVED = frozenset({"ts", "level", "logger", "msg", "event", "call_id", "exc"})

_SECRET_KEY_RE = re.compile(r"pass|secret|token|auth|api_?key|cookie|credential", re.IGNORECASE)
_NUMBER_KEY_RE = re.compile(r"number|caller|callee|phone|^from$|^to$|^src$|^dst$|^clid$", re.IGNORECASE)
_KEY_RE = re.compile(r"[^a-z0-9_]", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# Numbers inside free text: "+" then digits with the separators people write.
_PLUS_NUMBER_RE = re.compile(r"\+\d[\d ()-]{5,}\d", re.ASCII)
_DIGITS_RE = re.compile(r"\D", re.ASCII)
# Credentials inside free text: an HTTP library's error about a malformed request quotes the
# offending header line ("Authorization: Bearer <token>\rX") or value ("Bearer <token>...").
_CREDENTIAL_RE = re.compile(
    r"(?i)\b((?:proxy-)?authorization|cookie|x-api-key)(\s*[:=]\s*)[^\r\n'\"\\]*"
    r"|\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def redact_credentials(text: str) -> str:
    return _CREDENTIAL_RE.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}" if m.group(1) else f"{m.group(3)} {REDACTED}", text)

_settings = {"mask_numbers": True}


def set_mask_numbers(flag: bool) -> None:
    """Process-wide default (settings.logging.mask_numbers)."""
    _settings["mask_numbers"] = bool(flag)


def mask_number(number: object, *, mask: bool | None = None) -> str | None:
    """`+79161234567` -> `***4567` (only the last 4 digits), or the number unmasked if off."""
    if number is None:
        return None
    text = number if isinstance(number, str) else str(number)
    if not (_settings["mask_numbers"] if mask is None else mask):
        return clean_text(text, 64, mask=False)
    return mask_digits(text)


def clean_text(value: str, limit: int = MAX_TEXT, *, mask: bool | None = None) -> str:
    """No control characters (CR/LF included), bounded, numbers in free text masked."""
    text = _CONTROL_RE.sub(" ", value[: limit * 2])
    if _settings["mask_numbers"] if mask is None else mask:
        text = _PLUS_NUMBER_RE.sub(lambda m: mask_number(m.group(0), mask=True) or "", text)
    return text[:limit] + ("..." if len(text) > limit else "")


def _clean_key(key: object) -> str:
    return _KEY_RE.sub("_", str(key).lower())[:40] or "_"


def clean_value(value: object, *, key: str = "", depth: int = 0, mask: bool | None = None) -> object:
    """A JSON-safe, secret-free, bounded copy of an outcome value."""
    if (key and _SECRET_KEY_RE.search(key)) or isinstance(value, SecretStr):
        return REDACTED
    if (key and _NUMBER_KEY_RE.search(key) and isinstance(value, str | int) and not isinstance(value, bool)
            and len(_DIGITS_RE.sub("", str(value)[:64])) >= 5):
        return mask_number(value, mask=mask)  # a phone number under a number-ish key
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return clean_text(value, mask=mask)
    if depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_ITEMS]
        return {_clean_key(k): clean_value(v, key=_clean_key(k), depth=depth + 1, mask=mask) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [clean_value(v, key=key, depth=depth + 1, mask=mask) for v in list(value)[:MAX_ITEMS]]
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return clean_text(value.value, mask=mask)
    return clean_text(type(value).__name__)  # never str() an unknown object: it may hold a secret


def decision_fields(call_id: str, profile: CallerProfile, decision: Decision, seconds: float,
                    *, mask: bool | None = None) -> dict[str, object]:
    """The fields of a decision line (separate from logging so they are easy to test)."""
    history, crm, env = profile.history, profile.crm, profile.environment
    return {
        "event": "decision",
        "call_id": clean_text(str(call_id), 80),
        "caller": mask_number(profile.number, mask=mask) or UNIDENTIFIED,
        "class": history.cls.value,
        "callback_kind": history.callback_kind.value if history.callback_kind else None,
        "previous_missed": history.previous_missed,
        "owner": clean_text(profile.case_holder, 64) if profile.case_holder else None,
        "abc": profile.abc,
        "history_status": history.status.value,
        "crm_status": crm.status.value,
        "crm_detail": clean_text(crm.detail, mask=mask) if crm.detail else None,
        "timezone": env.timezone,
        "service": decision.service.value,
        "priority": decision.priority,
        "route": [
            {"kind": step.kind.value, "target": clean_text(step.target, 64, mask=mask),
             **({"ring_s": step.ring_timeout_s} if step.ring_timeout_s else {})}
            for step in decision.route[:MAX_ITEMS]
        ],
        "reasons": [{"rule": clean_text(r.rule, 80), "text": clean_text(r.text, mask=mask)}
                    for r in decision.reasons[:MAX_ITEMS]],
        "callback_request": decision.callback_request,
        "decision_ms": round(max(0.0, seconds) * 1000, 3),
    }


def outcome_fields(call_id: str, outcome: Mapping[str, object], *, mask: bool | None = None) -> dict[str, object]:
    fields: dict[str, object] = {"event": "outcome", "call_id": clean_text(str(call_id), 80)}
    for key, value in list(outcome.items())[:MAX_ITEMS]:
        name = _clean_key(key)
        fields["x_" + name if name in RESERVED else name] = clean_value(value, key=name, mask=mask)
    return fields


def log_decision(call_id: str, profile: CallerProfile, decision: Decision, seconds: float,
                 *, logger: logging.Logger | None = None) -> None:
    """One JSON line: who called (masked), what the sources said, what was decided and why."""
    (logger or logging.getLogger(CALL_LOG)).info(
        "decision", extra={"caseline": decision_fields(call_id, profile, decision, seconds)})


def log_outcome(call_id: str, outcome: Mapping[str, object], *, logger: logging.Logger | None = None) -> None:
    """One JSON line: what happened to the call (who answered, which step, duration, ...)."""
    (logger or logging.getLogger(CALL_LOG)).info("outcome", extra={"caseline": outcome_fields(call_id, outcome)})


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., <fields>}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": clean_text(redact_credentials(record.getMessage()), 2000),
        }
        fields = getattr(record, "caseline", None)
        if isinstance(fields, Mapping):
            data.update(fields)
        if record.exc_info:
            # Kept multi-line inside the JSON string (json escapes the newlines).
            text = redact_credentials(self.formatException(record.exc_info))[-8000:]
            if _settings["mask_numbers"]:
                text = _PLUS_NUMBER_RE.sub(lambda m: mask_number(m.group(0), mask=True) or "", text)
            data["exc"] = text
        # ensure_ascii: no raw non-ASCII line separators can split the line downstream
        return json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=lambda o: clean_text(str(o)))


def configure_json_logging(level: str = "INFO", *, mask_numbers: bool = True,
                           stream: IO[str] | None = None) -> logging.Handler:
    """Route the root logger to one JSON-lines handler (replacing existing handlers).

    Repeated warnings and errors are rate-limited (log_flood.RepeatFilter); INFO lines never."""
    set_mask_numbers(mask_numbers)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
