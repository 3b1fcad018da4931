"""Generic HTTP CRM: GET one URL per number (or per company id), read a JSON object
(docs/crm-http-contract.md)."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from ari_app.config.crm_settings import HttpCrmSettings
from ari_app.core.models import CrmRecord
from ari_app.core.numbers import require_e164
from ari_app.crm.adapters import _http
from ari_app.crm.base import COMPANY_ID_RE, CrmBadAnswer, CrmErrorAnswer, CrmUnavailable
from ari_app.crm.records import build_record

_MISSING = object()


def _at(doc: Any, path: tuple[str, ...]) -> Any:
    """Follow a key path; digits index lists. Missing anywhere -> _MISSING."""
    cur = doc
    for key in path:
        if isinstance(cur, dict):
            cur = cur.get(key, _MISSING)
        elif isinstance(cur, list) and key.isdigit() and int(key) < len(cur):
            cur = cur[int(key)]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def _opt_str(field: str, v: Any, *, allow_int: bool = False) -> str | None:
    if v is _MISSING or v is None:
        return None
    if isinstance(v, str):
        return v
    if allow_int and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    raise CrmBadAnswer(f"{field}: expected a string, got {type(v).__name__}")


def _count(field: str, v: Any) -> int:
    if v is _MISSING or v is None:
        return 0
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    raise CrmBadAnswer(f"{field}: expected a non-negative integer")


def _flag(field: str, v: Any) -> bool:
    if v is _MISSING or v is None:
        return False
    if isinstance(v, bool):
        return v
    raise CrmBadAnswer(f"{field}: expected true/false, got {type(v).__name__}")


def record_from_json(doc: Any, paths: dict[str, tuple[str, ...]]) -> CrmRecord:
    """Map one contract answer to a record; wrong types -> CrmBadAnswer naming our field."""
    if not isinstance(doc, dict):
        raise CrmBadAnswer(f"expected a JSON object, got {type(doc).__name__}")
    get = {ours: _at(doc, path) for ours, path in paths.items()}
    client_id = _opt_str("client_id", get["client_id"], allow_int=True)
    if not client_id:
        raise CrmBadAnswer("client_id: missing or empty")
    extra = get["extra"]
    if extra is _MISSING or extra is None:
        extra = {}
    elif not isinstance(extra, dict):
        raise CrmBadAnswer(f"extra: expected an object, got {type(extra).__name__}")
    return build_record(
        client_id=client_id,
        name=_opt_str("name", get["name"]) or "",
        status=_opt_str("status", get["status"]) or "",
        abc=_opt_str("abc", get["abc"]),
        responsible=_opt_str("responsible", get["responsible"], allow_int=True),
        open_deals=_count("open_deals", get["open_deals"]),
        open_orders=_count("open_orders", get["open_orders"]),
        open_claims=_count("open_claims", get["open_claims"]),
        delivery_today=_flag("delivery_today", get["delivery_today"]),
        vip=_flag("vip", get["vip"]),
        extra=extra,
    )


class HttpCrm:
    """CrmClient over the generic HTTP contract."""

    def __init__(
        self,
        settings: HttpCrmSettings,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._settings = settings
        self._paths = settings.field_paths()
        self._headers = {"Accept": "application/json", **settings.headers}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session = _http.SessionHolder(session)

    def __repr__(self) -> str:  # the template may carry an API key in its query: show the host only
        parts = urlsplit(self._settings.url_template.replace("{number}", "n"))
        return f"HttpCrm({parts.scheme}://{parts.netloc})"

    def url_for(self, number: str) -> str:
        # Strict E.164 only (ValueError otherwise): quoting alone lets "." and ".." through,
        # which the URL library then resolves as path segments (/clients/.. -> /).
        return self._settings.url_template.replace("{number}", quote(require_e164(number), safe=""))

    def company_url_for(self, company_id: str) -> str | None:
        """None when no company_url_template is set. Only ids of the directory's form get
        here (ValueError otherwise), quoted like numbers."""
        template = self._settings.company_url_template
        if template is None:
            return None
        if not COMPANY_ID_RE.fullmatch(company_id):
            raise ValueError("not a company id")
        return template.replace("{company_id}", quote(company_id, safe=""))

    async def lookup(self, number: str) -> CrmRecord | None:
        return await self._get(self.url_for(number))

    async def lookup_company(self, company_id: str) -> CrmRecord | None:
        url = self.company_url_for(company_id)
        return await self._get(url) if url is not None else None

    async def _get(self, url: str) -> CrmRecord | None:
        status, body = await _http.request(
            self._session.get(),
            "GET",
            url,
            headers=self._headers,
            max_bytes=self._settings.max_body_bytes,
            timeout_s=self._settings.timeout_s,
        )
        if status == 404:
            return None
        if status in _http.GATEWAY_DOWN:
            raise CrmUnavailable(f"HTTP {status}")
        if status != 200:
            raise CrmErrorAnswer(f"HTTP {status}")
        return record_from_json(_http.parse_json(body), self._paths)

    async def aclose(self) -> None:
        await self._session.aclose()
