"""CRM adapters under hostile numbers and garbage answers, against a real in-process aiohttp
server that records every request it gets (raw path, query, body).

Claims:
- CrmService.facts never sends anything but a strict E.164 number to a CRM (SKIPPED instead);
- the HTTP adapter itself refuses anything else before a request is made, and an E.164
  number arrives URL-encoded exactly once, in the place the template says (path or query);
- the Bitrix24 adapter sends the number only inside its JSON body, to the fixed method URL;
- garbage answers (huge, deeply nested, wrong types, HTML, compressed bombs, broken bytes)
  become MALFORMED / ERROR / UNAVAILABLE facts, never an exception and never an adapter bug.
"""
from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from ari_app.core.models import CrmRecord, SourceStatus
from ari_app.crm.base import CrmBadAnswer, CrmError
from ari_app.crm.adapters.bitrix24 import Bitrix24Crm
from ari_app.crm.adapters.http import HttpCrm, record_from_json
from ari_app.crm.service import CrmService
from ari_app.config.crm_settings import Bitrix24Settings, HttpCrmSettings

from tests.support.hostile_inputs import (
    FUZZ,
    HOSTILE_CALLER_IDS,
    VALID_CALLER_IDS,
    Hostile,
    hostile_id,
)

E164_SAMPLES = [e for _, e in VALID_CALLER_IDS] + ["+1234567", "+123456789012345", "+8613800138000"]
WEBHOOK_SECRET = "w3bh00k-s3cr3t"


@dataclass
class Seen:
    method: str
    raw_path: str
    body: bytes


Answer = Callable[[web.Request], web.StreamResponse]


@dataclass
class FakeCrm:
    """A real HTTP server; `answer` decides the response, `seen` records the requests."""

    base: str
    seen: list[Seen] = field(default_factory=list)
    answer: Answer = field(default=lambda _: web.json_response({}, status=404))


@pytest.fixture
async def server() -> AsyncIterator[FakeCrm]:
    fake = FakeCrm("")

    async def handle(request: web.Request) -> web.StreamResponse:
        fake.seen.append(Seen(request.method, request.raw_path, await request.read()))
        response = fake.answer(request)
        if asyncio.iscoroutine(response):
            response = await response
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def http_crm(fake: FakeCrm, template: str = "/clients/{number}?src=caseline", **kw: Any) -> HttpCrm:
    return HttpCrm(HttpCrmSettings(url_template=fake.base + template, timeout_s=2, **kw), token="crm-t0ken")


def bitrix_crm(fake: FakeCrm, **kw: Any) -> Bitrix24Crm:
    settings = Bitrix24Settings(managers={"99": "mgr1"}, order_categories=[1], claim_categories=[2],
                                delivery_date_field="UF_DELIVERY",
                                entity_fields={"status": "STATUS_ID", "abc": "UF_ABC", "vip": "UF_VIP"},
                                abc_values={"45": "A"}, timeout_s=2, **kw)
    return Bitrix24Crm(settings, webhook_url=f"{fake.base}/rest/1/{WEBHOOK_SECRET}/",
                       today=lambda: date(2025, 3, 14))


def all_hostile_texts() -> list[str | None]:
    texts: list[str | None] = [None]
    for h in HOSTILE_CALLER_IDS:
        texts += [h.text, h.replaced]
    return texts


# -- numbers on their way to a CRM ---------------------------------------------------------------


async def test_facts_never_asks_a_crm_about_a_non_e164_number(server: FakeCrm) -> None:
    for adapter in (http_crm(server), bitrix_crm(server)):
        service = CrmService(adapter, budget_ms=2000)
        for text in all_hostile_texts():
            facts = await service.facts(text)
            assert facts.status is SourceStatus.SKIPPED, (text, facts)
        await service.aclose()
    assert server.seen == []


@pytest.mark.parametrize("hostile", HOSTILE_CALLER_IDS, ids=hostile_id)
async def test_http_adapter_refuses_non_e164_before_any_request(server: FakeCrm, hostile: Hostile) -> None:
    """Defence in depth: even called directly (a future caller that forgets the check), the
    adapter builds no URL from anything but strict E.164 ("..", "." would be resolved as
    path segments by the URL library: /clients/.. -> /)."""
    crm = http_crm(server)
    for text in (hostile.text, hostile.replaced, "..", ".", "%2e%2e"):
        with pytest.raises(ValueError):
            crm.url_for(text)
        with pytest.raises(ValueError):
            await crm.lookup(text)
    await crm.aclose()
    assert server.seen == []


@pytest.mark.parametrize("template", ["/clients/{number}?src=caseline", "/lookup?phone={number}&src=caseline",
                                      "/v1/{number}/card"])
async def test_e164_numbers_arrive_encoded_where_the_template_says(server: FakeCrm, template: str) -> None:
    crm = http_crm(server, template)
    for number in E164_SAMPLES:
        server.seen.clear()
        assert await crm.lookup(number) is None  # 404: not known
        [seen] = server.seen
        expected = template.replace("{number}", "%2B" + number[1:])
        assert seen.raw_path == expected, (seen.raw_path, expected)
        url = urlsplit(seen.raw_path)
        query = parse_qs(url.query, keep_blank_values=True)
        assert set(query) <= {"src", "phone"} and query.get("src") in (None, ["caseline"])
        if "phone" in query:
            assert query["phone"] == [number]
    await crm.aclose()


async def test_bitrix24_sends_the_number_only_in_its_json_body(server: FakeCrm) -> None:
    server.answer = lambda _: web.json_response({"result": []})
    crm = bitrix_crm(server)
    for number in E164_SAMPLES:
        server.seen.clear()
        assert await crm.lookup(number) is None
        [seen] = server.seen
        assert seen.method == "POST"
        assert seen.raw_path == f"/rest/1/{WEBHOOK_SECRET}/telephony.externalCall.searchCrmEntities"
        assert json.loads(seen.body) == {"PHONE_NUMBER": number}
    await crm.aclose()


# -- garbage answers ------------------------------------------------------------------------------

NEST = 100_000


def respond(body: bytes | str, status: int = 200, content_type: str = "application/json",
            **headers: str) -> Answer:
    data = body.encode() if isinstance(body, str) else body
    return lambda _: web.Response(body=data, status=status, headers={"Content-Type": content_type, **headers})


def gzip_bomb() -> Answer:
    bomb = gzip.compress(b'{"id": "' + b"0" * (20 * 1024 * 1024) + b'"}')  # 20 MB -> ~20 KB

    def answer(_: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    return answer


HTTP_GARBAGE: dict[str, tuple[Answer, set[SourceStatus]]] = {
    "huge": (respond('{"id": "' + "x" * 2_000_000 + '"}'), {SourceStatus.MALFORMED}),
    "huge_chunked": (lambda r: chunked(b"[" + b"1," * 1_000_000 + b"1]")(r), {SourceStatus.MALFORMED}),
    "gzip_bomb": (gzip_bomb(), {SourceStatus.MALFORMED}),
    "deep_list": (respond("[" * NEST + "]" * NEST), {SourceStatus.MALFORMED}),
    "deep_object": (respond('{"a":' * 5000 + "1" + "}" * 5000), {SourceStatus.MALFORMED}),
    "deep_extra": (respond('{"id": "c1", "extra": ' + '{"a":' * 900 + "1" + "}" * 900 + "}"),
                   {SourceStatus.OK}),  # nested extras are dropped, the record is fine
    "html_200": (respond("<html><body>Login</body></html>", content_type="text/html"), {SourceStatus.MALFORMED}),
    "html_500": (respond("<html>Internal error</html>", 500, "text/html"), {SourceStatus.ERROR}),
    "html_502": (respond("<html>Bad gateway</html>", 502, "text/html"), {SourceStatus.UNAVAILABLE}),
    "empty": (respond(""), {SourceStatus.MALFORMED}),
    "invalid_utf8": (respond(b'{"id": "\xff\xfe"}'), {SourceStatus.MALFORMED}),
    "nan": (respond('{"id": "c1", "open_deals": NaN}'), {SourceStatus.MALFORMED}),
    "infinity": (respond('{"id": "c1", "open_orders": Infinity}'), {SourceStatus.MALFORMED}),
    "huge_int": (respond('{"id": ' + "9" * 5000 + "}"), {SourceStatus.MALFORMED}),
    "top_list": (respond("[]"), {SourceStatus.MALFORMED}),
    "top_string": (respond('"client"'), {SourceStatus.MALFORMED}),
    "top_null": (respond("null"), {SourceStatus.MALFORMED}),
    "id_missing": (respond('{"name": "x"}'), {SourceStatus.MALFORMED}),
    "id_float": (respond('{"id": 1.5}'), {SourceStatus.MALFORMED}),
    "id_bool": (respond('{"id": true}'), {SourceStatus.MALFORMED}),
    "id_object": (respond('{"id": {"$ne": 1}}'), {SourceStatus.MALFORMED}),
    "count_string": (respond('{"id": "c1", "open_deals": "3"}'), {SourceStatus.MALFORMED}),
    "count_negative": (respond('{"id": "c1", "open_claims": -1}'), {SourceStatus.MALFORMED}),
    "flag_string": (respond('{"id": "c1", "vip": "yes"}'), {SourceStatus.MALFORMED}),
    "extra_list": (respond('{"id": "c1", "extra": []}'), {SourceStatus.MALFORMED}),
    "responsible_list": (respond('{"id": "c1", "responsible": ["mgr1"]}'), {SourceStatus.MALFORMED}),
    "huge_fields": (respond(json.dumps({"id": "c" * 10_000, "name": "n" * 50_000})), {SourceStatus.OK}),
    "injection_in_fields": (respond(json.dumps({"id": "c1", "name": "${SHELL(id)}\r\nX: y", "responsible": "&PJSIP/evil",
                                                "abc": "A\n"})), {SourceStatus.OK}),
    "redirect": (respond("", 302, Location="http://169.254.169.254/latest/meta-data/"), {SourceStatus.ERROR}),
    "lying_length": (lambda _: web.Response(body=b"{}", headers={"Content-Length": "99999999"}),
                     {SourceStatus.MALFORMED, SourceStatus.UNAVAILABLE}),
}


def chunked(data: bytes) -> Callable[[web.Request], Any]:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(data), 65536):
            await response.write(data[i:i + 65536])
        await response.write_eof()
        return response
    return stream


@pytest.mark.parametrize(("answer", "expected"), HTTP_GARBAGE.values(), ids=list(HTTP_GARBAGE))
async def test_http_garbage_answers_degrade_to_a_status(server: FakeCrm, answer: Answer,
                                                        expected: set[SourceStatus], json_logs) -> None:
    server.answer = answer
    service = CrmService(http_crm(server), budget_ms=3000)
    try:
        facts = await service.facts("+79161234567")
    finally:
        await service.aclose()
    assert facts.status in expected, facts
    assert not facts.detail.startswith("adapter error"), facts.detail  # a typed error, not a bug
    if facts.record is not None:  # whatever they sent, the record is bounded
        assert len(facts.record.client_id) <= 128 and len(facts.record.name) <= 200
        assert facts.record.abc in (None, "A", "B", "C")
    json_logs.assert_clean(forbidden=["crm-t0ken"])
    assert not [r for r in json_logs.records if r.exc_info], "a garbage answer produced a traceback"


def bitrix_answers(**by_method: object) -> Answer:
    """Answer per REST method (the last path segment); bytes/str as is, others as JSON."""
    def answer(request: web.Request) -> web.Response:
        method = request.path.rsplit("/", 1)[-1]
        value = by_method.get(method, {"result": {} if method.endswith(".get") else []})
        if isinstance(value, bytes | str):
            return respond(value)(request)
        return web.json_response(value)
    return answer


CONTACT = {"CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 651, "ASSIGNED_BY_ID": 99, "NAME": "John",
           "ASSIGNED_BY": {"ID": "99", "TIMEMAN_STATUS": "OPENED"}}
SEARCH = "telephony.externalCall.searchCrmEntities"
BITRIX_GARBAGE: dict[str, tuple[Answer, set[SourceStatus]]] = {
    "search_html": (bitrix_answers(**{SEARCH: "<html>maintenance</html>"}), {SourceStatus.MALFORMED}),
    "search_not_list": (bitrix_answers(**{SEARCH: {"result": "CONTACT"}}), {SourceStatus.MALFORMED}),
    "search_no_result": (bitrix_answers(**{SEARCH: {"total": 1}}), {SourceStatus.MALFORMED}),
    "search_items_not_objects": (bitrix_answers(**{SEARCH: {"result": [1, "x", None]}}), {SourceStatus.MALFORMED}),
    "entity_type_missing": (bitrix_answers(**{SEARCH: {"result": [{"CRM_ENTITY_ID": 1}]}}), {SourceStatus.MALFORMED}),
    "entity_id_superscript": (bitrix_answers(**{SEARCH: {"result": [{**CONTACT, "CRM_ENTITY_ID": "²"}]}}),
                              {SourceStatus.MALFORMED}),
    "entity_id_5000_digits": (bitrix_answers(**{SEARCH: {"result": [{**CONTACT, "CRM_ENTITY_ID": "9" * 5000}]}}),
                              {SourceStatus.MALFORMED}),
    "assigned_by_garbage": (bitrix_answers(**{SEARCH: {"result": [{**CONTACT, "ASSIGNED_BY_ID": {"a": 1}}]}}),
                            {SourceStatus.MALFORMED}),
    "error_nested": (bitrix_answers(**{SEARCH: {"error": {"deep": [1, 2]}, "error_description": None}}),
                     {SourceStatus.ERROR}),
    "error_injection": (bitrix_answers(**{SEARCH: {"error": "${SHELL(id)}\r\nX" + "e" * 5000}}), {SourceStatus.ERROR}),
    "deals_not_list": (bitrix_answers(**{SEARCH: {"result": [CONTACT]}, "crm.deal.list": {"result": {"ID": 1}}}),
                       {SourceStatus.MALFORMED}),
    "deals_garbage_fields": (bitrix_answers(**{SEARCH: {"result": [CONTACT]}, "crm.deal.list": {"result": [
        {"ID": {"x": 1}, "CATEGORY_ID": "²", "UF_DELIVERY": "0001-01-01T00:00:00+05:00"},
        {"ID": None, "CATEGORY_ID": ["9" * 5000], "UF_DELIVERY": "9999-12-31T23:59:59-05:00"},
        {"CATEGORY_ID": 1.5, "UF_DELIVERY": ["2025-03-14", 1]}]}}), {SourceStatus.OK}),
    "entity_not_object": (bitrix_answers(**{SEARCH: {"result": [CONTACT]}, "crm.contact.get": {"result": []}}),
                          {SourceStatus.MALFORMED}),
    "entity_garbage_fields": (bitrix_answers(**{SEARCH: {"result": [CONTACT]}, "crm.contact.get": {"result": {
        "STATUS_ID": {"a": 1}, "UF_ABC": [None], "UF_VIP": 1e308}}}), {SourceStatus.OK}),
    "deep_nesting": (bitrix_answers(**{SEARCH: '{"result": ' + "[" * NEST + "]" * NEST + "}"}),
                     {SourceStatus.MALFORMED}),
    "huge": (bitrix_answers(**{SEARCH: '{"result": "' + "x" * 2_000_000 + '"}'}), {SourceStatus.MALFORMED}),
}


@pytest.mark.parametrize(("answer", "expected"), BITRIX_GARBAGE.values(), ids=list(BITRIX_GARBAGE))
async def test_bitrix24_garbage_answers_degrade_to_a_status(server: FakeCrm, answer: Answer,
                                                            expected: set[SourceStatus], json_logs) -> None:
    server.answer = answer
    service = CrmService(bitrix_crm(server), budget_ms=3000)
    try:
        facts = await service.facts("+79161234567")
    finally:
        await service.aclose()
    assert facts.status in expected, facts
    assert not facts.detail.startswith("adapter error"), facts.detail
    # printable, bounded: the detail goes into decision reasons and log lines
    assert facts.detail.isascii() and facts.detail.isprintable() and len(facts.detail) < 300
    json_logs.assert_clean(forbidden=[WEBHOOK_SECRET])
    assert not [r for r in json_logs.records if r.exc_info], "a garbage answer produced a traceback"


async def test_a_crm_that_never_answers_costs_one_budget(server: FakeCrm) -> None:
    release = asyncio.Event()

    async def hang(_: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    server.answer = hang
    service = CrmService(http_crm(server), budget_ms=200)
    try:
        facts = await service.facts("+79161234567")
    finally:
        release.set()
        await service.aclose()
    assert facts.status is SourceStatus.TIMEOUT


# -- fuzzing the answer parsers ---------------------------------------------------------------------

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
                | st.sampled_from(["", "0", "²", "A", "a", " B ", "Y", "2025-03-14", "0001-01-01T00:00:00+05:00",
                                   "9999-12-31T23:59:59-05:00", "${SHELL(id)}", "\r\n", "9" * 30]))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
HTTP_KEYS = st.sampled_from(["id", "name", "status", "abc", "responsible", "open_deals", "open_orders",
                             "open_claims", "delivery_today", "vip", "extra"])
HTTP_DOCS = JSON | st.dictionaries(HTTP_KEYS, JSON, max_size=11)


@FUZZ
@given(HTTP_DOCS)
def test_http_answer_parser_returns_a_record_or_crm_bad_answer(doc: object) -> None:
    paths = HttpCrmSettings(url_template="https://crm.example/{number}").field_paths()
    try:
        record = record_from_json(doc, paths)
    except CrmBadAnswer:
        return
    assert isinstance(record, CrmRecord) and record.client_id


BITRIX_ENTITY = st.fixed_dictionaries({}, optional={
    "CRM_ENTITY_TYPE": st.sampled_from(["CONTACT", "COMPANY", "LEAD", "contact", "DEAL", ""]) | JSON,
    "CRM_ENTITY_ID": st.integers(-5, 10**20) | JSON, "ASSIGNED_BY_ID": st.sampled_from([99, "99", "0", 0, None]) | JSON,
    "NAME": JSON, "ASSIGNED_BY": JSON})
BITRIX_DEAL = st.fixed_dictionaries({}, optional={
    "ID": JSON, "CATEGORY_ID": st.sampled_from(["0", "1", "2", 1, "²"]) | JSON,
    "UF_DELIVERY": st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()) | JSON})
BITRIX_ENTITY_FIELDS = st.fixed_dictionaries({}, optional={"STATUS_ID": JSON, "UF_ABC": JSON, "UF_VIP": JSON})


def result(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """What `call` returns: usually the documented shape, sometimes anything."""
    return inner | JSON


@FUZZ
@given(search=result(st.lists(BITRIX_ENTITY | JSON, max_size=3)),
       deals=result(st.lists(BITRIX_DEAL | JSON, max_size=4)),
       entity=result(BITRIX_ENTITY_FIELDS))
def test_bitrix24_answer_parser_returns_a_record_or_a_crm_error(search: object, deals: object,
                                                              entity: object) -> None:
    """The whole lookup over arbitrary `result`s (the HTTP part is tested above)."""
    crm = Bitrix24Crm(Bitrix24Settings(managers={"99": "mgr1"}, order_categories=[1], claim_categories=[2],
                                       delivery_date_field="UF_DELIVERY",
                                       entity_fields={"status": "STATUS_ID", "abc": "UF_ABC", "vip": "UF_VIP"}),
                      webhook_url="https://portal.example/rest/1/x/", today=lambda: date(2025, 3, 14))
    answers = {SEARCH: search, "crm.deal.list": deals, "crm.contact.get": entity,
               "crm.company.get": entity, "crm.lead.get": entity}

    async def call(method: str, params: dict[str, Any]) -> object:
        return answers[method]

    crm.call = call  # type: ignore[method-assign]  # the parsing, without the wire
    try:
        record = asyncio.run(crm.lookup("+79161234567"))
    except CrmError:
        return
    assert record is None or isinstance(record, CrmRecord)
