"""docker/compose.yml and its images agree with the repository and with the lab.

No Docker engine is needed: the files are read and compared with what the lab really runs
(scripts/labkit, called with its side effects stubbed). test_stack.py builds and runs them.
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
from ari_app.config.settings import load_settings

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
    # the base is a build argument whose default is the public image of the lab's Debian: sid
    assert re.search(r"^ARG BASE=debian:sid-slim$", dockerfile, re.MULTILINE), "the lab's Debian: sid"
    assert re.findall(r"^FROM (.+)$", dockerfile, re.MULTILINE) == ["${BASE}"]
    listed = re.search(r'packages="([^"]+)"', dockerfile)
    assert listed and set(listed.group(1).split()) == {*root.ROOT_PACKAGES.split(","), "python3"}
    # apt installs exactly that list, unless the base has all of it already
    assert re.search(r"if ! dpkg -s \$packages .*apt-get update.*apt-get install -y --no-install-recommends \$packages",
                     dockerfile, re.DOTALL)


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
    assert re.search(r"^ARG BASE=python:3\.11-slim$", dockerfile, re.MULTILINE), "the public default"
    assert re.findall(r"^FROM (.+)$", dockerfile, re.MULTILINE) == ["${BASE}"]
    # the dependencies pyproject.toml lists (and its build backend), then the package alone
    assert 'p["build-system"]["requires"] + p["project"]["dependencies"]' in dockerfile
    assert re.search(r"pip install -r requirements\.txt tzdata$", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN pip install --no-deps --no-build-isolation \. ", dockerfile, re.MULTILINE)
    assert dockerfile.index("COPY pyproject.toml") < dockerfile.index("requirements.txt") < \
        dockerfile.index("COPY ari_app"), "a code change does not download the dependencies again"
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


def test_the_address_settings_have_one_default(render: Any) -> None:
    """CASELINE_BIND_IP, CASELINE_SOFTPHONE_IP, CASELINE_RTP_PORTS: compose, render.py and
    .env.example agree on the defaults; Asterisk gets all three, Caseline's addresses follow
    CASELINE_BIND_IP."""
    text = COMPOSE.read_text()
    used = re.findall(r"\$\{(CASELINE_(?:BIND_IP|SOFTPHONE_IP|RTP_PORTS)):-([^}]*)\}", text)
    assert used and {name: default for name, default in used} == render.SETTINGS
    assert all(default == render.SETTINGS[name] for name, default in used)
    example = ENV_EXAMPLE.read_text()
    for name, default in render.SETTINGS.items():
        assert re.search(rf"^# {name}={re.escape(default)}\s", example, re.MULTILINE), name
    compose = load_compose()
    assert set(render.SETTINGS) <= set(service(compose, "asterisk")["environment"])
    caseline_env = service(compose, "caseline")["environment"]
    bind = "${CASELINE_BIND_IP:-127.0.0.1}"
    assert caseline_env["CASELINE_ARI_URL"] == f"http://{bind}:8088"
    assert caseline_env["CASELINE_REDIS_URL"] == f"redis://{bind}:6380/0"
    assert {caseline_env[k] for k in ("CASELINE_AMI_HOST", "CASELINE_AGI_HOST", "CASELINE_OPS_HOST")} == {bind}
    assert bind in service(compose, "redis")["command"]
    assert all(svc["build"]["network"] == "host" for svc in compose["services"].values() if "build" in svc)


def test_call_backs_ring_the_client_softphone(compose: dict[str, Any]) -> None:
    """The shipped callbacks.dial (PJSIP/{digits}@trunk) addresses the number, which a
    softphone registered as `client` answers with 404: compose overrides it with the
    `client` account (CASELINE_CALLBACK_DIAL), which the overlay defines and .env.example
    names with the same default."""
    value = service(compose, "caseline")["environment"]["CASELINE_CALLBACK_DIAL"]
    assert value == "${CASELINE_CALLBACK_DIAL:-PJSIP/client}"
    settings = load_settings(PROJECT / "config", env={"CASELINE_CALLBACK_DIAL": "PJSIP/client"})
    assert settings.callbacks.endpoint("+79260001122") == "PJSIP/client"
    assert re.search(r"^\[client\]\(endpoint-common\)$", OVERLAY.read_text(), re.MULTILINE)
    assert re.search(r"^# CASELINE_CALLBACK_DIAL=PJSIP/client$", ENV_EXAMPLE.read_text(), re.MULTILINE)


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
