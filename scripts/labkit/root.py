"""Build the Debian sid root with Asterisk 22 once; install the project's config into it."""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from . import paths

HOST_PACKAGES = {"debootstrap": "debootstrap", "sipp": "sip-tester", "redis-server": "redis-server",
                 "tcpdump": "tcpdump"}  # tcpdump: post-dial delay on the wire (bench/call_rate.py)
ROOT_PACKAGES = "asterisk,asterisk-modules,asterisk-core-sounds-en,asterisk-moh-opsound-wav"
MIRROR = os.environ.get("CASELINE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Debian's asterisk user owns these; root here lacks CAP_DAC_OVERRIDE, so root must own them.
OWNED_DIRS = ("etc/asterisk", "var/lib/asterisk", "var/spool/asterisk", "var/log/asterisk",
              "var/run/asterisk", "usr/share/asterisk", "var/cache/asterisk")
SECRET_NAMES = ("CASELINE_ARI_PASSWORD", "CASELINE_AMI_SECRET", "CASELINE_OPS_TOKEN",
                "CASELINE_PHONE_PASSWORD", "CASELINE_VOICEMAIL_PIN")


def log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def ensure_host_packages() -> None:
    missing = [pkg for binary, pkg in HOST_PACKAGES.items() if shutil.which(binary) is None
               and not Path("/usr/sbin", binary).exists()]
    if not missing:
        return
    log(f"installing from Debian: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def ensure_root() -> None:
    """debootstrap sid + Asterisk once (about a minute); later calls reuse the cache."""
    if paths.READY_MARK.exists():
        return
    ensure_host_packages()
    paths.LAB_HOME.mkdir(parents=True, exist_ok=True)
    building = paths.ROOT.with_name(paths.ROOT.name + ".building")
    if building.exists():
        shutil.rmtree(building)
    log(f"building the Asterisk root in {paths.ROOT} (once; about a minute)")
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    subprocess.run([debootstrap, "--variant=minbase", f"--include={ROOT_PACKAGES}", "sid",
                    str(building), MIRROR], check=True, stdout=subprocess.DEVNULL)
    for rel in OWNED_DIRS:
        target = building / rel
        if target.exists():
            subprocess.run(["chown", "-R", "root:root", str(target)], check=True)
    # Keep Debian's sample configs aside: the lab runs on the project's files only.
    shutil.move(building / "etc/asterisk", building / "etc/asterisk.debian")
    (building / "etc/asterisk").mkdir()
    if paths.ROOT.exists():
        shutil.rmtree(paths.ROOT)
    building.rename(paths.ROOT)
    paths.READY_MARK.write_text("ok\n")
    log("Asterisk root ready")


def lab_secrets() -> dict[str, str]:
    """Passwords for the lab: from the environment, else generated once into an untracked file."""
    stored: dict[str, str] = {}
    if paths.SECRETS.exists():
        for line in paths.SECRETS.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                stored[k.strip()] = v.strip()
    changed = False
    for name in SECRET_NAMES:
        if name not in stored:
            stored[name] = (str(secrets.randbelow(10**6)).zfill(6) if name.endswith("_PIN")
                            else secrets.token_urlsafe(18))
            changed = True
    if changed:
        paths.LAB_HOME.mkdir(parents=True, exist_ok=True)
        fd = os.open(paths.SECRETS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# Caseline lab secrets, generated; not part of the repository\n")
            f.writelines(f"{k}={v}\n" for k, v in sorted(stored.items()))
    return {name: os.environ.get(name) or stored[name] for name in SECRET_NAMES}


def placeholders(values: dict[str, str]) -> dict[str, str]:
    """Shipped files carry CHANGE_ME_<NAME> placeholders; the lab fills them in."""
    return {f"CHANGE_ME_{name.removeprefix('CASELINE_')}": value for name, value in values.items()}


def config_sources() -> list[Path]:
    files: list[Path] = []
    for folder in paths.CONFIG_DIRS:
        files.extend(sorted(folder.glob("*.conf")))
    return files


def render(source: Path, values: dict[str, str]) -> str:
    text = source.read_text()
    for placeholder, value in placeholders(values).items():
        text = text.replace(placeholder, value)
    return text


def install_config(etc: Path | None = None) -> str:
    """Write the project's config into the root's etc/asterisk; return a digest of what was written."""
    etc = etc or paths.ROOT / "etc/asterisk"
    values = lab_secrets()
    rendered = {src.name: render(src, values) for src in config_sources()}
    for stale in etc.glob("*.conf"):
        if stale.name not in rendered and stale.name != "asterisk.conf":
            stale.unlink()
    shutil.copy(paths.ROOT / "etc/asterisk.debian/asterisk.conf", etc / "asterisk.conf")
    digest = hashlib.sha256()
    for name, text in sorted(rendered.items()):
        (etc / name).write_text(text)
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    hosts = Path("/etc/hosts")
    if hosts.exists():
        shutil.copy(hosts, paths.ROOT / "etc/hosts")
    return digest.hexdigest()
