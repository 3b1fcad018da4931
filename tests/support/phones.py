"""The lab's SIPp phones as tests start them."""
from __future__ import annotations

from pathlib import Path

from labkit import sipp


def start_phones(started: dict[str, sipp.Phone], workdir: Path, **behaviours: str) -> None:
    """start_phones(phones, tmp_path, mgr1="answer", mgr2="busy", op1="answer:3000")."""
    for name, spec in behaviours.items():
        behaviour, _, after = spec.partition(":")
        started[name] = sipp.Phone(name, workdir, behaviour, int(after or 0)).start()


def answered_by(phones: dict[str, sipp.Phone], number: str) -> list[str]:
    """The phones that answered a call from `number` (their own SIPp logs)."""
    return [name for name, phone in phones.items() if "answered" in phone.calls_from(number)]
