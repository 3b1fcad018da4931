"""Start, stop and probe the lab's Asterisk (chroot, foreground process we background ourselves)."""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from . import paths, root


def cli(command: str, timeout: float = 15) -> str:
    """Run an Asterisk CLI command through the control socket and return its output.

    On timeout the whole process group goes (subprocess.run would kill `chroot` only and then
    wait for ever on the pipes its `asterisk -rx` child still holds: an overloaded Asterisk
    that stopped answering its CLI hung the bench that way)."""
    process = subprocess.Popen(["chroot", str(paths.ROOT), "asterisk", "-rx", command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return out


def pid() -> int | None:
    try:
        value = int(paths.PIDFILE.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(value, 0)
    except ProcessLookupError:
        return None
    return value


def ari_ready(timeout: float = 2) -> bool:
    password = root.lab_secrets()["CASELINE_ARI_PASSWORD"]
    token = base64.b64encode(f"caseline:{password}".encode()).decode()
    request = urllib.request.Request(f"{paths.ARI_URL}/ari/asterisk/info",
                                     headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start() -> None:
    """Start Asterisk detached from us (its own session); it outlives this process."""
    paths.LAB_HOME.mkdir(parents=True, exist_ok=True)
    # A shell backgrounds it so that no Popen object of ours outlives the call.
    script = 'setsid chroot "$1" asterisk -f -n -U root -G root </dev/null >>"$2" 2>&1 & echo $!'
    done = subprocess.run(["sh", "-c", script, "sh", str(paths.ROOT), str(paths.ASTERISK_OUT)],
                          capture_output=True, text=True, check=True)
    paths.PIDFILE.write_text(done.stdout.strip())


def wait_ready(deadline_s: float = 60) -> None:
    """Ready means ARI answers and Asterisk reports itself fully booted."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if pid() is None:
            tail = paths.ASTERISK_OUT.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Asterisk exited during start-up:\n{tail}")
        if ari_ready() and "fully booted" in cli("core waitfullybooted", timeout=10).lower():
            return
        time.sleep(0.2)
    raise RuntimeError(f"Asterisk not ready after {deadline_s} s (see {paths.ASTERISK_OUT})")


def stop(deadline_s: float = 20) -> None:
    running = pid()
    if running is None:
        return
    try:
        cli("core stop now", timeout=5)
    except subprocess.TimeoutExpired:
        pass
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and pid() is not None:
        time.sleep(0.1)
    if pid() is not None:
        os.killpg(running, signal.SIGKILL)
        while pid() is not None:
            time.sleep(0.05)
    paths.PIDFILE.unlink(missing_ok=True)


def up() -> None:
    """Idempotent: build the root once, install config, (re)start Asterisk only when needed."""
    root.ensure_root()
    digest = root.install_config()
    previous = paths.DIGEST.read_text() if paths.DIGEST.exists() else ""
    if pid() is not None and digest != previous:
        root.log("config changed: restarting Asterisk")
        stop()
    if pid() is None:
        root.log("starting Asterisk")
        start()
    wait_ready()
    paths.DIGEST.write_text(digest)
    version = cli("core show version").strip()
    root.log(f"ready: {version}")
