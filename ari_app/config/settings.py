"""Process settings: config/caseline.yaml validated into typed models, env overrides on top.

Secrets never live in YAML: passwords and tokens come from CASELINE_* environment variables
(systemd's EnvironmentFile, docker's env_file, the lab's generated lab.env), and they are
SecretStr so they never appear in a repr or a log line.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ari_app.config.admission_settings import AdmissionSettings
from ari_app.config.asterisk_settings import AsteriskSettings
from ari_app.config.callback_settings import CallbackSettings
from ari_app.config.crm_settings import CrmSettings
from ari_app.config.files import ConfigError, load_model
from ari_app.config.history_settings import HistorySettings
from ari_app.config.learning_settings import LearningSettings
from ari_app.config.scale_settings import (
    NodeSettings,
    PresenceSettings,
    SentinelSettings,
    sentinel_from_env,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AriSettings(Strict):
    url: str = "http://127.0.0.1:8088"
    user: str = "caseline"
    password: SecretStr = SecretStr("")
    app: str = Field("caseline", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    heartbeat_s: float = Field(5.0, gt=0, le=60)  # a silent websocket is noticed within this
    # requests as frames on the events websocket (Asterisk 20.14/21.9/22.4+) instead of HTTP:
    # cheaper for both sides (docs/benchmarks.md); false: every request over HTTP
    rest_over_websocket: bool = True


class AmiSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    user: str = "caseline"
    secret: SecretStr = SecretStr("")


class RedisSettings(Strict):
    url: str = "redis://127.0.0.1:6379/0"  # may carry a password (redis://:pw@host): never shown
    # several nodes: the master through Sentinel (the url then gives only password and db)
    sentinel: SentinelSettings | None = None

    def __repr_args__(self):  # type: ignore[no-untyped-def]  # repr() and str() of Settings
        for name, value in super().__repr_args__():
            yield name, (_hide_password(value) if name == "url" else value)


def _hide_password(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "***"


class CallSettings(Strict):
    greeting: str = "sound:hello-world"  # `caseline run --greet`: the smoke handler's prompt
    # Skip a person who is already on a call (Asterisk's endpoint view + our Redis claims).
    # false: ring them anyway (call waiting on their phone; the call-rate benchmark).
    one_call_per_person: bool = True


class NumberSettings(Strict):
    default_region: str = Field("RU", pattern=r"^[A-Z]{2}$")


class ListenSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)


class LoggingSettings(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mask_numbers: bool = True  # keep only the last 4 digits of caller numbers in logs


class Settings(Strict):
    node: NodeSettings = NodeSettings()  # which Asterisk node this Caseline serves
    ari: AriSettings = AriSettings()
    ami: AmiSettings = AmiSettings()
    asterisk: AsteriskSettings = AsteriskSettings()  # the oldest Asterisk we run with
    redis: RedisSettings = RedisSettings()
    presence: PresenceSettings = PresenceSettings()  # shared across nodes, or this node's own
    numbers: NumberSettings = NumberSettings()
    calls: CallSettings = CallSettings()
    agi: ListenSettings = ListenSettings(port=4573)
    ops: ListenSettings = ListenSettings(port=8090)
    ops_token: SecretStr = SecretStr("")
    logging: LoggingSettings = LoggingSettings()
    history: HistorySettings = HistorySettings()
    learning: LearningSettings = LearningSettings()
    history_budget_ms: int = Field(150, ge=5, le=5000)  # Redis look-up bound per call
    crm: CrmSettings = CrmSettings()
    callbacks: CallbackSettings = CallbackSettings()
    admission: AdmissionSettings = AdmissionSettings()  # overload: new calls skip the route
    routing_file: str = "routing.yaml"  # relative to the config folder
    legal_entities_file: str = "legal_entities.yaml"
    numbering_file: str = "numbering/ru.csv"  # `caseline numbering import` writes it
    decision_log_max: int = Field(10_000, ge=100, le=10_000_000)  # capped Redis stream
    config_dir: str = ""


# env var -> (section, key). Secrets and URLs only: everything else belongs in YAML.
ENV_OVERRIDES = {
    "CASELINE_ARI_URL": ("ari", "url"),
    "CASELINE_ARI_USER": ("ari", "user"),
    "CASELINE_ARI_PASSWORD": ("ari", "password"),
    "CASELINE_AMI_HOST": ("ami", "host"),
    "CASELINE_AMI_PORT": ("ami", "port"),
    "CASELINE_AMI_SECRET": ("ami", "secret"),
    "CASELINE_REDIS_URL": ("redis", "url"),
    "CASELINE_OPS_TOKEN": ("", "ops_token"),
    "CASELINE_AGI_HOST": ("agi", "host"),
    "CASELINE_OPS_HOST": ("ops", "host"),
    "CASELINE_CALLBACK_DIAL": ("callbacks", "dial"),  # the docker kit: PJSIP/client (its softphone)
    "CASELINE_NODE_ID": ("node", "id"),
}


def load_settings(config_dir: Path, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    path = config_dir / "caseline.yaml"
    base = load_model(path, Settings) if path.exists() else Settings()
    data = base.model_dump()
    for name, (section, key) in ENV_OVERRIDES.items():
        if env.get(name):
            if section:
                data[section][key] = env[name]
            else:
                data[key] = env[name]
    if env.get("CASELINE_REDIS_SENTINELS"):  # "host:port,host:port": a list, not one value
        data["redis"]["sentinel"] = sentinel_from_env(env["CASELINE_REDIS_SENTINELS"],
                                                      env.get("CASELINE_REDIS_MASTER"),
                                                      data["redis"].get("sentinel"))
    data["config_dir"] = str(config_dir)
    for section in ("ari", "ami"):
        for key, value in data[section].items():
            if isinstance(value, SecretStr):
                data[section][key] = value.get_secret_value()
    if isinstance(data["ops_token"], SecretStr):
        data["ops_token"] = data["ops_token"].get_secret_value()
    try:
        return Settings.model_validate(data)
    except Exception as e:  # env values are validated like the file's
        raise ConfigError("environment", "CASELINE_*", str(e).splitlines()[0]) from None
