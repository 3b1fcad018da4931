"""The `bitrix24` adapter against an in-process server answering Bitrix24's documented shapes."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ari_app.config.files import ConfigError
from ari_app.core.models import SourceStatus
from ari_app.crm import BITRIX24_WEBHOOK_ENV, CrmService, CrmSettings, build_crm
from ari_app.crm.base import CrmBadAnswer, CrmErrorAnswer, CrmUnavailable
from ari_app.crm.adapters.bitrix24 import Bitrix24Crm, check_webhook_url
from ari_app.config.crm_settings import Bitrix24Settings

NUMBER = "+79161234567"
SECRET = "x7k2secretwebhook"
SEARCH = "telephony.externalCall.searchCrmEntities"
TIME = {"start": 1772808159, "finish": 1772808159.39, "duration": 0.39, "processing": 0}


def assigned(user_id: str, timeman: str = "OPENED") -> dict[str, Any]:
    return {"ID": user_id, "TIMEMAN_STATUS": timeman, "USER_PHONE_INNER": None, "WORK_PHONE": None,
            "PERSONAL_PHONE": None, "PERSONAL_MOBILE": "19062195047"}


# The documented example answer of telephony.externalCall.searchCrmEntities.
FOUND = {
    "result": [
        {"CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 651, "ASSIGNED_BY_ID": 99, "NAME": "John Doe",
         "ASSIGNED_BY": assigned("99")},
        {"CRM_ENTITY_TYPE": "COMPANY", "CRM_ENTITY_ID": 643, "ASSIGNED_BY_ID": 99, "NAME": "Daisy LLC",
         "ASSIGNED_BY": assigned("99")},
    ],
    "time": TIME,
}
CONTACT_DEALS = {
    "result": [
        {"ID": "37", "CATEGORY_ID": "0", "STAGE_ID": "NEW", "UF_CRM_DELIVERY": "2025-03-14T10:00:00+03:00"},
        {"ID": "38", "CATEGORY_ID": "1", "STAGE_ID": "C1:NEW", "UF_CRM_DELIVERY": ""},
        {"ID": "39", "CATEGORY_ID": "2", "STAGE_ID": "C2:NEW", "UF_CRM_DELIVERY": None},
    ],
    "total": 3,
    "time": TIME,
}
COMPANY_DEALS = {  # deal 37 belongs to both: counted once
    "result": [
        {"ID": "37", "CATEGORY_ID": "0", "STAGE_ID": "NEW", "UF_CRM_DELIVERY": "2025-03-14T10:00:00+03:00"},
        {"ID": "40", "CATEGORY_ID": "0", "STAGE_ID": "NEW", "UF_CRM_DELIVERY": "2025-03-20"},
    ],
    "total": 2,
    "time": TIME,
}
CONTACT = {"result": {"ID": "651", "NAME": "John", "TYPE_ID": "CLIENT", "UF_CRM_ABC": "45",
                      "UF_CRM_VIP": "1", "ASSIGNED_BY_ID": "99"}, "time": TIME}
# crm.company.list's items, as selected (Bitrix24 sends ids and enum values as strings)
COMPANIES = {643: {"ID": "643", "TITLE": "Daisy LLC", "ASSIGNED_BY_ID": "99", "TYPE_ID": "CUSTOMER",
                   "UF_CRM_ABC": "46", "UF_CRM_VIP": "Y"}}


class FakeBitrix:
    """Answers per REST method; records (method, params) of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, tuple[int, Any]] = {
            SEARCH: (200, FOUND),
            "crm.contact.get": (200, CONTACT),
        }
        self.release = asyncio.Event()
        self.server: TestServer | None = None

    async def rest(self, request: web.Request) -> web.StreamResponse:
        assert request.match_info["secret"] == SECRET
        method = request.match_info["method"]
        params = await request.json()
        self.calls.append((method, params))
        if method == "crm.deal.list":
            owner = "CONTACT" if "CONTACT_ID" in params["filter"] else "COMPANY"
            status, doc = self.answers.get(f"crm.deal.list/{owner}", (200, CONTACT_DEALS if owner == "CONTACT" else COMPANY_DEALS))
        elif method == "crm.company.list" and method not in self.answers:
            found = [COMPANIES[i] for i in [params["filter"]["ID"]] if i in COMPANIES]
            status, doc = 200, {"result": found, "total": len(found), "time": TIME}
        else:
            status, doc = self.answers.get(method, (404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}))
        if doc == "hang":
            await self.release.wait()
        if isinstance(doc, bytes):
            return web.Response(body=doc, status=status, content_type="text/html")
        return web.json_response(doc, status=status)

    @property
    def webhook(self) -> str:
        assert self.server is not None
        return str(self.server.make_url(f"/rest/1/{SECRET}/"))

    def client(self, **kw: Any) -> Bitrix24Crm:
        settings = Bitrix24Settings(**{
            "managers": {"99": "mgr1"},
            "order_categories": [1],
            "claim_categories": [2],
            "delivery_date_field": "UF_CRM_DELIVERY",
            "entity_fields": {"status": "TYPE_ID", "abc": "UF_CRM_ABC", "vip": "UF_CRM_VIP"},
            "abc_values": {"45": "A", "46": "B"},
            **kw,
        })
        return Bitrix24Crm(settings, webhook_url=self.webhook, today=lambda: date(2025, 3, 14))

    def methods(self) -> list[str]:
        return sorted(m for m, _ in self.calls)


@pytest.fixture
async def bitrix() -> AsyncIterator[FakeBitrix]:
    fake = FakeBitrix()
    app = web.Application()
    app.router.add_post("/rest/1/{secret}/{method}", fake.rest)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    fake.release.set()
    await fake.server.close()


async def test_full_lookup(bitrix: FakeBitrix) -> None:
    crm = bitrix.client()
    record = await crm.lookup(NUMBER)
    await crm.aclose()
    assert record is not None
    assert (record.client_id, record.name, record.responsible) == ("CONTACT:651", "John Doe", "mgr1")
    assert (record.status, record.abc, record.vip) == ("CLIENT", "A", True)
    assert (record.open_deals, record.open_orders, record.open_claims) == (2, 1, 1)  # 37, 40 | 38 | 39
    assert record.most_urgent == "claim"
    assert record.delivery_today is True
    assert record.extra == {"bitrix_entity": "CONTACT", "bitrix_id": "651",
                            "bitrix_assigned_by": "99", "responsible_timeman": "OPENED"}

    assert bitrix.methods() == ["crm.contact.get", "crm.deal.list", "crm.deal.list", SEARCH]
    calls = dict((m, p) for m, p in bitrix.calls if m != "crm.deal.list")
    assert calls[SEARCH] == {"PHONE_NUMBER": NUMBER}
    assert calls["crm.contact.get"] == {"id": 651}
    deal_filters = sorted((p["filter"] for m, p in bitrix.calls if m == "crm.deal.list"), key=str)
    assert deal_filters == [
        {"COMPANY_ID": 643, "STAGE_SEMANTIC_ID": "P"},
        {"CONTACT_ID": 651, "STAGE_SEMANTIC_ID": "P"},
    ]
    deal_params = next(p for m, p in bitrix.calls if m == "crm.deal.list")
    assert deal_params["select"] == ["ID", "CATEGORY_ID", "STAGE_ID", "UF_CRM_DELIVERY"]


async def test_search_is_the_first_call(bitrix: FakeBitrix) -> None:
    crm = bitrix.client()
    await crm.lookup(NUMBER)
    await crm.aclose()
    assert bitrix.calls[0][0] == SEARCH


async def test_unknown_number_makes_one_call(bitrix: FakeBitrix) -> None:
    bitrix.answers[SEARCH] = (200, {"result": [], "time": TIME})
    crm = bitrix.client()
    assert await crm.lookup(NUMBER) is None
    await crm.aclose()
    assert bitrix.methods() == [SEARCH]


async def test_minimal_settings_lead_only(bitrix: FakeBitrix) -> None:
    bitrix.answers[SEARCH] = (200, {"result": [
        {"CRM_ENTITY_TYPE": "LEAD", "CRM_ENTITY_ID": "77", "ASSIGNED_BY_ID": "12", "NAME": "Lead",
         "ASSIGNED_BY": assigned("12", "PAUSED")},
    ]})
    crm = Bitrix24Crm(Bitrix24Settings(phone_format="digits"), webhook_url=bitrix.webhook)
    record = await crm.lookup(NUMBER)
    await crm.aclose()
    assert record is not None
    assert record.client_id == "LEAD:77" and record.responsible is None  # user 12 is not mapped
    assert record.extra["bitrix_assigned_by"] == "12" and record.extra["responsible_timeman"] == "PAUSED"
    assert (record.abc, record.vip, record.most_urgent) == (None, False, None)
    assert bitrix.calls == [(SEARCH, {"PHONE_NUMBER": "79161234567"})]  # leads have no deal filter here


async def test_closed_filter_and_no_deal_counting(bitrix: FakeBitrix) -> None:
    crm = bitrix.client(open_deals_filter="closed", entity_fields={})
    await crm.lookup(NUMBER)
    await crm.aclose()
    filters = [p["filter"] for m, p in bitrix.calls if m == "crm.deal.list"]
    assert {"CONTACT_ID": 651, "CLOSED": "N"} in filters
    bitrix.calls.clear()
    crm = bitrix.client(count_deals=False, entity_fields={})
    record = await crm.lookup(NUMBER)
    await crm.aclose()
    assert bitrix.methods() == [SEARCH] and record is not None and record.open_deals == 0


@pytest.mark.parametrize(
    ("answer", "error", "match"),
    [
        ((503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}), CrmErrorAnswer, "QUERY_LIMIT_EXCEEDED"),
        ((401, {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}), CrmErrorAnswer, "INVALID_CREDENTIALS"),
        ((401, {"error": "insufficient_scope", "error_description": "higher privileges"}), CrmErrorAnswer, "insufficient_scope"),
        ((403, {"error": "PORTAL_DELETED", "error_description": "Portal was deleted"}), CrmErrorAnswer, "PORTAL_DELETED"),
        ((400, {"error": "ERROR_CORE", "error_description": "PHONE_NUMBER is empty"}), CrmErrorAnswer, "ERROR_CORE"),
        ((200, {"error": "ERROR_CORE", "error_description": "CRM is not installed."}), CrmErrorAnswer, "ERROR_CORE"),
        ((502, b"<html>Bad Gateway</html>"), CrmUnavailable, "HTTP 502"),
        ((500, b"<html>oops</html>"), CrmErrorAnswer, "HTTP 500"),
        ((200, b"<html>login</html>"), CrmBadAnswer, "not JSON"),
        ((200, {"time": TIME}), CrmBadAnswer, "no result"),
        ((200, {"result": {"CONTACT": [1]}}), CrmBadAnswer, "not a list"),
        ((200, {"result": [{"CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": "x"}]}), CrmBadAnswer, "CRM_ENTITY_ID"),
        ((200, {"result": ["CONTACT"]}), CrmBadAnswer, "objects"),
    ],
)
async def test_search_errors(bitrix: FakeBitrix, answer: tuple[int, Any], error: type[Exception], match: str) -> None:
    bitrix.answers[SEARCH] = answer
    crm = bitrix.client()
    with pytest.raises(error, match=match) as info:
        await crm.lookup(NUMBER)
    await crm.aclose()
    assert SECRET not in str(info.value)
    if error is CrmUnavailable:
        assert not isinstance(info.value, CrmErrorAnswer)


async def test_deal_list_error_fails_the_lookup(bitrix: FakeBitrix) -> None:
    bitrix.answers["crm.deal.list/COMPANY"] = (400, {"error": "", "error_description": "Access denied"})
    crm = bitrix.client()
    with pytest.raises(CrmErrorAnswer, match="crm.deal.list: Access denied"):
        await crm.lookup(NUMBER)
    await crm.aclose()


async def test_deal_list_garbage_is_malformed(bitrix: FakeBitrix) -> None:
    bitrix.answers["crm.deal.list/CONTACT"] = (200, {"result": {"ID": "1"}})
    crm = bitrix.client()
    with pytest.raises(CrmBadAnswer, match="crm.deal.list"):
        await crm.lookup(NUMBER)
    await crm.aclose()


async def test_service_budget_and_statuses(bitrix: FakeBitrix) -> None:
    bitrix.answers["crm.deal.list/COMPANY"] = (200, "hang")
    svc = CrmService(bitrix.client(), budget_ms=50, cache_ttl_s=0)
    facts = await svc.facts(NUMBER)
    assert facts.status is SourceStatus.TIMEOUT
    bitrix.answers["crm.deal.list/COMPANY"] = (200, COMPANY_DEALS)
    bitrix.answers[SEARCH] = (503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
    facts = await svc.facts(NUMBER)
    assert facts.status is SourceStatus.ERROR and "QUERY_LIMIT_EXCEEDED" in facts.detail
    assert SECRET not in facts.detail
    await svc.aclose()


def test_webhook_url_checks() -> None:
    assert check_webhook_url("https://acme.bitrix24.ru/rest/1/abc") == "https://acme.bitrix24.ru/rest/1/abc/"
    assert check_webhook_url("http://127.0.0.1:8080/rest/1/abc/").endswith("/abc/")
    for bad in ("http://acme.bitrix24.ru/rest/1/abc/", "ftp://acme/rest/1/abc/", "https://acme.bitrix24.ru/api/",
                "https://acme.bitrix24.ru/rest/1/abc/?x=1", "not a url"):
        with pytest.raises(ValueError) as info:
            check_webhook_url(bad)
        assert "abc" not in str(info.value)


def test_build_crm_reads_the_webhook_from_env_only() -> None:
    settings = CrmSettings(adapter="bitrix24")
    with pytest.raises(ConfigError) as info:
        build_crm(settings, Path("."), env={})
    assert info.value.key == BITRIX24_WEBHOOK_ENV
    with pytest.raises(ConfigError) as info:
        build_crm(settings, Path("."), env={BITRIX24_WEBHOOK_ENV: f"http://acme.bitrix24.ru/rest/1/{SECRET}/"})
    assert info.value.key == BITRIX24_WEBHOOK_ENV and SECRET not in str(info.value)
    crm = build_crm(settings, Path("."), env={BITRIX24_WEBHOOK_ENV: f"https://acme.bitrix24.ru/rest/1/{SECRET}/"})
    assert isinstance(crm, Bitrix24Crm)
    assert SECRET not in repr(crm) and "acme.bitrix24.ru" in repr(crm)


# -- a company by its ID (a branch's parent in the legal-entity directory) ------------------


async def test_company_by_id(bitrix: FakeBitrix) -> None:
    crm = bitrix.client()
    record = await crm.lookup_company("643")
    await crm.aclose()
    assert record is not None
    assert (record.client_id, record.name, record.responsible) == ("COMPANY:643", "Daisy LLC", "mgr1")
    assert (record.status, record.abc, record.vip) == ("CUSTOMER", "B", True)
    assert (record.open_deals, record.delivery_today) == (2, True)  # deals 37 and 40 of the company
    assert record.extra == {"bitrix_entity": "COMPANY", "bitrix_id": "643", "bitrix_assigned_by": "99"}
    assert bitrix.methods() == ["crm.company.list", "crm.deal.list"]
    listed = next(p for m, p in bitrix.calls if m == "crm.company.list")
    assert listed == {"filter": {"ID": 643}, "select": ["ID", "TITLE", "ASSIGNED_BY_ID", "TYPE_ID", "UF_CRM_ABC",
                                                        "UF_CRM_VIP"]}
    deals = next(p for m, p in bitrix.calls if m == "crm.deal.list")
    assert deals["filter"] == {"COMPANY_ID": 643, "STAGE_SEMANTIC_ID": "P"}


async def test_unknown_company_is_one_call_and_a_non_id_none(bitrix: FakeBitrix) -> None:
    crm = bitrix.client(count_deals=False)
    assert await crm.lookup_company("644") is None
    assert bitrix.methods() == ["crm.company.list"]
    assert await crm.lookup_company("avtodom-kazan") is None  # not a Bitrix24 ID: nothing asked
    assert bitrix.methods() == ["crm.company.list"]
    await crm.aclose()


@pytest.mark.parametrize(("answer", "error", "match"), [
    ((200, {"result": {"ID": "643"}}), CrmBadAnswer, "crm.company.list: result is not a list"),
    ((401, {"error": "insufficient_scope", "error_description": "crm"}), CrmErrorAnswer, "insufficient_scope"),
])
async def test_company_list_errors(bitrix: FakeBitrix, answer: tuple[int, Any], error: type[Exception],
                                   match: str) -> None:
    bitrix.answers["crm.company.list"] = answer
    crm = bitrix.client()
    with pytest.raises(error, match=match):
        await crm.lookup_company("643")
    await crm.aclose()
