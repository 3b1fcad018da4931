"""Helpers for the docker setup's tests (tests/docker): plain files, no Docker engine, no lab."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[2]
DOCKER = PROJECT / "docker"
COMPOSE = DOCKER / "compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
OVERLAY = DOCKER / "asterisk" / "pjsip_softphones.conf"
# Test values that pass render.py's checks (never used outside tests).
TEST_ENV = {
    "CASELINE_ARI_PASSWORD": "test-ari-password-0001",
    "CASELINE_AMI_SECRET": "test-ami-secret-0002",
    "CASELINE_OPS_TOKEN": "test-ops-token-0003",
    "CASELINE_PHONE_PASSWORD": "test-phone-password-0004",
    "CASELINE_VOICEMAIL_PIN": "246810",
    "CASELINE_CRM_TOKEN": "test-crm-token-0005",
}


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            pairs[name.strip()] = value.strip()
    return pairs


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str, str]]:
    """(host path resolved against docker/, container path, mode) of each bind mount."""
    mounts = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "use the short volume syntax"
        source, target, *mode = volume.split(":")
        if source.startswith((".", "/")):
            mounts.append(((DOCKER / source).resolve(), target, mode[0] if mode else "rw"))
    return mounts


_SECTION_RE = re.compile(r"\[([^\]]+)\](?:\(([^)]*)\))?")


def conf_sections(text: str) -> list[tuple[str, str, dict[str, list[str]]]]:
    """(name, parenthesised options, {option: [values]}) of an Asterisk config text."""
    sections: list[tuple[str, str, dict[str, list[str]]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        header = _SECTION_RE.fullmatch(line)
        if header:
            sections.append((header.group(1), header.group(2) or "", {}))
        elif sections and "=" in line:
            key, _, value = line.partition("=")
            sections[-1][2].setdefault(key.strip().lower(), []).append(value.lstrip(">").strip())
    return sections
