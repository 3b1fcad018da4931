"""Two Asterisk nodes on this machine for the scale-out lab (issue 23 item 4).

Both run from the lab's Asterisk root (the same binaries and sounds) with a config folder,
run, spool, log and astdb folder of their own: `etc/asterisk-node-<name>` and so on. Each is
the project's own config/asterisk and dialplan, as `scripts/lab` installs them, with only
what makes it a node changed:
- it listens on its own loopback address (`127.0.2.1`, `127.0.2.2`) for SIP, HTTP (ARI) and
  AMI, and takes RTP ports of its own range;
- a PJSIP trunk to the other node (`node-<other>`, context `caseline-internode`);
- a phone "registered" on one node only: its AOR keeps its contact on the node it belongs to
  and has none on the other (the shipped phones are static contacts, identified by address).

The main lab (127.0.0.1) is left alone: both can run at once.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from . import paths, root

NODE_ADDRESSES = {"a": "127.0.2.1", "b": "127.0.2.2"}
RTP_RANGES = {"a": (30000, 31999), "b": (32000, 33999)}
DIRECTORIES = ("etc", "run", "spool", "log", "lib", "cache")


@dataclass(frozen=True)
class Node:
    name: str  # "a" or "b"
    phones: tuple[str, ...] = ()  # the shipped phones whose contact lives on this node

    @property
    def ip(self) -> str:
        return NODE_ADDRESSES[self.name]

    @property
    def other(self) -> str:
        return next(n for n in NODE_ADDRESSES if n != self.name)

    @property
    def trunk(self) -> str:
        """This node's trunk endpoint to the other node."""
        return f"node-{self.other}"

    @property
    def ari_url(self) -> str:
        return f"http://{self.ip}:8088"

    def folder(self, kind: str) -> str:
        """A folder of this node inside the root: /etc/asterisk-node-a, /var/run/asterisk-node-a..."""
        base = {"etc": "/etc", "run": "/var/run", "spool": "/var/spool", "log": "/var/log",
                "lib": "/var/lib", "cache": "/var/cache"}[kind]
        return f"{base}/asterisk-node-{self.name}"

    @property
    def config(self) -> str:
        return self.folder("etc") + "/asterisk.conf"

    @property
    def pidfile(self) -> Path:
        return paths.LAB_HOME / f"node-{self.name}.pid"

    @property
    def out(self) -> Path:
        return paths.LAB_HOME / f"node-{self.name}.out"

    # --- config ---------------------------------------------------------------------

    def install(self, all_phones: tuple[str, ...]) -> None:
        """Render the project's config for this node into its etc folder."""
        for kind in DIRECTORIES:
            (paths.ROOT / self.folder(kind).lstrip("/")).mkdir(parents=True, exist_ok=True)
        etc = paths.ROOT / self.folder("etc").lstrip("/")
        for stale in etc.glob("*.conf"):
            stale.unlink()
        values = root.lab_secrets()
        for source in root.config_sources():
            text = root.render(source, values)
            (etc / source.name).write_text(self.adapt(source.name, text, all_phones))
        (etc / "asterisk.conf").write_text(self.asterisk_conf())

    def adapt(self, name: str, text: str, all_phones: tuple[str, ...]) -> str:
        if name == "pjsip.conf":
            text = text.replace("bind = 127.0.0.1:5060", f"bind = {self.ip}:5060")
            elsewhere = set(all_phones) - set(self.phones)
            text = drop_contacts(text, elsewhere) + self.trunk_conf()
        elif name in ("http.conf", "manager.conf"):
            text = re.sub(r"(?m)^bindaddr = 127\.0\.0\.1$", f"bindaddr = {self.ip}", text)
        elif name == "rtp.conf":
            start, end = RTP_RANGES[self.name]
            text = re.sub(r"(?m)^rtpstart = \d+$", f"rtpstart = {start}", text)
            text = re.sub(r"(?m)^rtpend = \d+$", f"rtpend = {end}", text)
        return text

    def trunk_conf(self) -> str:
        other_ip = NODE_ADDRESSES[self.other]
        return (f"\n; the trunk to node {self.other} (labkit/nodes.py): a person registered there is\n"
                f"; rung as PJSIP/<endpoint>@{self.trunk}; its calls to us enter caseline-internode\n"
                f"[{self.trunk}](endpoint-common)\ncontext = caseline-internode\naors = {self.trunk}\n"
                f"send_pai = yes\ntrust_id_inbound = yes\ntrust_id_outbound = yes\n\n"
                f"[{self.trunk}]\ntype = aor\ncontact = sip:{other_ip}:5060\n\n"
                f"[{self.trunk}-identify]\ntype = identify\nendpoint = {self.trunk}\nmatch = {other_ip}\n")

    def asterisk_conf(self) -> str:
        dirs = {"astetcdir": self.folder("etc"), "astrundir": self.folder("run"),
                "astspooldir": self.folder("spool"), "astlogdir": self.folder("log"),
                "astdbdir": self.folder("lib"), "astcachedir": self.folder("cache"),
                "astvarlibdir": "/var/lib/asterisk", "astkeydir": "/var/lib/asterisk",
                "astdatadir": "/usr/share/asterisk", "astagidir": "/usr/share/asterisk/agi-bin",
                "astmoddir": module_dir(), "astsbindir": "/usr/sbin"}
        lines = ["[directories]", *(f"{k} => {v}" for k, v in dirs.items()),
                 "[options]", f"systemname = node-{self.name}", "documentation_language = en_US"]
        return "\n".join(lines) + "\n"

    # --- process --------------------------------------------------------------------

    def cli(self, command: str, timeout: float = 15) -> str:
        process = subprocess.Popen(["chroot", str(paths.ROOT), "asterisk", "-C", self.config, "-rx", command],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        return out

    def pid(self) -> int | None:
        try:
            value = int(self.pidfile.read_text())
            os.kill(value, 0)
        except (OSError, ValueError):
            return None
        return value

    def start(self) -> None:
        script = 'setsid chroot "$1" asterisk -C "$2" -f -n -U root -G root </dev/null >>"$3" 2>&1 & echo $!'
        done = subprocess.run(["sh", "-c", script, "sh", str(paths.ROOT), self.config, str(self.out)],
                              capture_output=True, text=True, check=True)
        self.pidfile.write_text(done.stdout.strip())

    def ari_ready(self) -> bool:
        password = root.lab_secrets()["CASELINE_ARI_PASSWORD"]
        request = urllib.request.Request(
            f"{self.ari_url}/ari/asterisk/info",
            headers={"Authorization": "Basic " + b64encode(f"caseline:{password}".encode()).decode()})
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, deadline_s: float = 60) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.pid() is None:
                raise RuntimeError(f"node {self.name} exited during start-up:\n"
                                   f"{self.out.read_text(errors='replace')[-2000:]}")
            if self.ari_ready() and "fully booted" in self.cli("core waitfullybooted", timeout=10).lower():
                return
            time.sleep(0.2)
        raise RuntimeError(f"node {self.name} not ready after {deadline_s} s (see {self.out})")

    def stop(self, deadline_s: float = 20) -> None:
        running = self.pid()
        if running is None:
            return
        try:
            self.cli("core stop now", timeout=5)
        except subprocess.TimeoutExpired:
            pass
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and self.pid() is not None:
            time.sleep(0.1)
        if self.pid() is not None:
            os.killpg(running, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)


def drop_contacts(pjsip: str, phones: set[str]) -> str:
    """pjsip.conf without the `contact =` lines of these phones' AORs (not registered here).

    >>> text = "[mgr1]\\ntype = aor\\ncontact = sip:mgr1@127.0.1.1:5201\\n[mgr2]\\ntype = aor\\ncontact = sip:x\\n"
    >>> drop_contacts(text, {"mgr1"})
    '[mgr1]\\ntype = aor\\n[mgr2]\\ntype = aor\\ncontact = sip:x\\n'
    """
    out, section = [], ""
    for line in pjsip.splitlines(keepends=True):
        found = re.match(r"\[([^\]]+)\]", line)
        if found:
            section = found.group(1)
        elif section in phones and line.replace(" ", "").startswith("contact="):
            continue
        out.append(line)
    return "".join(out)


def module_dir() -> str:
    """Where the root's Asterisk modules are (Debian's multiarch path)."""
    found = sorted((paths.ROOT / "usr/lib").glob("*/asterisk/modules"))
    if not found:
        raise RuntimeError("no Asterisk modules in the lab root (run scripts/lab up)")
    return "/" + str(found[0].relative_to(paths.ROOT))


def start_nodes(phones_of: dict[str, tuple[str, ...]], all_phones: tuple[str, ...]) -> list[Node]:
    """Both nodes, each with its phones, configured and booted (a running one is restarted)."""
    root.ensure_root()
    nodes = [Node(name, phones_of.get(name, ())) for name in NODE_ADDRESSES]
    for node in nodes:
        node.stop()
        node.install(all_phones)
        node.start()
    for node in nodes:
        node.wait_ready()
    return nodes
