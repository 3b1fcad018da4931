"""CRM settings (the `crm:` section of the main config, or a file of its own).

Secrets never live in YAML: the HTTP bearer token comes from CASELINE_CRM_TOKEN and the
Bitrix24 webhook URL (which embeds its token) from CASELINE_BITRIX24_WEBHOOK_URL.

    crm:
      adapter: file            # file | http | bitrix24 | none
      budget_ms: 300           # per call, the caller never waits longer
      cache_ttl_s: 60          # known clients
      unknown_ttl_s: 10        # "not in CRM" answers (a new client may be added any minute)
      cache_max_entries: 100000
      timezone: Europe/Moscow  # what "delivery today" means
      breaker: {failures: 5, cooldown_s: 30}
      file: {path: clients.yaml, default_region: RU}
      http:
        url_template: "http://127.0.0.1:8085/clients/{number}"
        fields: {responsible: "owner.login"}   # our field -> their dotted JSON path
      bitrix24:
        managers: {"99": mgr1}                 # Bitrix user id -> our manager id
        claim_categories: [2]
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ari_app.config.files import load_model

TOKEN_ENV = "CASELINE_CRM_TOKEN"
BITRIX24_WEBHOOK_ENV = "CASELINE_BITRIX24_WEBHOOK_URL"

# Our record fields that a generic HTTP CRM can fill, with the contract's default JSON keys.
HTTP_FIELDS = (
    "client_id", "name", "status", "abc", "responsible",
    "open_deals", "open_orders", "open_claims", "delivery_today", "vip", "extra",
)
DEFAULT_HTTP_FIELDS = {f: ("id" if f == "client_id" else f) for f in HTTP_FIELDS}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerSettings(_Strict):
    failures: int = Field(5, ge=1, le=1000)  # consecutive failures (timeouts count) that open it
    cooldown_s: float = Field(30.0, gt=0, le=3600)  # open time before one probe is let through


class FileCrmSettings(_Strict):
    path: str = "clients.yaml"  # relative to the config directory
    default_region: str = Field("RU", pattern=r"^[A-Z]{2}$")  # for numbers written without +


class HttpCrmSettings(_Strict):
    url_template: str  # must contain {number} once; it is replaced by the URL-quoted E.164
    timeout_s: float = Field(5.0, gt=0, le=60)  # transport cap; the service budget is usually shorter
    max_body_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024)
    headers: dict[str, str] = Field(default_factory=dict)  # static, non-secret headers
    fields: dict[str, str] = Field(default_factory=dict)  # our field -> their dotted key path
    # a company's record by its id ({company_id}); unset: companies are not looked up
    company_url_template: str | None = None

    @field_validator("company_url_template")
    @classmethod
    def _company_template(cls, v: str | None) -> str | None:
        """The same rules as url_template, with {company_id} in place of {number}."""
        if v is None:
            return v
        if v.count("{company_id}") != 1:
            raise ValueError("must contain {company_id} exactly once")
        if "{number}" in v:
            raise ValueError("only the {company_id} placeholder is allowed")
        try:
            cls._template(v.replace("{company_id}", "{number}"))
        except ValueError as e:
            raise ValueError(str(e).replace("{number}", "{company_id}")) from None
        return v

    @field_validator("url_template")
    @classmethod
    def _template(cls, v: str) -> str:
        if v.count("{number}") != 1:
            raise ValueError("must contain {number} exactly once")
        rest = v.replace("{number}", "")
        if "{" in rest or "}" in rest:
            raise ValueError("only the {number} placeholder is allowed")
        parts = urlsplit(v.replace("{number}", "n"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            # the bearer token (CASELINE_CRM_TOKEN) and callers' numbers would travel in clear
            raise ValueError("must use https (plain http only to a loopback address)")
        if parts.username or parts.password:
            raise ValueError(f"credentials do not belong in the URL: set {TOKEN_ENV}")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if name.lower() in ("authorization", "proxy-authorization", "cookie"):
                raise ValueError(f"{name}: secrets do not belong in YAML: set {TOKEN_ENV}")
        return v

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, str]) -> dict[str, str]:
        for ours, path in v.items():
            if ours not in HTTP_FIELDS:
                raise ValueError(f"unknown field {ours!r} (known: {', '.join(HTTP_FIELDS)})")
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"{ours}: empty key path")
        return v

    def field_paths(self) -> dict[str, tuple[str, ...]]:
        merged = {**DEFAULT_HTTP_FIELDS, **self.fields}
        return {ours: tuple(path.split(".")) for ours, path in merged.items()}


class Bitrix24Settings(_Strict):
    managers: dict[str, str] = Field(default_factory=dict)  # Bitrix user id -> our manager id
    phone_format: Literal["e164", "digits"] = "e164"  # "+7916..." or "7916..." in PHONE_NUMBER
    count_deals: bool = True  # one crm.deal.list per found contact/company
    open_deals_filter: Literal["semantic", "closed"] = "semantic"  # STAGE_SEMANTIC_ID=P or CLOSED=N
    order_categories: list[int] = Field(default_factory=list)  # deal pipelines that are orders
    claim_categories: list[int] = Field(default_factory=list)  # deal pipelines that are claims
    delivery_date_field: str | None = None  # deal field with the delivery date, e.g. UF_CRM_...
    # Fields read from the found contact/company/lead with crm.<entity>.get (one more call).
    entity_fields: dict[Literal["status", "abc", "vip"], str] = Field(default_factory=dict)
    abc_values: dict[str, str] = Field(default_factory=dict)  # enum value id -> "A"/"B"/"C"
    vip_values: list[str] = Field(default_factory=lambda: ["Y", "1", "true"])
    timeout_s: float = Field(5.0, gt=0, le=60)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=16 * 1024 * 1024)

    @model_validator(mode="after")
    def _categories(self) -> Bitrix24Settings:
        both = set(self.order_categories) & set(self.claim_categories)
        if both:
            raise ValueError(f"categories {sorted(both)} are both orders and claims")
        return self


class CrmSettings(_Strict):
    adapter: Literal["file", "http", "bitrix24", "none"] = "none"
    budget_ms: int = Field(300, ge=10, le=10_000)
    cache_ttl_s: float = Field(60.0, ge=0, le=86_400)  # 0 disables caching
    unknown_ttl_s: float = Field(10.0, ge=0, le=86_400)
    cache_max_entries: int = Field(100_000, ge=1, le=10_000_000)
    timezone: str = "Europe/Moscow"
    breaker: BreakerSettings = BreakerSettings()
    file: FileCrmSettings = FileCrmSettings()
    http: HttpCrmSettings | None = None
    bitrix24: Bitrix24Settings = Bitrix24Settings()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _adapter_section(self) -> CrmSettings:
        if self.adapter == "http" and self.http is None:
            raise ValueError("adapter http needs an http: section with url_template")
        return self


def load_crm_settings(path: Path) -> CrmSettings:
    """A file whose top level is the CRM section; raises ConfigError(file, key, reason)."""
    return load_model(path, CrmSettings)
