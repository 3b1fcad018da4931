"""docker/compose.yml and its images agree with the repository and with the lab.

No Docker engine is needed: the files are read and compared with what the lab really runs
(scripts/labkit, called with its side effects stubbed). `docker compose config` runs only
where the compose client exists (never guaranteed, in CI either: skipped there too).
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from labkit import asterisk as lab_asterisk
from labkit import caseline_process, paths, root

from ari_app.cli import parser as caseline_parser

from tests.support.docker import (
    COMPOSE,
    DOCKER,
    ENV_EXAMPLE,
    OVERLAY,
    PROJECT,
    bind_mounts,
    env_example,
    load_compose,
)

SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|PIN|WEBHOOK", re.IGNORECASE)
IN_IMAGE = Path("/opt/caseline")  # where render.py expects the project's files


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]


# --- what compose points at exists ----------------------------------------------------------

def test_every_mounted_file_and_build_input_exists(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for source, _, mode in bind_mounts(svc):
            assert source.exists(), f"{name}: mounts {source}, which is not in the repository"
            assert mode == "ro", f"{name}: {source} must be mounted read-only"
        build = svc.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context.is_dir(), f"{name}: build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: Dockerfile"


def test_the_services_and_the_crm_profile(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"asterisk", "redis", "caseline", "crm"}
    assert service(compose, "redis")["image"].startswith("redis:")
    assert service(compose, "crm")["profiles"] == ["crm"]
    assert all("profiles" not in service(compose, s) for s in ("asterisk", "redis", "caseline"))
    # One network namespace, like the lab's loopback: the dialplan calls agi://127.0.0.1:4573.
    assert all(svc["network_mode"] == "host" for svc in compose["services"].values())
    assert all("ports" not in svc for svc in compose["services"].values())


# --- the Asterisk container: the lab's config, packages and command ---------------------------

def test_asterisk_mounts_the_lab_config_folders_where_render_finds_them(compose: dict[str, Any]) -> None:
    asterisk = service(compose, "asterisk")
    mounts = bind_mounts(asterisk)
    mounted_dirs = {source for source, _, _ in mounts if source.is_dir()}
    assert set(paths.CONFIG_DIRS) <= mounted_dirs, "config/asterisk and dialplan, the lab's folders"
    assert PROJECT / "scripts" / "labkit" in mounted_dirs, "the lab's renderer"
    for source, target, _ in mounts:
        # render.py (and labkit.paths) locate everything relative to the project root.
        assert Path(target) == IN_IMAGE / source.relative_to(PROJECT), f"{source} -> {target}"
    script = Path(asterisk["entrypoint"][-1])
    assert asterisk["entrypoint"][0] == "python3"
    assert script in {Path(t) for _, t, _ in mounts}
    assert IN_IMAGE / OVERLAY.relative_to(PROJECT) in {Path(t) for _, t, _ in mounts}


def test_no_conf_file_in_docker_copies_a_lab_file() -> None:
    """The docker setup adds an overlay; it never carries its own copy of a shipped file."""
    shipped = {p.name for folder in paths.CONFIG_DIRS for p in folder.glob("*.conf")}
    ours = {p.name: p for p in DOCKER.rglob("*.conf")}
    assert set(ours) == {OVERLAY.name}, "the one documented overlay (docker/README.md)"
    assert not set(ours) & shipped
    # Were the overlay in config/asterisk, the lab would load the softphone accounts too.
    assert OVERLAY.name not in {p.name for p in root.config_sources()}


def lab_asterisk_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The command line labkit.asterisk.start() runs, captured instead of run."""
    scripts: list[str] = []

    def run(argv: list[str], **_: object) -> SimpleNamespace:
        scripts.append(argv[2])  # ["sh", "-c", SCRIPT, ...]
        return SimpleNamespace(stdout="0\n", returncode=0)

    monkeypatch.setattr(lab_asterisk, "subprocess", SimpleNamespace(run=run))
    monkeypatch.setattr(paths, "LAB_HOME", tmp_path)
    monkeypatch.setattr(paths, "PIDFILE", tmp_path / "asterisk.pid")
    lab_asterisk.start()
    words = shlex.split(scripts[0])
    start = words.index("asterisk")
    end = next(i for i, w in enumerate(words) if i > start and w[0] in "<>&|;")
    return words[start:end]


def test_asterisk_runs_with_the_labs_flags_as_a_non_root_user(compose: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """The lab's command, except its `-U root -G root` (the lab's chroot runs as root): the
    container runs as the image's `asterisk` user, which owns what Asterisk writes."""
    lab = lab_asterisk_argv(monkeypatch, tmp_path)
    assert lab[:3] == ["asterisk", "-f", "-n"]
    i = lab.index("-U")
    lab_without_user = lab[:i] + lab[i + 2:]
    j = lab_without_user.index("-G")
    lab_without_user = lab_without_user[:j] + lab_without_user[j + 2:]
    asterisk = service(compose, "asterisk")
    assert asterisk["command"] == lab_without_user
    assert not {"-U", "-G"} & set(asterisk["command"]) and asterisk.get("user", "asterisk") != "root"
    assert asterisk["cap_drop"] == ["ALL"] and "no-new-privileges:true" in asterisk["security_opt"]
    dockerfile = (DOCKER / "asterisk" / "Dockerfile").read_text()
    assert re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)[-1] == "asterisk", "not root"
    owned = re.search(r"chown -R asterisk:asterisk ([^&]+)", dockerfile)
    assert owned, "the asterisk user owns what Asterisk and the entrypoint write"
    folders = set(owned.group(1).replace("\\", " ").split())
    assert {"/etc/asterisk", "/run/asterisk", "/var/log/asterisk", "/var/lib/asterisk",
            "/var/spool/asterisk"} <= folders


def test_asterisk_image_has_the_labs_packages() -> None:
    dockerfile = (DOCKER / "asterisk" / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:sid-slim$", dockerfile, re.MULTILINE), "the lab's Debian: sid"
    install = re.search(r"apt-get install ([^&]+)", dockerfile)
    assert install
    packages = {w for w in install.group(1).replace("\\", " ").split() if not w.startswith("-")}
    assert packages == {*root.ROOT_PACKAGES.split(","), "python3"}


# --- the Caseline container: the lab's command, the package from pyproject.toml ---------------

def lab_caseline_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The command line the lab's CaselineProcess starts, captured instead of run."""
    started: list[list[str]] = []

    def popen(argv: list[str], **_: object) -> SimpleNamespace:
        started.append(argv)
        return SimpleNamespace(pid=0, poll=lambda: 0)

    monkeypatch.setattr(caseline_process, "subprocess", SimpleNamespace(Popen=popen, STDOUT=-2))
    monkeypatch.setattr(caseline_process, "lab_env", dict)
    caseline_process.CaselineProcess(tmp_path, [], tmp_path / "config")
    return started[0]


def test_caseline_runs_what_the_lab_runs(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    lab = lab_caseline_argv(monkeypatch, tmp_path)
    assert lab[1:3] == ["-m", "ari_app.cli"]
    command = service(compose, "caseline")["command"]
    scripts = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[command[0]] == "ari_app.cli:main", "the console script is the lab's module"
    lab_args = lab[3:]
    lab_args[lab_args.index("--config") + 1] = "/config"
    assert command[1:] == lab_args == ["--config", "/config", "run"]
    args = caseline_parser().parse_args(command[1:])
    assert (args.command, str(args.config), args.greet) == ("run", "/config", False)
    mounts = {target: source for source, target, _ in bind_mounts(service(compose, "caseline"))}
    assert mounts["/config"] == PROJECT / "config"


def test_caseline_image_installs_the_package_from_pyproject(compose: dict[str, Any]) -> None:
    dockerfile = (DOCKER / "caseline" / "Dockerfile").read_text()
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    copied = {w for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE) for w in line.split()[:-1]}
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert {"pyproject.toml", project["project"]["readme"], *packages} <= copied
    assert re.search(r"^RUN pip install \. ", dockerfile, re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd and json.loads(cmd.group(1)) == service(compose, "caseline")["command"]
    assert re.search(r"^USER caseline$", dockerfile, re.MULTILINE), "not root"
    ignore = (DOCKER / "caseline" / "Dockerfile.dockerignore").read_text().split()
    assert {f"!{name}" for name in copied} <= set(ignore)


def test_crm_profile_serves_the_shipped_clients(compose: dict[str, Any]) -> None:
    crm = service(compose, "crm")
    command = crm["command"]
    assert command[:3] == ["python", "-m", "ari_app.crm.reference_server"]
    clients = Path(command[command.index("--clients") + 1])
    mounts = {Path(target): source for source, target, _ in bind_mounts(crm)}
    assert mounts[clients.parent] / clients.name == PROJECT / "config" / "clients.yaml"


# --- secrets: only from docker/.env -------------------------------------------------------------

def test_every_credential_in_compose_is_an_env_reference(compose: dict[str, Any]) -> None:
    env_names = set(env_example())
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_WORDS.search(key):
                assert re.fullmatch(rf"\$\{{{key}(:[-?][^}}]*)?\}}", str(value)), \
                    f"{name}: {key} must be ${{{key}}} from docker/.env, not {value!r}"
                assert key in env_names, f"{key} missing from docker/.env.example"
    text = COMPOSE.read_text()
    for match in re.finditer(r"(?im)^\s*([\w.-]*(password|secret|token|pin)[\w.-]*)\s*[:=]\s*(\S.*)$", text):
        assert match.group(3).startswith("${"), f"literal credential in compose.yml: {match.group(0)!r}"


def test_every_password_in_the_softphone_overlay_is_a_placeholder() -> None:
    for number, line in enumerate(OVERLAY.read_text().splitlines(), 1):
        key, sep, value = line.split(";", 1)[0].partition("=")
        if sep and SECRET_WORDS.search(key):
            assert re.fullmatch(r"CHANGE_ME_[A-Z_]+", value.strip()), f"line {number}: {line!r}"


def test_env_example_has_only_placeholders() -> None:
    pairs = env_example()
    assert pairs
    for name, value in pairs.items():
        assert name.startswith("CASELINE_"), name
        assert value == f"CHANGE_ME_{name.removeprefix('CASELINE_')}", f"{name}={value}"
    assert set(root.SECRET_NAMES) <= set(pairs), "every secret the lab's renderer knows"


def test_every_required_compose_variable_is_in_env_example() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert required and required <= set(env_example())


def test_env_files_are_ignored_by_git() -> None:
    assert ".env" in (DOCKER / ".gitignore").read_text().split()
    done = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=PROJECT, check=False)
    assert done.returncode in (0, 128), "docker/.env must be ignored (128: not a git checkout)"


def test_new_env_writes_fresh_valid_secrets(tmp_path: Path, render: Any) -> None:
    folder = tmp_path / "docker"
    folder.mkdir()
    shutil.copy(DOCKER / "new-env", folder / "new-env")
    shutil.copy(ENV_EXAMPLE, folder / ".env.example")
    done = subprocess.run(["sh", str(folder / "new-env")], check=False, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in (folder / ".env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert set(env) == set(env_example())
    assert render.secret_values(env, list(env)) == env
    assert (folder / ".env").stat().st_mode & 0o077 == 0, "mode 0600"
    again = subprocess.run(["sh", str(folder / "new-env")], check=False, capture_output=True, text=True, timeout=20)
    assert again.returncode != 0 and "keeping" in again.stderr
    assert dict(line.split("=", 1) for line in (folder / ".env").read_text().splitlines()
                if line and not line.startswith("#")) == env


# --- the real compose client, where there is one ----------------------------------------------

def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    version = subprocess.run([docker, "compose", "version"], check=False, capture_output=True, text=True, timeout=30)
    if version.returncode != 0:
        pytest.skip("no docker compose plugin")
    for profile in ([], ["--profile", "crm"]):
        done = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), *profile,
             "config", "--quiet"], check=False, capture_output=True, text=True, timeout=60, cwd=PROJECT)
        assert done.returncode == 0, done.stderr
