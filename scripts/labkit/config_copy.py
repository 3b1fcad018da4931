"""A copy of the shipped config folder with routing changes, for lab tests and the demo."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from .paths import PROJECT


def copy_config(folder: Path, source: Path = PROJECT / "config", **routing_changes: object) -> Path:
    """Copy config/ (without the Asterisk files) to `folder`; change routing.yaml keys.

    Working hours are switched off: the lab runs at any hour, and the shipped hours would
    send night runs to after-hours voicemail. Keys are dotted with "__":
    copy_config(dir, defaults__ring_timeout_s=5).
    """
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("asterisk"))
    routing = yaml.safe_load((folder / "routing.yaml").read_text())
    routing["hours"]["enabled"] = False
    for dotted, value in routing_changes.items():
        node = routing
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    (folder / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True))
    return folder
