"""Loading YAML files into typed (pydantic) models with errors that name file, key and reason."""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

MAX_CONFIG_BYTES = 2 * 1024 * 1024  # a routing config is a few KB; refuse anything absurd


class ConfigError(Exception):
    """A config file is unreadable or invalid. str() names the file, the key and the reason."""

    def __init__(self, file: str | Path, key: str, reason: str) -> None:
        self.file = str(file)
        self.key = key
        self.reason = reason
        super().__init__(f"{self.file}: {key or '<top level>'}: {reason}")


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases: closes the "billion laughs" door for hand-edited files."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(None, None, "aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> object:
    """Parse one YAML file; any failure becomes a ConfigError naming the file."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(path, "", f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 (byte {e.start})") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, where, f"invalid YAML: {e.problem or e.context}") from None
    except (yaml.YAMLError, RecursionError) as e:
        raise ConfigError(path, "", f"invalid YAML: {type(e).__name__}") from None
    except (ValueError, OverflowError, TypeError) as e:
        # PyYAML's constructors raise these for scalars that match a YAML type but are
        # out of range: `2025-13-45`, a UTC offset of +99:00, a 5000-digit integer.
        reason = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise ConfigError(path, "", f"invalid YAML value: {reason}") from None


def validation_to_config_error(path: Path, error: ValidationError) -> ConfigError:
    """The first validation error, as file + dotted key + reason (all errors in the reason)."""
    problems = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        problems.append((key, item["msg"]))
    key, msg = problems[0]
    more = f" (and {len(problems) - 1} more: " + "; ".join(f"{k}: {m}" for k, m in problems[1:]) + ")" if len(problems) > 1 else ""
    return ConfigError(path, key, msg + more)


def load_model(path: Path, model: type[M]) -> M:
    """Read `path` and validate it into `model`; raise ConfigError on any problem."""
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "", f"expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise validation_to_config_error(path, e) from None
