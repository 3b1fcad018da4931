"""`caseline dialplan reload`: check, install, ask Asterisk to reload, roll back on failure.

1. Read the project's `*.conf` dialplan files and check them (ops.dialplan_check); on any
   problem nothing is touched.
2. Install them into Asterisk's config folder atomically (temp file + rename, so Asterisk
   never reads a half-written file), keeping the previous contents in memory.
3. Ask Asterisk to reload `pbx_config.so` (what the CLI's `dialplan reload` does); retry
   while Asterisk answers that another reload is in progress.
4. If Asterisk is unreachable, refuses our credentials, or refuses the reload, put the
   previous files back: pbx_config only swaps the dialplan after a successful load, so
   the running dialplan is still the old one, and now the files agree with it again.

Why over ARI (`PUT /asterisk/modules/pbx_config.so`, wired in ari_app/main.py) and not AMI:
AMI's `Reload` needs the `system` or `config` write class, and either also allows
GetConfig (every config file, secrets included), and `system` allows ModuleLoad and
DialplanExtensionAdd (a `System()` extension reachable from `[inbound]`): the AMI secret was
as good as a shell. ARI's credentials already control every call and could always
reload (even load) modules, so reloading with them gives their holder nothing new, while the
AMI user keeps only `read = cdr` (docs/security.md).
This module sees the reload as one injected call (`ReloadModule`), so it needs no client.
"""
from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ari_app.ops.dialplan_check import MAX_FILE_BYTES, check_dialplan

log = logging.getLogger("caseline.ops.dialplan")

RELOAD_MODULE = "pbx_config.so"
MAX_FILES = 64


class ReloadError(Exception):
    """The reload did not happen (or may not have): str() is for ops staff, never a secret."""

    def __init__(self, reason: str, *, answer: str = "", busy: bool = False, maybe_done: bool = False) -> None:
        super().__init__(reason)
        self.answer = answer  # Asterisk's own words, when it answered
        self.busy = busy  # another reload is in progress: worth a retry
        self.maybe_done = maybe_done  # the request left and no answer came back


# Reloads the named module; returns what to report ("pbx_config.so reloaded"); raises ReloadError.
ReloadModule = Callable[[str], Awaitable[str]]

# One reload per process at a time (the CLI and the ops API share it); one lock per event
# loop, because an asyncio.Lock binds to the loop that first waits on it.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    error: str = ""  # why it failed, for ops staff (never a secret)
    message: str = ""  # Asterisk's own answer, when it answered
    problems: tuple[str, ...] = ()  # dialplan check findings ("file:line: what")
    installed: tuple[str, ...] = ()  # files written into the Asterisk folder (kept on success)
    restored: bool = False  # previous files were put back
    attempts: int = 0  # reload requests sent

    def summary(self) -> str:
        """What `caseline dialplan reload` prints."""
        if self.ok:
            return f"dialplan reloaded: {self.message} ({', '.join(self.installed)})"
        return "\n".join([f"dialplan NOT reloaded: {self.error}", *(f"  {p}" for p in self.problems)])


def read_dialplan_dir(folder: Path) -> dict[str, bytes]:
    """The folder's `*.conf` regular files (not following symlinks), bounded in size."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.glob("*.conf")):
        if path.is_symlink() or not path.is_file():
            continue
        if len(files) >= MAX_FILES:
            raise OSError(f"more than {MAX_FILES} dialplan files in {folder}")
        with path.open("rb") as f:
            files[path.name] = f.read(MAX_FILE_BYTES + 1)  # the checker reports oversize
    return files


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".caseline-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install(files: dict[str, bytes], install_dir: Path) -> dict[str, bytes | None]:
    """Write `files` into `install_dir`; return the previous contents (None: did not exist).

    On a failure half-way, what was already written is put back before the error propagates.
    """
    backup: dict[str, bytes | None] = {}
    try:
        for name, data in files.items():
            target = install_dir / name
            if target.is_symlink():
                raise OSError(f"{target} is a symlink: refusing to replace it")
            try:
                previous = target.read_bytes()
                mode = target.stat().st_mode & 0o777
            except FileNotFoundError:
                previous, mode = None, 0o644
            backup[name] = previous
            _write_atomic(target, data, mode)
    except BaseException:
        restore(backup, install_dir)
        raise
    return backup


def restore(backup: dict[str, bytes | None], install_dir: Path) -> None:
    """Put the previous contents back (and remove files that did not exist before)."""
    for name, previous in backup.items():
        target = install_dir / name
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            _write_atomic(target, previous, target.stat().st_mode & 0o777 if target.exists() else 0o644)


async def reload_dialplan(project_dialplan_dir: Path, install_dir: Path, reload_module: ReloadModule, *,
                          retries: int = 5, retry_delay_s: float = 0.5) -> ReloadResult:
    """Check, install and reload the dialplan; never raises for an expected failure."""
    lock = _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        return await _reload(Path(project_dialplan_dir), Path(install_dir), reload_module,
                             max(1, retries), retry_delay_s)


async def _reload(source: Path, install_dir: Path, reload_module: ReloadModule, retries: int,
                  retry_delay_s: float) -> ReloadResult:
    try:
        files = await asyncio.to_thread(read_dialplan_dir, source)
    except OSError as e:
        return ReloadResult(False, error=f"cannot read {source}: {e.strerror or e}")
    if not files:
        return ReloadResult(False, error=f"no *.conf dialplan files in {source}")
    problems = check_dialplan(files)
    if problems:
        return ReloadResult(False, error=f"dialplan check failed ({len(problems)} problem(s)); nothing installed",
                            problems=tuple(str(p) for p in problems))
    if not await asyncio.to_thread(install_dir.is_dir):
        return ReloadResult(False, error=f"{install_dir} is not a folder; nothing installed")

    try:
        backup = await asyncio.to_thread(install, files, install_dir)
    except OSError as e:
        return ReloadResult(False, error=f"cannot install into {install_dir}: {e.strerror or e}; nothing changed")
    names = tuple(sorted(files))

    attempts = 0
    try:
        while True:
            attempts += 1
            try:
                message = await reload_module(RELOAD_MODULE)
                break
            except ReloadError as e:
                if e.busy and attempts < retries:
                    log.info("Asterisk is busy reloading; retrying (%d/%d)", attempts, retries)
                    await asyncio.sleep(retry_delay_s * attempts)
                    continue
                raise
    except ReloadError as e:
        try:
            await asyncio.to_thread(restore, backup, install_dir)
        except OSError as restore_error:
            return ReloadResult(False, error=f"{e}; AND restoring the previous files failed: "
                                f"{restore_error.strerror or restore_error} (fix {install_dir} by hand)",
                                message=e.answer, installed=names, attempts=attempts)
        if e.maybe_done:
            state = "previous dialplan files restored; Asterisk may have loaded the new ones: reload again"
        else:
            state = "previous dialplan files restored, running dialplan unchanged"
        log.warning("dialplan reload failed: %s; %s", e, state)
        return ReloadResult(False, error=f"{e}; {state}", message=e.answer, restored=True, attempts=attempts)
    log.info("dialplan reloaded: %s (%s)", message, ", ".join(names))
    return ReloadResult(True, message=message, installed=names, attempts=attempts)
