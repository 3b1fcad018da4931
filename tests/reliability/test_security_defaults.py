"""Secure by default: loopback listeners, secrets only from the environment and never shown,
no real secrets in the shipped config, and the AMI user's rights written down and bounded.
"""
from __future__ import annotations

import configparser
import inspect
import ipaddress
import logging
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from agi.server import AgiServer
from ari_app.config.files import ConfigError
from ari_app.crm.factory import build_crm
from ari_app.config.crm_settings import (
    BITRIX24_WEBHOOK_ENV,
    TOKEN_ENV,
    CrmSettings,
    HttpCrmSettings,
)
from ari_app.ops.api import OpsServer, create_app
from ari_app.ops.metrics import Metrics
from ari_app.config.settings import ENV_OVERRIDES, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
ASTERISK = CONFIG / "asterisk"

SECRETS = {
    "CASELINE_ARI_PASSWORD": "ari-pw-S3CRET-a1b2c3",
    "CASELINE_AMI_SECRET": "ami-S3CRET-d4e5f6",
    "CASELINE_OPS_TOKEN": "ops-tok-S3CRET-g7h8i9",
    "CASELINE_REDIS_URL": "redis://caseline:redis-S3CRET-j0k1@127.0.0.1:6379/0",
    TOKEN_ENV: "crm-tok-S3CRET-l2m3n4",
    BITRIX24_WEBHOOK_ENV: "https://portal.example/rest/7/bx-S3CRET-o5p6q7/",
}
SECRET_VALUES = ["ari-pw-S3CRET-a1b2c3", "ami-S3CRET-d4e5f6", "ops-tok-S3CRET-g7h8i9", "redis-S3CRET-j0k1",
                 "crm-tok-S3CRET-l2m3n4", "bx-S3CRET-o5p6q7"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- listeners bind loopback by default ------------------------------------------------------------


@pytest.mark.parametrize("settings", [Settings(), load_settings(CONFIG, env={})], ids=["defaults", "shipped"])
def test_everything_listens_and_connects_on_loopback_by_default(settings: Settings) -> None:
    assert settings.agi.host == "127.0.0.1"
    assert settings.ops.host == "127.0.0.1"
    assert is_loopback(urlsplit(settings.ari.url).hostname or "")
    assert is_loopback(urlsplit(settings.redis.url).hostname or "")
    assert is_loopback(settings.ami.host)


def test_servers_default_to_loopback() -> None:
    assert inspect.signature(AgiServer).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(OpsServer).parameters["host"].default == "127.0.0.1"


async def test_ops_api_with_default_settings_is_closed() -> None:
    """No token configured (the default) means every protected endpoint answers 403."""
    async def nothing(*_: object) -> None:
        return None

    app = create_app(token=Settings().ops_token, metrics=Metrics(), checks={}, reload=nothing,
                     live_calls=list, invalidate=nothing)
    async with TestClient(TestServer(app)) as client:
        for method, path in (("GET", "/metrics"), ("POST", "/reload"), ("GET", "/calls"), ("POST", "/crm/invalidate")):
            for auth in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}):
                response = await client.request(method, path, headers=auth)
                assert response.status == 403, (method, path, auth)
        assert (await client.get("/healthz")).status == 200


def asterisk_conf(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, inline_comment_prefixes=(";",),
                                       comment_prefixes=(";",), delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    text = (ASTERISK / name).read_text()
    text = re.sub(r"^\[([^\]]+)\]\(.*\)$", r"[\1]", text, flags=re.MULTILINE)  # templates: [x](!) -> [x]
    text = "\n".join(line for line in text.splitlines() if "=>" not in line and not line.startswith("#"))
    parser.read_string(text)
    return parser


def test_asterisk_interfaces_bind_loopback() -> None:
    assert is_loopback(asterisk_conf("http.conf")["general"]["bindaddr"])  # ARI + HTTP
    assert is_loopback(asterisk_conf("manager.conf")["general"]["bindaddr"])  # AMI
    ari = asterisk_conf("ari.conf")["general"]
    assert all(urlsplit(o.strip()).hostname in ("127.0.0.1", "localhost")
               for o in ari.get("allowed_origins", "").split(","))


# -- secrets --------------------------------------------------------------------------------------


def test_no_secret_in_repr_or_in_any_log_line_when_loading_from_env(json_logs) -> None:
    settings = load_settings(CONFIG, env=dict(SECRETS))
    # the secrets did arrive
    assert settings.ari.password.get_secret_value() == SECRETS["CASELINE_ARI_PASSWORD"]
    assert settings.ami.secret.get_secret_value() == SECRETS["CASELINE_AMI_SECRET"]
    assert settings.ops_token.get_secret_value() == SECRETS["CASELINE_OPS_TOKEN"]
    assert settings.redis.url == SECRETS["CASELINE_REDIS_URL"]
    shown = [repr(settings), str(settings), repr(settings.redis), repr(settings.ari), f"{settings}"]
    for text in shown:
        for secret in SECRET_VALUES:
            assert secret not in text, f"{secret} shown in {text[:200]}"
    assert "caseline:***@127.0.0.1" in repr(settings.redis)  # the URL stays useful, minus its password

    # Even a careless log call that prints the whole settings object is safe.
    log = logging.getLogger("caseline.test")
    log.info("settings: %s", settings)
    log.info("settings repr: %r", settings)
    log.warning("password=%s token=%s", settings.ari.password, settings.ops_token)
    lines = json_logs.assert_clean(forbidden=SECRET_VALUES)
    assert len(lines) >= 3


def test_crm_adapters_never_show_their_secrets(json_logs) -> None:
    http = build_crm(CrmSettings(adapter="http", http=HttpCrmSettings(
        url_template="https://crm.example/clients/{number}")), CONFIG, env=dict(SECRETS))
    bitrix = build_crm(CrmSettings(adapter="bitrix24"), CONFIG, env=dict(SECRETS))
    for adapter in (http, bitrix):
        assert adapter is not None
        for secret in SECRET_VALUES:
            assert secret not in repr(adapter) and secret not in str(adapter)
        logging.getLogger("caseline.test").info("adapter %r", adapter)
    json_logs.assert_clean(forbidden=SECRET_VALUES)


@pytest.mark.parametrize("bad", [{"CASELINE_AMI_PORT": "port-S3CRET"}, {BITRIX24_WEBHOOK_ENV: "http://bx-S3CRET-o5p6q7/x"}])
def test_config_errors_never_echo_a_secret(bad: dict[str, str]) -> None:
    env = {**SECRETS, **bad}
    with pytest.raises(ConfigError) as error:
        load_settings(CONFIG, env=env)
        build_crm(CrmSettings(adapter="bitrix24"), CONFIG, env=env)
    text = str(error.value)
    for secret in [*SECRET_VALUES, "port-S3CRET"]:
        assert secret not in text, text


def test_secrets_come_only_from_the_environment() -> None:
    """caseline.yaml cannot carry a secret the app would read from anywhere else: the loader
    takes secrets from CASELINE_* variables, and the CRM refuses credential headers/URLs."""
    secret_keys = {name for name in ENV_OVERRIDES if re.search(r"PASSWORD|SECRET|TOKEN", name)}
    assert secret_keys == {"CASELINE_ARI_PASSWORD", "CASELINE_AMI_SECRET", "CASELINE_OPS_TOKEN"}
    for bad in ({"url_template": "https://user:pw@crm.example/{number}"},
                {"url_template": "https://crm.example/{number}", "headers": {"Authorization": "Bearer x"}},
                {"url_template": "https://crm.example/{number}", "headers": {"Cookie": "s=1"}}):
        with pytest.raises(ValueError):
            HttpCrmSettings(**bad)


# -- shipped files carry placeholders only ------------------------------------------------------------

SECRET_KEY_RE = re.compile(r"pass(word)?|secret|token|api_?key|auth|pin|webhook|credential", re.IGNORECASE)
HIGH_ENTROPY_RE = re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z0-9+/_=-]*[0-9])(?=[A-Za-z0-9+/_=-]*[A-Za-z])"
                             r"[A-Za-z0-9+/_=-]{24,}")


def conf_assignments(path: Path) -> list[tuple[int, str, str]]:
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split(";", 1)[0].strip()
        key, sep, value = line.partition("=")
        if sep and not value.startswith(">"):
            out.append((number, key.strip(), value.strip()))
        elif "=>" in line:  # voicemail: "1000 => PIN,Name", extensions: "exten => ..."
            left, _, right = line.partition("=>")
            out.append((number, left.strip(), right.strip()))
    return out


@pytest.mark.parametrize("path", sorted(ASTERISK.glob("*.conf")), ids=lambda p: p.name)
def test_asterisk_configs_carry_placeholders_only(path: Path) -> None:
    for number, key, value in conf_assignments(path):
        where = f"{path.name}:{number}"
        if SECRET_KEY_RE.fullmatch(key) or key in ("password", "secret", "md5_cred", "auth_token"):
            assert value.startswith("CHANGE_ME_"), f"{where}: {key} is not a CHANGE_ME_ placeholder"
        if path.name == "voicemail.conf" and key.isdigit():  # mailbox => PIN,name,...
            assert value.split(",")[0].startswith("CHANGE_ME_"), f"{where}: mailbox PIN"
        if not value.startswith("CHANGE_ME_"):
            assert not HIGH_ENTROPY_RE.search(value), f"{where}: a secret-looking value"


def yaml_strings(data: object, key: str = "") -> list[tuple[str, object]]:
    if isinstance(data, dict):
        return [item for k, v in data.items() for item in yaml_strings(v, str(k))]
    if isinstance(data, list):
        return [item for v in data for item in yaml_strings(v, key)]
    return [(key, data)]


@pytest.mark.parametrize("path", sorted(CONFIG.glob("*.yaml")), ids=lambda p: p.name)
def test_yaml_configs_carry_no_password_like_values(path: Path) -> None:
    for key, value in yaml_strings(yaml.safe_load(path.read_text())):
        if SECRET_KEY_RE.search(key):
            assert value in (None, "") or str(value).startswith("CHANGE_ME_"), f"{path.name}: {key}"
        if isinstance(value, str):
            parts = urlsplit(value) if "://" in value else None
            assert not (parts and parts.password), f"{path.name}: credentials in a URL under {key}"
            assert not re.search(r"/rest/\d+/[A-Za-z0-9]{8,}", value), f"{path.name}: a Bitrix24 webhook"
            assert not HIGH_ENTROPY_RE.search(value), f"{path.name}: a secret-looking value under {key}"


def test_the_secret_checks_would_catch_a_real_secret(tmp_path: Path) -> None:
    """The two checks above are not vacuous."""
    conf = tmp_path / "ari.conf"
    conf.write_text("[caseline]\ntype = user\npassword = Xk9vQ2mP7rT4wZ8nB3cL6hJ1\n")
    with pytest.raises(AssertionError):
        test_asterisk_configs_carry_placeholders_only(conf)
    conf.write_text("[default]\n1000 => 4711,General mailbox\n")
    (tmp_path / "voicemail.conf").write_text(conf.read_text())
    with pytest.raises(AssertionError):
        test_asterisk_configs_carry_placeholders_only(tmp_path / "voicemail.conf")
    settings = tmp_path / "caseline.yaml"
    settings.write_text("ari: {password: hunter2}\n")
    with pytest.raises(AssertionError):
        test_yaml_configs_carry_no_password_like_values(settings)
    settings.write_text("redis: {url: 'redis://:hunter2@10.0.0.1/0'}\n")
    with pytest.raises(AssertionError):
        test_yaml_configs_carry_no_password_like_values(settings)


# -- the AMI user ---------------------------------------------------------------------------------

# What Caseline needs from AMI (docs/security.md, "The AMI user"): Cdr events (read `cdr`), and
# Login/Ping/Logoff, which need no class. No write class at all: `system` or `config` would
# allow GetConfig (every config file, secrets included), `system` also ModuleLoad and
# DialplanExtensionAdd (a System() extension reachable from [inbound]), `originate` with
# `system` Originate Application=System. The dialplan is reloaded over ARI instead.
NEEDED_READ = {"cdr"}
NO_CLASS_NEEDED = {"Login", "Ping", "Logoff"}  # main/manager.c registers them with privilege 0


def ami_user() -> configparser.SectionProxy:
    return asterisk_conf("manager.conf")["caseline"]


def rights(value: str) -> set[str]:
    return {r.strip().lower() for r in value.split(",") if r.strip()}


def test_ami_user_has_no_write_class_and_reads_only_cdr() -> None:
    user = ami_user()
    assert not rights(user.get("write", "")), f"write = {user['write']}: no AMI write class (docs/security.md)"
    assert rights(user.get("read", "")) == NEEDED_READ, user.get("read")
    assert user["secret"].startswith("CHANGE_ME_")
    assert user["deny"].replace(" ", "") == "0.0.0.0/0.0.0.0"
    assert user["permit"].replace(" ", "") == "127.0.0.1/255.255.255.255"
    assert [s for s in asterisk_conf("manager.conf").sections() if s != "general"] == ["caseline"]


def test_the_ami_rights_check_would_catch_a_write_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: the shipped user with `write = system` (what it had) fails it."""
    text = (ASTERISK / "manager.conf").read_text().replace("read = cdr", "read = cdr\nwrite = system")
    (tmp_path / "manager.conf").write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ASTERISK", tmp_path)
    with pytest.raises(AssertionError, match="write = system"):
        test_ami_user_has_no_write_class_and_reads_only_cdr()


def test_nothing_in_the_code_sends_an_ami_action_that_needs_a_class() -> None:
    """Why the AMI user can do without write classes: the product sends only these actions
    (the CDR listener's panoramisk Manager sends Login and Ping on its own)."""
    sent: set[str] = set()
    for path in [*ROOT.glob("ari_app/**/*.py"), *ROOT.glob("agi/**/*.py")]:
        text = path.read_text()
        sent |= set(re.findall(r"""["']Action["']\s*:\s*["'](\w+)["']""", text))
        sent |= set(re.findall(r"^Action:\s*(\w+)", text, re.MULTILINE))
    assert sent and sent <= NO_CLASS_NEEDED, sent


def test_docs_state_the_shipped_ami_rights() -> None:
    """docs/security.md shows manager.conf's [caseline] rights as shipped."""
    doc = (ROOT / "docs" / "security.md").read_text()
    section = doc[doc.index("## The AMI user"):]
    block = re.search(r"```ini\n(.*?)```", section, re.DOTALL)
    assert block, "an ini block in docs/security.md, 'The AMI user'"
    shown = dict(re.findall(r"^(\w+)\s*=\s*(.*?)\s*$", block.group(1), re.MULTILINE))
    user = ami_user()
    assert {k: v for k, v in shown.items() if k in ("read", "write")} == \
        {k: user[k] for k in ("read", "write") if k in user}


def test_asterisk_http_server_serves_only_ari() -> None:
    """No /httpstatus (it shows the server's settings; on by default before 22.8.2), no static files."""
    http = asterisk_conf("http.conf")["general"]
    assert http["enable_status"] == "no" and http["enable_static"] == "no"
    doc = (ROOT / "docs" / "security.md").read_text()
    assert "enable_status = no" in doc and "enable_static = no" in doc


def test_dialplan_never_hands_variables_to_a_shell() -> None:
    for path in (ROOT / "dialplan").glob("*.conf"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split(";", 1)[0]
            assert not re.search(r"\b(System|TrySystem|SHELL|EVAL|Exec|ExecIfTime)\s*\(", code), \
                f"{path.name}:{number}: {code.strip()}"
            if "Dial(${CASELINE_TARGET}" in code:  # only after the REGEX gate (caseline-agi.conf)
                text = path.read_text()
                assert '${REGEX("^PJSIP/[a-z0-9]+$" ${CASELINE_TARGET})}' in text
