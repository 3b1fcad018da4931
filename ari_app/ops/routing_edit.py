"""The routing file from the console: show the running one, check a candidate, apply it.

Apply is `caseline reload` with a new file: the candidate is checked as check-config
checks it (every problem with its line and key, the legal-entity directory's people
against the candidate's), written atomically over routing.yaml (a temporary file in the
same folder, fsync, rename), then the same reload as POST /reload and SIGHUP swaps it in.
If that reload refuses it anyway (a directory edited meanwhile), the previous file is put
back, so the file on disk and the running config never disagree.
"""
from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ari_app.config.directories import load_legal_directory
from ari_app.config.files import MAX_CONFIG_BYTES, ConfigError, parse_yaml_doc
from ari_app.config.live import LiveConfig
from ari_app.config.policy import doc_policy_problems

CANDIDATE = "<candidate routing.yaml>"
Reload = Callable[[], Awaitable[Mapping[str, Any]]]


def problem_json(e: ConfigError) -> dict[str, Any]:
    return {"error": str(e), "file": e.file, "line": e.line, "key": e.key, "reason": e.reason}


class RoutingEditor:
    def __init__(self, config: LiveConfig, reload: Reload) -> None:
        self.config = config
        self.reload = reload
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self.config.routing_path

    def running(self) -> dict[str, Any]:
        """The routing file as it is on disk, and whether it changed since the last reload."""
        raw = self.path.read_bytes()[:MAX_CONFIG_BYTES]
        modified = self.path.stat().st_mtime
        return {"file": self.path.name, "text": raw.decode("utf-8", "replace"),
                "modified": modified, "loaded_at": self.config.loaded_at,
                "changed_since_reload": modified > self.config.loaded_at}

    def problems(self, raw: bytes) -> list[ConfigError]:
        """Every problem of the candidate (empty: valid). Blocking: run it in a thread."""
        try:
            doc = parse_yaml_doc(raw, Path(CANDIDATE))
        except ConfigError as e:
            return [e]
        policy, problems = doc_policy_problems(doc)
        directory = self.config.directory_path
        if policy is not None and directory.exists():
            try:
                load_legal_directory(directory, known_person=lambda pid: policy.person(pid) is not None)
            except ConfigError as e:
                problems.append(e)
        return problems

    async def check(self, raw: bytes) -> list[dict[str, Any]]:
        return [problem_json(e) for e in await asyncio.to_thread(self.problems, raw)]

    async def apply(self, raw: bytes) -> tuple[bool, dict[str, Any]]:
        """(applied, answer): refused with its problems when invalid; never half-applied."""
        async with self._lock:
            problems = await self.check(raw)
            if problems:
                return False, {"ok": False, "problems": problems}
            try:
                previous = await asyncio.to_thread(_replace_file, self.path, raw)
            except OSError as e:
                return False, {"ok": False, "error": f"cannot write {self.path.name}: {e.strerror or e}"}
            result = await self.reload()
            if result.get("ok"):
                return True, {"ok": True, "error": None}
            await asyncio.to_thread(_replace_file, self.path, previous)
            return False, {"ok": False, "error": str(result.get("error") or "reload refused")}


def _replace_file(path: Path, raw: bytes) -> bytes:
    """Write `raw` over `path` atomically (readers see the old file or the new, never half);
    returns the old content. A symlinked file (a mounted config) is written where it points."""
    target = path.resolve()
    previous = target.read_bytes()
    mode = stat.S_IMODE(target.stat().st_mode)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)
    return previous
