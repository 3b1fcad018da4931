"""Helpers for the docker setup's tests (tests/docker).

The file checks read plain files. The engine test (test_stack.py) runs the kit for real: a
private dockerd (Engine), base images made locally from the lab's cached Debian sid root
(local_base), the compose stack on a loopback address of its own (STACK_IP).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from labkit import paths as lab_paths

from tests.support.eventually import eventually

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


# --- the kit for real: a private engine, local base images, the stack (tests/docker/test_stack.py)

DOCKER_HOME = lab_paths.LAB_HOME / "docker"  # the engine's data root: images stay between runs
STACK_IP = "127.0.5.1"  # the whole stack, beside the lab's 127.0.0.1 and 127.0.1.x
STACK_RTP_PORTS = "26000-26999"  # the lab's Asterisk takes 20000-23999 on every address
# The base images are made from the lab's cached Debian sid root (Asterisk 22 installed), as
# `tar -C ROOT -c . | docker import`, without what the lab keeps there of its own: its
# rendered config (secrets), database, logs, voicemail and apt cache. Debian's sample
# configs, which the lab puts aside, go back where the package put them.
ROOT_EXCLUDES = (
    "./proc/*", "./sys/*", "./dev/*", "./run/*", "./tmp/*", "./root/*", "./.caseline-root-ready",
    "./etc/asterisk", "./var/lib/asterisk/astdb.sqlite3", "./var/log/asterisk/*",
    "./var/spool/asterisk/voicemail/*", "./var/cache/apt/*", "./var/lib/apt/lists/*",
    "./usr/share/doc/*", "./usr/share/man/*", "./usr/share/locale/*", "./usr/share/info/*",
)
ROOT_TRANSFORM = r"flags=r;s,^\./etc/asterisk\.debian,./etc/asterisk,"
# One local base stands in for the public images: debian:sid-slim with Asterisk
# (docker/asterisk), python:3.11-slim (docker/caseline) and redis:7. The host's extra CA
# certificates go in too, for pip behind a TLS-intercepting proxy; no service starts in a build.
BASE_DOCKERFILE = """\
FROM {root}
COPY ca/ /usr/local/share/ca-certificates/
RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \\
 && apt-get -o Acquire::Check-Valid-Until=false update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-venv redis-server ca-certificates \\
 && update-ca-certificates \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
"""
HOST_CA = Path("/usr/local/share/ca-certificates")


class DockerError(RuntimeError):
    """A docker command failed."""


@dataclass(frozen=True)
class Done:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def checked(self) -> Done:
        if self.returncode != 0:
            raise DockerError(f"{shlex.join(self.argv)} exited {self.returncode}:\n"
                              f"{self.stderr[-3000:] or self.stdout[-3000:]}")
        return self


def engine_missing() -> list[str]:
    """What the engine test needs and this machine lacks (scripts/setup-env installs it)."""
    missing = []
    if shutil.which("dockerd") is None:
        missing.append("dockerd (Debian's docker.io)")
    if shutil.which("docker") is None:
        missing.append("the docker client")
    elif subprocess.run(["docker", "compose", "version"], capture_output=True, check=False,
                        timeout=30).returncode != 0:
        missing.append("the compose plugin (~/.docker/cli-plugins/docker-compose)")
    if shutil.which("baresip") is None:
        missing.append("baresip (Debian's baresip-core)")
    if not lab_paths.READY_MARK.exists():
        missing.append(f"the lab's Debian sid root ({lab_paths.ROOT})")
    return missing


def _client_env(socket_path: Path) -> dict[str, str]:
    """The docker client's environment: this engine, and no CASELINE_/COMPOSE_ value of the
    caller's shell, which would win over the kit's .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASELINE_", "COMPOSE_"))
           and k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
    return {**env, "DOCKER_HOST": f"unix://{socket_path}"}


class Engine:
    """A dockerd of the test's own: a private socket, no bridge and no iptables (containers
    use the host's network), its data root under ~/.cache/caseline/docker (images are reused
    by the next run on this machine); stop() ends it and everything it started."""

    def __init__(self, data_root: Path = DOCKER_HOME) -> None:
        self.data_root = data_root
        self.run_dir = Path(tempfile.mkdtemp(prefix="caseline-dockerd-"))  # a short socket path
        self.socket = self.run_dir / "docker.sock"
        self.log = data_root.with_name("dockerd.log")
        self.pid_record = data_root.with_name("dockerd.pid")  # survives the run dir
        self.env = _client_env(self.socket)
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: Any = None

    async def start(self) -> Engine:
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._lock = self.data_root.with_name("docker.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DockerError(f"another run's engine uses {self.data_root}") from None
        await self._end_orphan()
        self._process = self._spawn()
        self.pid_record.write_text(f"{self._process.pid}\n")
        await eventually(self._answers, timeout=60, interval=0.2, message="dockerd answers on its socket")
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as log:
            return subprocess.Popen(
                ["dockerd", "--iptables=false", "--bridge=none", "--data-root", str(self.data_root),
                 "--exec-root", str(self.run_dir / "exec"), "--pidfile", str(self.run_dir / "dockerd.pid"),
                 "-H", f"unix://{self.socket}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    async def _end_orphan(self) -> None:
        """The dockerd of a run that was killed before it could stop it (it runs in a session
        of its own): ended by its recorded pid, if that process is still a dockerd on our
        data root. It would hold the data root, and start the old containers again."""
        try:
            pid = int(self.pid_record.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if Path(cmdline[0].decode(errors="replace")).name != "dockerd" or str(self.data_root).encode() not in cmdline:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)

        def gone() -> bool:
            return not Path(f"/proc/{pid}").exists()

        try:
            await eventually(gone, timeout=60, interval=0.2, message=f"the orphaned dockerd {pid} ends")
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    async def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise DockerError(f"dockerd exited {self._process.returncode}: {self.log_tail()}")
        return (await self.run("version", "--format", "{{.Server.Version}}", timeout=10)).returncode == 0

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    async def run(self, *args: str, timeout: float = 120, stdin: bytes | None = None,
                  cwd: Path = PROJECT) -> Done:
        """`docker ARGS` against this engine (check the result with .checked())."""
        return await run_command(["docker", *args], env=self.env, timeout=timeout, stdin=stdin, cwd=cwd)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # dockerd stops its containers and its containerd
            try:
                await asyncio.to_thread(process.wait, 60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # dockerd and its containerd
                await asyncio.to_thread(process.wait)
        if process is not None:
            self.pid_record.unlink(missing_ok=True)
        # dockerd leaves its network namespace's mount (exec-root/netns/default) behind,
        # and a killed one its containers' file systems
        for target in mounts_under(self.run_dir, self.data_root):
            await run_command(["umount", target], env=dict(os.environ), timeout=30)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def mounts_under(*folders: Path) -> list[str]:
    """Mount points inside `folders`, deepest first."""
    prefixes = tuple(f"{folder}/" for folder in folders)
    with open("/proc/self/mounts") as mounts:
        targets = [line.split()[1] for line in mounts if len(line.split()) > 1]
    return sorted((t for t in targets if t.startswith(prefixes)), key=len, reverse=True)


async def run_command(argv: list[str], *, env: dict[str, str], timeout: float, stdin: bytes | None = None,
                      cwd: Path = PROJECT) -> Done:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise DockerError(f"{shlex.join(argv)}: no end within {timeout:g} s") from None
    return Done(tuple(argv), process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


def _base_key() -> str:
    """Changes when the recipe, the lab's root or the host's extra CAs do."""
    digest = hashlib.sha256()
    for part in (BASE_DOCKERFILE, ROOT_TRANSFORM, *ROOT_EXCLUDES, str(lab_paths.READY_MARK.stat().st_mtime_ns)):
        digest.update(part.encode() + b"\0")
    for cert in sorted(HOST_CA.rglob("*.crt")) if HOST_CA.is_dir() else []:
        digest.update(cert.name.encode() + b"\0" + cert.read_bytes())
    return digest.hexdigest()[:12]


async def local_base(engine: Engine, workdir: Path) -> str:
    """The local base image's name, made once per machine (an import and one apt run)."""
    key = _base_key()
    base, root_image = f"caseline-local/base:{key}", f"caseline-local/sid-root:{key}"
    if (await engine.run("image", "inspect", base)).returncode == 0:
        return base
    # Read-only, while the lab may run from that root: a file it changes as tar reads it
    # makes tar exit 1 (0: nothing changed), which is fine for files the image does not need.
    tar = ["tar", "-C", str(lab_paths.ROOT), *(f"--exclude={p}" for p in ROOT_EXCLUDES),
           f"--transform={ROOT_TRANSFORM}", "--warning=no-file-changed", "--warning=no-file-ignored", "-c", "."]
    imported = await run_command(
        ["bash", "-o", "pipefail", "-c",
         f"{{ {shlex.join(tar)} || [ $? = 1 ]; }} | docker import - {shlex.quote(root_image)}"],
        env=engine.env, timeout=300)
    imported.checked()
    context = workdir / "base-context"
    (context / "ca").mkdir(parents=True)
    (context / "ca" / "README").write_text("the host's extra CA certificates\n")
    for cert in sorted(HOST_CA.rglob("*.crt")) if HOST_CA.is_dir() else []:
        shutil.copy(cert, context / "ca" / cert.name)
    (context / "Dockerfile").write_text(BASE_DOCKERFILE.format(root=root_image))
    built = await run_command(["docker", "build", "--network", "host", "-t", base, str(context)],
                              env={**engine.env, "DOCKER_BUILDKIT": "0"}, timeout=600)
    built.checked()
    listed = await engine.run("images", "--format", "{{.Repository}}:{{.Tag}}",
                              "--filter", "reference=caseline-local/*")
    stale = [name for name in listed.stdout.split() if name.rsplit(":", 1)[-1] != key]
    if stale:
        await engine.run("rmi", *stale)  # an older recipe's or root's: not needed any more
    return base


OVERRIDE = """\
# tests/docker: the kit's compose.yml, with bases made locally and a config copy to edit
services:
  asterisk:
    build:
      args: {{BASE: "{base}"}}
  caseline:
    build:
      args: {{BASE: "{base}"}}
    volumes:
      - {config}:/config:ro
  redis:
    image: "{base}"
"""


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#"))


@dataclass
class Stack:
    """docker/compose.yml on an Engine, as a user runs it, with the kit's own `.env` (from
    `sh new-env`, plus the addresses) and a copy of config/ (routing.yaml is edited live)."""

    engine: Engine
    kit: Path
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for the report

    @property
    def env(self) -> dict[str, str]:
        return read_env(self.kit / ".env")

    @property
    def config(self) -> Path:
        return self.kit / "config"

    def argv(self, *args: str) -> list[str]:
        return ["compose", "-f", str(COMPOSE), "-f", str(self.kit / "compose.test.yml"),
                "--env-file", str(self.kit / ".env"), *args]

    async def compose(self, *args: str, timeout: float = 120) -> Done:
        """`docker compose ARGS` in docker/, checked."""
        return (await self.engine.run(*self.argv(*args), timeout=timeout, cwd=DOCKER)).checked()

    async def caseline(self, *args: str) -> str:
        """`docker compose exec caseline caseline --config /config ARGS`: its output."""
        done = await self.compose("exec", "-T", "caseline", "caseline", "--config", "/config", *args)
        return done.stdout

    async def asterisk_cli(self, command: str) -> str:
        return (await self.compose("exec", "-T", "asterisk", "asterisk", "-rx", command)).stdout

    async def ops(self, path: str) -> Any:
        """GET on the ops API, with the kit's token: JSON, or text for /metrics."""
        headers = {"Authorization": f"Bearer {self.env['CASELINE_OPS_TOKEN']}"}
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
                    http.get(f"http://{STACK_IP}:8090{path}", headers=headers) as answer):
            assert answer.status == 200, f"GET {path}: {answer.status} {await answer.text()}"
            if answer.content_type == "application/json":
                return await answer.json()
            return await answer.text()

    async def routes_new_calls(self) -> None:
        """Admission control is not shedding, and its dialplan gate is open (a busy machine's
        loop lag right after start can close it for a few seconds: calls go to the queue)."""
        shedding = re.findall(r"^caseline_admission_shedding\{[^}]*\} (\S+)$", await self.ops("/metrics"), re.MULTILINE)
        assert shedding and all(float(v) == 0 for v in shedding), f"admission control sheds: {shedding}"
        gate = re.search(r"^\s*CASELINE_ADMISSION=(.*)$", await self.asterisk_cli("dialplan show globals"), re.MULTILINE)
        assert gate and gate.group(1).strip() == "", f"the dialplan gate is closed: {gate and gate.group(0)}"

    async def services(self) -> dict[str, str]:
        """service -> its state as `docker compose ps` shows it ("healthy", "running", ...)."""
        done = await self.compose("ps", "--all", "--format", "json")
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return {row["Service"]: row.get("Health") or row["State"] for row in rows}

    def change_routing(self, **changes: object) -> None:
        """Edit the mounted routing.yaml (dotted keys with "__"), as ops staff would."""
        path = self.config / "routing.yaml"
        routing = yaml.safe_load(path.read_text())
        for dotted, value in changes.items():
            node = routing
            *parents, last = dotted.split("__")
            for key in parents:
                node = node[key]
            node[last] = value
        path.write_text(yaml.safe_dump(routing, allow_unicode=True, sort_keys=False))

    async def down(self) -> None:
        await self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10")

    async def leftovers(self) -> list[str]:
        """Containers, volumes and networks of ours the engine still has (none after down)."""
        left = []
        for what, listing in (("container", ["ps", "--all", "--quiet"]), ("volume", ["volume", "ls", "--quiet"]),
                              ("network", ["network", "ls", "--format", "{{.Name}}"])):
            names = (await self.engine.run(*listing)).checked().stdout.split()
            left += [f"{what} {name}" for name in names if name not in ("host", "none", "bridge")]
        return left


async def prepare_stack(engine: Engine, workdir: Path, base: str) -> Stack:
    """The kit's folder: `sh new-env` (fresh secrets, as a user does), the addresses of
    STACK_IP, a copy of config/, and the override that names the local base."""
    kit = workdir / "kit"
    kit.mkdir()
    shutil.copy(DOCKER / "new-env", kit / "new-env")
    shutil.copy(ENV_EXAMPLE, kit / ".env.example")
    done = await run_command(["sh", str(kit / "new-env")], env=dict(os.environ), timeout=30)
    assert done.returncode == 0, done.stderr
    with (kit / ".env").open("a") as env:
        env.write(f"CASELINE_BIND_IP={STACK_IP}\nCASELINE_SOFTPHONE_IP={STACK_IP}\n"
                  f"CASELINE_RTP_PORTS={STACK_RTP_PORTS}\n")
    shutil.copytree(PROJECT / "config", kit / "config")
    (kit / "compose.test.yml").write_text(OVERRIDE.format(base=base, config=kit / "config"))
    return Stack(engine, kit)
