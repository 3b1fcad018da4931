"""Where a dotted key ("rules.abc.A.target.0") is written in a YAML file: its line number.

Validation and cross-checks speak in dotted keys; people fix files by line. The composed
node tree (yaml.compose) keeps every node's position, so a key is found by walking it.
"""
from __future__ import annotations

import yaml


def line_of(root: yaml.Node | None, key: str) -> int | None:
    """1-based line of `key` in the tree under `root`; for a key that is not there (a missing
    required field), the line of its nearest written parent. None without a tree."""
    if root is None:
        return None
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in key.split(".") if key else ():
        if part == "[key]":  # pydantic's marker for "the mapping key itself is wrong"
            break
        found = _child(node, part)
        if found is None:
            break
        line, node = found
    return line


def _child(node: yaml.Node, part: str) -> tuple[int, yaml.Node] | None:
    """(line, node) of one step down: a mapping entry by key, a sequence item by index."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                # the key's own line: a block mapping's value starts on the next one
                return key_node.start_mark.line + 1, value
        return None
    if isinstance(node, yaml.SequenceNode) and part.isdigit():
        index = int(part)
        if index < len(node.value):
            item = node.value[index]
            return item.start_mark.line + 1, item
    return None
