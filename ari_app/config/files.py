"""Loading YAML files into typed (pydantic) models with errors that name file, line, key and
reason."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ari_app.config.yaml_lines import line_of

M = TypeVar("M", bound=BaseModel)

MAX_CONFIG_BYTES = 2 * 1024 * 1024  # a routing config is a few KB; refuse anything absurd


class ConfigError(Exception):
    """A config file is unreadable or invalid. str() names the file, the line (when known),
    the key and the reason: `config/routing.yaml:42: rules.abc.A.target.0: ... not found`."""

    def __init__(self, file: str | Path, key: str, reason: str, line: int | None = None) -> None:
        self.file = str(file)
        self.key = key
        self.reason = reason
        self.line = line
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: {key or '<top level>'}: {reason}")


@dataclass(frozen=True)
class YamlDoc:
    """A parsed file: its data and its node tree (which knows where each key is written)."""

    path: Path
    data: object
    root: yaml.Node | None

    def line_of(self, key: str) -> int | None:
        return line_of(self.root, key)

    def error(self, key: str, reason: str) -> ConfigError:
        """A ConfigError for `key` of this file, with the key's line."""
        return ConfigError(self.path, key, reason, self.line_of(key))


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases: closes the "billion laughs" door for hand-edited files."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(None, None, "aliases are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> object:
    """Parse one YAML file; any failure becomes a ConfigError naming the file."""
    return read_yaml_doc(path).data


def read_yaml_doc(path: Path) -> YamlDoc:
    """Parse one YAML file, keeping its node tree; failures are ConfigErrors naming the file."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror or e}") from None
    return parse_yaml_doc(raw, path)


def parse_yaml_doc(raw: bytes, path: Path) -> YamlDoc:
    """Parse YAML bytes said to come from `path` (a file, or a candidate sent to the ops API)."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(path, "", f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 (byte {e.start})") from None
    try:
        # what yaml.load does, keeping the composed tree for line numbers
        loader = _NoAliasLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
        return YamlDoc(path, data, root)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, where, f"invalid YAML: {e.problem or e.context}",
                          mark.line + 1 if mark else None) from None
    except (yaml.YAMLError, RecursionError) as e:
        raise ConfigError(path, "", f"invalid YAML: {type(e).__name__}") from None
    except (ValueError, OverflowError, TypeError) as e:
        # PyYAML's constructors raise these for scalars that match a YAML type but are
        # out of range: `2025-13-45`, a UTC offset of +99:00, a 5000-digit integer.
        reason = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise ConfigError(path, "", f"invalid YAML value: {reason}") from None


def validation_to_config_error(path: Path, error: ValidationError,
                                doc: YamlDoc | None = None) -> ConfigError:
    """The first validation error, as file + line + dotted key + reason (all errors in the
    reason; the line only when the parsed document is at hand)."""
    problems = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        problems.append((key, item["msg"]))
    key, msg = problems[0]
    more = f" (and {len(problems) - 1} more: " + "; ".join(f"{k}: {m}" for k, m in problems[1:]) + ")" if len(problems) > 1 else ""
    return ConfigError(path, key, msg + more, doc.line_of(key) if doc is not None else None)


def load_model(path: Path, model: type[M]) -> M:
    """Read `path` and validate it into `model`; raise ConfigError on any problem."""
    return load_model_doc(path, model)[0]


def load_model_doc(path: Path, model: type[M]) -> tuple[M, YamlDoc]:
    """load_model, also giving the parsed document (for line numbers of later checks)."""
    doc = read_yaml_doc(path)
    return validate_doc(doc, model), doc


def validate_doc(doc: YamlDoc, model: type[M]) -> M:
    """Validate a parsed document into `model`; raise ConfigError (with the line) on any problem."""
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError(doc.path, "", f"expected a mapping at the top level, got {type(data).__name__}",
                          doc.line_of(""))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise validation_to_config_error(doc.path, e, doc) from None
