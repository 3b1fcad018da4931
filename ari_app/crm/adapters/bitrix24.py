"""Bitrix24 over an inbound webhook (https://<portal>/rest/<user>/<token>/).

One look-up is at most four REST calls, the last three concurrent:
  1. telephony.externalCall.searchCrmEntities {PHONE_NUMBER}: who is it (contacts,
     companies, leads, sorted by Bitrix's own priority) and who is responsible. As the
     documentation recommends, the first entity is the client.
  2. crm.deal.list filtered by CONTACT_ID of the first contact and
  3. by COMPANY_ID of the first company, open stages only (STAGE_SEMANTIC_ID = "P");
     deal pipelines (CATEGORY_ID) configured as orders or claims are counted as such.
  4. crm.<entity>.get for the first entity, only if `entity_fields` maps status/abc/vip.

A company by its ID (a branch's parent, named by the legal-entity directory) is one
crm.company.list filtered by ID (an unknown ID is an empty list, where crm.company.get
answers an error), then its open deals as in 3.

The webhook URL embeds a secret: it is never logged, never put in an error detail or repr.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp

from ari_app.config.crm_settings import Bitrix24Settings
from ari_app.core.models import CrmRecord
from ari_app.core.numbers import sanitize_for_log
from ari_app.crm.adapters import _http
from ari_app.crm.base import CrmBadAnswer, CrmError, CrmErrorAnswer, CrmUnavailable
from ari_app.crm.records import build_record

SEARCH = "telephony.externalCall.searchCrmEntities"
DEAL_LIST = "crm.deal.list"
COMPANY_LIST = "crm.company.list"
ENTITY_GET = {"CONTACT": "crm.contact.get", "COMPANY": "crm.company.get", "LEAD": "crm.lead.get"}
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def check_webhook_url(url: str) -> str:
    """The base URL with a trailing slash; ValueError (without echoing the URL) if unusable."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be https://<portal>/rest/<user>/<token>/")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError("must use https (Bitrix24 refuses plain http)")
    if parts.query or parts.fragment or "/rest/" not in parts.path + "/":
        raise ValueError("must be https://<portal>/rest/<user>/<token>/")
    base = url.strip()
    return base if base.endswith("/") else base + "/"


def _int_id(field: str, v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 19:  # not "²", not 5000 digits
        return int(v)
    raise CrmBadAnswer(f"{SEARCH}: {field}: expected an id, got {type(v).__name__}")


def _scalar(v: Any) -> str | None:
    if isinstance(v, list):  # multiple user fields arrive as lists
        v = v[0] if v else None
    if v is None or isinstance(v, dict):
        return None
    if isinstance(v, bool):
        return "Y" if v else "N"
    return str(v)


@dataclass(frozen=True, slots=True)
class _Entity:
    kind: str  # CONTACT | COMPANY | LEAD
    id: int
    name: str
    assigned_by: int | None
    timeman: str | None


def _entity(item: Any) -> _Entity:
    if not isinstance(item, dict):
        raise CrmBadAnswer(f"{SEARCH}: expected objects in result")
    kind = item.get("CRM_ENTITY_TYPE")
    if not isinstance(kind, str):
        raise CrmBadAnswer(f"{SEARCH}: CRM_ENTITY_TYPE: expected a string")
    assigned = item.get("ASSIGNED_BY_ID")
    name = item.get("NAME")
    user = item.get("ASSIGNED_BY")
    timeman = user.get("TIMEMAN_STATUS") if isinstance(user, dict) else None
    return _Entity(
        kind=kind.upper(),
        id=_int_id("CRM_ENTITY_ID", item.get("CRM_ENTITY_ID")),
        name=name if isinstance(name, str) else "",
        assigned_by=None if assigned in (None, "", 0, "0") else _int_id("ASSIGNED_BY_ID", assigned),
        timeman=timeman if isinstance(timeman, str) else None,
    )


class Bitrix24Crm:
    """CrmClient over Bitrix24 REST."""

    def __init__(
        self,
        settings: Bitrix24Settings,
        *,
        webhook_url: str,
        timezone: str = "Europe/Moscow",
        session: aiohttp.ClientSession | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        self._s = settings
        self._base = check_webhook_url(webhook_url)
        self._host = urlsplit(self._base).netloc
        self._tz = ZoneInfo(timezone)
        self._today = today or (lambda: datetime.now(self._tz).date())
        self._session = _http.SessionHolder(session)
        self._vip = {v.lower() for v in settings.vip_values}

    def __repr__(self) -> str:
        return f"Bitrix24Crm({self._host})"

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """One REST call; returns `result`. Bitrix `error` answers -> CrmErrorAnswer."""
        status, body = await _http.request(
            self._session.get(), "POST", self._base + method,
            headers={"Accept": "application/json"}, json_body=params,
            max_bytes=self._s.max_body_bytes, timeout_s=self._s.timeout_s,
        )
        try:
            doc = _http.parse_json(body)
        except CrmBadAnswer:
            doc = None
        if isinstance(doc, dict) and "error" in doc:
            # e.g. 503 QUERY_LIMIT_EXCEEDED, 401 INVALID_CREDENTIALS, 400 ERROR_CORE; deal.list
            # sends an empty code with only a description.
            code = _scalar(doc.get("error")) or _scalar(doc.get("error_description")) or "error"
            raise CrmErrorAnswer(f"{method}: {sanitize_for_log(code, 64)} (HTTP {status})")
        if status in _http.GATEWAY_DOWN:
            raise CrmUnavailable(f"{method}: HTTP {status}")
        if status != 200:
            raise CrmErrorAnswer(f"{method}: HTTP {status}")
        if doc is None:
            raise CrmBadAnswer(f"{method}: not JSON")
        if not isinstance(doc, dict) or "result" not in doc:
            raise CrmBadAnswer(f"{method}: no result in the answer")
        return doc["result"]

    async def lookup(self, number: str) -> CrmRecord | None:
        phone = number if self._s.phone_format == "e164" else number.lstrip("+")
        found = await self.call(SEARCH, {"PHONE_NUMBER": phone})
        if not isinstance(found, list):
            raise CrmBadAnswer(f"{SEARCH}: result is not a list")
        if not found:
            return None
        entities = [_entity(item) for item in found[:50]]
        first = entities[0]

        jobs: dict[str, Any] = {}
        if self._s.count_deals:
            for kind, field in (("CONTACT", "CONTACT_ID"), ("COMPANY", "COMPANY_ID")):
                owner = next((e for e in entities if e.kind == kind), None)
                if owner is not None:
                    jobs[kind] = self._open_deals(field, owner.id)
        if self._s.entity_fields and first.kind in ENTITY_GET:
            jobs["entity"] = self.call(ENTITY_GET[first.kind], {"id": first.id})
        done = await _run_all(jobs)

        deals: dict[str, dict[str, Any]] = {}
        for kind in ("CONTACT", "COMPANY"):
            deals.update(done.get(kind, {}))  # a deal of both the contact and the company counts once
        counts, delivery_today = self._count(deals)

        fields = done.get("entity")
        if fields is not None and not isinstance(fields, dict):
            raise CrmBadAnswer(f"{ENTITY_GET[first.kind]}: result is not an object")
        status, abc, vip = self._entity_fields(fields or {})

        assigned = str(first.assigned_by) if first.assigned_by is not None else None
        return build_record(
            client_id=f"{first.kind}:{first.id}",
            name=first.name,
            status=status,
            abc=abc,
            responsible=self._s.managers.get(assigned) if assigned else None,
            open_deals=counts["deal"],
            open_orders=counts["order"],
            open_claims=counts["claim"],
            delivery_today=delivery_today,
            vip=vip,
            extra={
                "bitrix_entity": first.kind,
                "bitrix_id": first.id,
                "bitrix_assigned_by": assigned,  # shows ops which Bitrix users are not mapped
                "responsible_timeman": first.timeman,  # OPENED / PAUSED / CLOSED ...
            },
        )

    async def lookup_company(self, company_id: str) -> CrmRecord | None:
        """The company with this Bitrix24 ID (digits); None for an ID that is not one."""
        if not (company_id.isascii() and company_id.isdigit() and len(company_id) <= 19):
            return None
        cid = int(company_id)
        select = ["ID", "TITLE", "ASSIGNED_BY_ID", *self._s.entity_fields.values()]
        found = await self.call(COMPANY_LIST, {"filter": {"ID": cid}, "select": select})
        if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
            raise CrmBadAnswer(f"{COMPANY_LIST}: result is not a list of companies")
        if not found:
            return None
        company = found[0]
        counts, delivery_today = self._count(await self._open_deals("COMPANY_ID", cid) if self._s.count_deals else {})
        status, abc, vip = self._entity_fields(company)
        assigned = _scalar(company.get("ASSIGNED_BY_ID"))
        assigned = assigned if assigned and assigned.isascii() and assigned.isdigit() and assigned != "0" else None
        title = company.get("TITLE")
        return build_record(
            client_id=f"COMPANY:{cid}",
            name=title if isinstance(title, str) else "",
            status=status,
            abc=abc,
            responsible=self._s.managers.get(assigned) if assigned else None,
            open_deals=counts["deal"],
            open_orders=counts["order"],
            open_claims=counts["claim"],
            delivery_today=delivery_today,
            vip=vip,
            extra={"bitrix_entity": "COMPANY", "bitrix_id": cid, "bitrix_assigned_by": assigned},
        )

    def _count(self, deals: dict[str, dict[str, Any]]) -> tuple[dict[str, int], bool]:
        """Open deals by kind (deal / order / claim), and whether one is delivered today."""
        counts = {"deal": 0, "order": 0, "claim": 0}
        delivery_today = False
        for deal in deals.values():
            counts[self._kind(deal)] += 1
            delivery_today = delivery_today or self._is_today(deal)
        return counts, delivery_today

    async def _open_deals(self, field: str, owner_id: int) -> dict[str, dict[str, Any]]:
        """Open deals of one contact/company by ID (the first page, 50, is plenty to route)."""
        open_filter = {"STAGE_SEMANTIC_ID": "P"} if self._s.open_deals_filter == "semantic" else {"CLOSED": "N"}
        select = ["ID", "CATEGORY_ID", "STAGE_ID"]
        if self._s.delivery_date_field:
            select.append(self._s.delivery_date_field)
        result = await self.call(DEAL_LIST, {
            "filter": {field: owner_id, **open_filter},
            "select": select,
            "order": {"ID": "DESC"},
        })
        if not isinstance(result, list) or not all(isinstance(d, dict) for d in result):
            raise CrmBadAnswer(f"{DEAL_LIST}: result is not a list of deals")
        return {str(d.get("ID")): d for d in result}

    def _kind(self, deal: dict[str, Any]) -> str:
        cat = _scalar(deal.get("CATEGORY_ID"))
        cat_id = int(cat) if cat and cat.isascii() and cat.isdigit() and len(cat) <= 19 else 0
        if cat_id in self._s.claim_categories:
            return "claim"
        if cat_id in self._s.order_categories:
            return "order"
        return "deal"

    def _is_today(self, deal: dict[str, Any]) -> bool:
        field = self._s.delivery_date_field
        raw = _scalar(deal.get(field)) if field else None
        if not raw:
            return False
        try:
            when = datetime.fromisoformat(raw)
            day = when.astimezone(self._tz).date() if when.tzinfo else when.date()
        except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+05:00 in our zone
            return False  # an empty or free-text user field is not an error worth failing on
        return day == self._today()

    def _entity_fields(self, fields: dict[str, Any]) -> tuple[str, str | None, bool]:
        names = self._s.entity_fields
        status = _scalar(fields.get(names["status"])) if "status" in names else None
        abc_raw = _scalar(fields.get(names["abc"])) if "abc" in names else None
        abc = self._s.abc_values.get(abc_raw, abc_raw) if abc_raw is not None else None
        vip_raw = _scalar(fields.get(names["vip"])) if "vip" in names else None
        return status or "", abc, vip_raw is not None and vip_raw.lower() in self._vip

    async def aclose(self) -> None:
        await self._session.aclose()


async def _run_all(jobs: dict[str, Any]) -> dict[str, Any]:
    """Await coroutines concurrently; the first failure cancels the rest and is re-raised as is."""
    if not jobs:
        return {}
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = {k: tg.create_task(c) for k, c in jobs.items()}
    except BaseExceptionGroup as group:
        crm = [e for e in group.exceptions if isinstance(e, CrmError)]
        raise (crm[0] if crm else group.exceptions[0]) from None
    return {k: t.result() for k, t in tasks.items()}
