"""The generic `http` adapter against real aiohttp servers on loopback."""
from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from ari_app.config.crm_settings import HttpCrmSettings, load_crm_settings
from ari_app.config.files import ConfigError
from ari_app.core.models import SourceStatus
from ari_app.crm import CrmService, CrmSettings, build_crm
from ari_app.crm.adapters.file import FileCrm
from ari_app.crm.adapters.http import HttpCrm
from ari_app.crm.base import CrmBadAnswer, CrmErrorAnswer, CrmUnavailable
from ari_app.crm.reference_server import make_app

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "clients.yaml"
NUMBER = "+79161234567"
TOKEN = "s3cr3t-token-value"
GOOD = {
    "id": "C-1", "name": "Alpha", "status": "active", "abc": "a", "responsible": "mgr1",
    "open_deals": 1, "open_orders": 2, "open_claims": 0, "delivery_today": True, "vip": False,
    "extra": {"city": "Moscow", "n": 3, "nested": {"x": 1}},
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeCrmServer:
    """A scriptable CRM: records every request, answers with `handler`."""

    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.release = asyncio.Event()  # hanging handlers wait on it; set at teardown
        self.handler: Handler = self.json(GOOD)
        self.server: TestServer | None = None

    @staticmethod
    def json(doc: object, status: int = 200) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(doc, status=status)

        return handler

    @staticmethod
    def raw(body: bytes, status: int = 200, content_type: str = "application/json") -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, status=status, content_type=content_type)

        return handler

    async def hang(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.json_response(GOOD)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        return await self.handler(request)

    def url(self, template: str = "/clients/{number}") -> str:
        assert self.server is not None
        return str(self.server.make_url("/")).rstrip("/") + template

    def client(self, template: str = "/clients/{number}", token: str | None = None, **kw: object) -> HttpCrm:
        return HttpCrm(HttpCrmSettings(url_template=self.url(template), **kw), token=token)  # type: ignore[arg-type]


@pytest.fixture
async def crm_server() -> AsyncIterator[FakeCrmServer]:
    fake = FakeCrmServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.dispatch)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    fake.release.set()
    await fake.server.close()


async def test_good_answer_and_request_shape(crm_server: FakeCrmServer) -> None:
    crm = crm_server.client(token=TOKEN, headers={"X-Tenant": "acme"})
    record = await crm.lookup(NUMBER)
    await crm.aclose()
    assert record is not None
    assert (record.client_id, record.name, record.abc, record.responsible) == ("C-1", "Alpha", "A", "mgr1")
    assert (record.open_deals, record.open_orders, record.most_urgent) == (1, 2, "order")
    assert record.delivery_today is True and record.vip is False
    assert record.extra == {"city": "Moscow", "n": "3"}  # nested values dropped
    req = crm_server.requests[0]
    assert req.method == "GET"
    assert req.raw_path == "/clients/%2B79161234567"  # URL-quoted on the wire
    assert req.match_info["tail"] == "clients/+79161234567"
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.headers["Accept"] == "application/json"
    assert req.headers["X-Tenant"] == "acme"


async def test_number_in_query_and_no_token(crm_server: FakeCrmServer) -> None:
    async with aiohttp.ClientSession() as session:
        crm = HttpCrm(HttpCrmSettings(url_template=crm_server.url("/api/find?phone={number}&v=2")), session=session)
        assert await crm.lookup(NUMBER) is not None
        await crm.aclose()  # not ours: must not close the app's session
        assert not session.closed
    req = crm_server.requests[0]
    assert req.query["phone"] == NUMBER  # "+" survived, not turned into a space
    assert "Authorization" not in req.headers


async def test_404_is_unknown(crm_server: FakeCrmServer) -> None:
    crm_server.handler = crm_server.json({"error": "not_found"}, status=404)
    crm = crm_server.client()
    assert await crm.lookup(NUMBER) is None
    await crm.aclose()


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, CrmErrorAnswer), (401, CrmErrorAnswer), (429, CrmErrorAnswer), (400, CrmErrorAnswer),
     (503, CrmUnavailable), (502, CrmUnavailable)],
)
async def test_error_statuses(crm_server: FakeCrmServer, status: int, error: type[Exception]) -> None:
    crm_server.handler = crm_server.raw(b"<html>oops</html>", status=status, content_type="text/html")
    crm = crm_server.client(token=TOKEN)
    with pytest.raises(error) as info:
        await crm.lookup(NUMBER)
    await crm.aclose()
    assert str(info.value) == f"HTTP {status}"
    if status in (502, 503):
        assert not isinstance(info.value, CrmErrorAnswer)


async def test_redirect_is_not_followed(crm_server: FakeCrmServer) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://elsewhere.invalid/steal")

    crm_server.handler = redirect
    crm = crm_server.client(token=TOKEN)
    with pytest.raises(CrmErrorAnswer, match="HTTP 302"):
        await crm.lookup(NUMBER)
    await crm.aclose()
    assert len(crm_server.requests) == 1


async def test_connection_refused_is_unavailable_without_secrets() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    crm = HttpCrm(HttpCrmSettings(url_template=f"http://127.0.0.1:{port}/secret-path/{{number}}"), token=TOKEN)
    with pytest.raises(CrmUnavailable) as info:
        await crm.lookup(NUMBER)
    await crm.aclose()
    assert not isinstance(info.value, CrmErrorAnswer)
    assert TOKEN not in str(info.value) and "secret-path" not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'"C-1"', "expected a JSON object"),
        (json.dumps({**GOOD, "open_deals": "2"}).encode(), "open_deals"),
        (json.dumps({**GOOD, "open_claims": -1}).encode(), "open_claims"),
        (json.dumps({**GOOD, "vip": "yes"}).encode(), "vip"),
        (json.dumps({**GOOD, "delivery_today": 1}).encode(), "delivery_today"),
        (json.dumps({**GOOD, "abc": 1}).encode(), "abc"),
        (json.dumps({**GOOD, "extra": ["a"]}).encode(), "extra"),
        (json.dumps({**GOOD, "id": None}).encode(), "client_id"),
        (json.dumps({**GOOD, "id": True}).encode(), "client_id"),
        (b"[" * 100_000 + b"]" * 100_000, "larger than|not JSON"),
    ],
)
async def test_malformed_answers(crm_server: FakeCrmServer, body: bytes, match: str) -> None:
    crm_server.handler = crm_server.raw(body)
    crm = crm_server.client(max_body_bytes=1024 * 1024)
    with pytest.raises(CrmBadAnswer, match=match):
        await crm.lookup(NUMBER)
    await crm.aclose()


async def test_huge_body_is_refused(crm_server: FakeCrmServer) -> None:
    crm_server.handler = crm_server.json({**GOOD, "name": "x" * 200_000})
    crm = crm_server.client(max_body_bytes=65536)
    with pytest.raises(CrmBadAnswer, match="larger than 65536 bytes"):
        await crm.lookup(NUMBER)
    await crm.aclose()


async def test_huge_chunked_body_without_length_is_refused(crm_server: FakeCrmServer) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(64):  # 4 MB if the client read it all
            await resp.write(b" " * 65536)
        return resp

    crm_server.handler = endless
    crm = crm_server.client(max_body_bytes=65536)
    with pytest.raises(CrmBadAnswer, match="larger than"):
        await crm.lookup(NUMBER)
    await crm.aclose()


async def test_lenient_values(crm_server: FakeCrmServer) -> None:
    crm_server.handler = crm_server.json(
        {"id": 1001, "abc": "Z", "responsible": 7, "name": None, "extra": None, "unknown_key": [1]}
    )
    crm = crm_server.client()
    record = await crm.lookup(NUMBER)
    await crm.aclose()
    assert record is not None
    assert (record.client_id, record.abc, record.responsible, record.name) == ("1001", None, "7", "")
    assert record.most_urgent is None and record.extra == {}


async def test_field_mapping(crm_server: FakeCrmServer) -> None:
    crm_server.handler = crm_server.json({
        "customer": {"uuid": "u-1", "segment": "B", "managers": [{"login": "mgr3"}]},
        "stats": {"tickets_open": 2},
    })
    crm = crm_server.client(fields={
        "client_id": "customer.uuid", "abc": "customer.segment",
        "responsible": "customer.managers.0.login", "open_claims": "stats.tickets_open",
    })
    record = await crm.lookup(NUMBER)
    await crm.aclose()
    assert record is not None
    assert (record.client_id, record.abc, record.responsible, record.open_claims) == ("u-1", "B", "mgr3", 2)
    assert record.most_urgent == "claim"


async def test_repr_hides_path_and_token(crm_server: FakeCrmServer) -> None:
    crm = crm_server.client("/x/{number}?api_key=hunter2", token=TOKEN)
    text = repr(crm)
    assert "hunter2" not in text and TOKEN not in text and "127.0.0.1" in text


# -- through the service -------------------------------------------------------------------


async def test_hanging_server_hits_the_budget(crm_server: FakeCrmServer) -> None:
    crm_server.handler = crm_server.hang
    svc = CrmService(crm_server.client(), budget_ms=50)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    facts = await svc.facts(NUMBER)
    assert facts.status is SourceStatus.TIMEOUT
    assert loop.time() - t0 < 1.0
    await svc.aclose()


async def test_service_statuses_over_http(crm_server: FakeCrmServer) -> None:
    svc = CrmService(crm_server.client(token=TOKEN), cache_ttl_s=0, unknown_ttl_s=0)
    assert (await svc.facts(NUMBER)).status is SourceStatus.OK
    crm_server.handler = crm_server.json({}, status=404)
    assert (await svc.facts(NUMBER)).status is SourceStatus.UNKNOWN
    crm_server.handler = crm_server.raw(b"boom", status=500)
    assert (await svc.facts(NUMBER)).status is SourceStatus.ERROR
    crm_server.handler = crm_server.raw(b"", status=503)
    assert (await svc.facts(NUMBER)).status is SourceStatus.UNAVAILABLE
    crm_server.handler = crm_server.raw(b"garbage")
    facts = await svc.facts(NUMBER)
    assert facts.status is SourceStatus.MALFORMED and TOKEN not in facts.detail
    await svc.aclose()


# -- the reference server -------------------------------------------------------------------


def template(server: TestServer) -> str:
    return str(server.make_url("/")).rstrip("/") + "/clients/{number}"


@pytest.fixture
async def reference() -> AsyncIterator[TestServer]:
    server = TestServer(make_app(FileCrm(SAMPLE), token=TOKEN), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_reference_server_round_trip(reference: TestServer) -> None:
    settings = CrmSettings(adapter="http", http={"url_template": template(reference)})
    crm = build_crm(settings, SAMPLE.parent, env={"CASELINE_CRM_TOKEN": TOKEN})
    assert isinstance(crm, HttpCrm)
    direct = FileCrm(SAMPLE)
    for number in direct._index.numbers:
        assert await crm.lookup(number) == await direct.lookup(number)
    assert await crm.lookup("+79990000000") is None
    await crm.aclose()


async def test_reference_server_checks_token_and_number(reference: TestServer) -> None:
    crm = HttpCrm(HttpCrmSettings(url_template=template(reference)), token="wrong")
    with pytest.raises(CrmErrorAnswer, match="HTTP 401"):
        await crm.lookup(NUMBER)
    await crm.aclose()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        async with session.get(reference.make_url("/clients/89161234567")) as resp:
            assert resp.status == 400
        async with session.get(reference.make_url("/healthz")) as resp:
            assert (await resp.json())["numbers"] > 0


@pytest.mark.parametrize("header", [b"Bearer caf\xe9", b"\xff\xfe", b"Bearer " + TOKEN.encode() + b"\xe9"])
async def test_reference_server_answers_401_to_a_non_utf8_authorization(reference: TestServer,
                                                                      header: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", reference.port)
    try:
        writer.write(b"GET /clients/%2B79161234567 HTTP/1.1\r\nHost: crm\r\nAuthorization: " + header
                     + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(5):
            status = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    assert status.startswith(b"HTTP/1.1 401"), status


# -- plain http carries the bearer token in clear: only to loopback -----------------------


@pytest.mark.parametrize("url", ["http://crm.example.com/clients/{number}", "http://10.0.0.5:8085/{number}",
                                 "http://[2001:db8::1]/c/{number}", "http://127.0.0.1.evil.example/{number}"])
def test_http_crm_refuses_plain_http_to_another_host(url: str) -> None:
    with pytest.raises(ValidationError, match="must use https"):
        HttpCrmSettings(url_template=url)


@pytest.mark.parametrize("url", ["https://crm.example.com/clients/{number}", "http://127.0.0.1:8085/{number}",
                                 "http://localhost/{number}", "http://[::1]:8085/{number}",
                                 "http://127.0.0.2/{number}"])
def test_http_crm_accepts_https_and_loopback_http(url: str) -> None:
    assert HttpCrmSettings(url_template=url).url_template == url


def test_a_plain_http_crm_in_the_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text("adapter: http\nhttp: {url_template: 'http://crm.example.com/clients/{number}'}\n")
    with pytest.raises(ConfigError, match=r"http\.url_template: .*must use https"):
        load_crm_settings(path)


async def test_loopback_http_still_carries_the_token(crm_server: FakeCrmServer) -> None:
    assert crm_server.url().startswith("http://127.0.0.1:")
    crm = crm_server.client(token=TOKEN)
    try:
        assert (await crm.lookup(NUMBER)).client_id == "C-1"  # type: ignore[union-attr]
    finally:
        await crm.aclose()
    assert crm_server.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"


# -- companies: GET company_url_template ----------------------------------------------------


async def test_company_by_id_and_request_shape(crm_server: FakeCrmServer) -> None:
    crm = crm_server.client(token=TOKEN, company_url_template=crm_server.url("/companies/{company_id}"))
    record = await crm.lookup_company("C-2001")
    await crm.aclose()
    assert record is not None and (record.client_id, record.responsible) == ("C-1", "mgr1")
    req = crm_server.requests[0]
    assert (req.method, req.raw_path) == ("GET", "/companies/C-2001")
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_company_404_is_unknown_and_errors_are_errors(crm_server: FakeCrmServer) -> None:
    crm = crm_server.client(company_url_template=crm_server.url("/companies/{company_id}"))
    crm_server.handler = crm_server.json({"error": "not_found"}, status=404)
    assert await crm.lookup_company("C-9") is None
    crm_server.handler = crm_server.json({"error": "boom"}, status=500)
    with pytest.raises(CrmErrorAnswer, match="HTTP 500"):
        await crm.lookup_company("C-9")
    with pytest.raises(ValueError):
        crm.company_url_for("../admin")  # never sent: not a directory id
    await crm.aclose()


async def test_without_a_company_template_companies_are_not_asked(crm_server: FakeCrmServer) -> None:
    crm = crm_server.client()
    assert await crm.lookup_company("C-2001") is None
    await crm.aclose()
    assert crm_server.requests == []


@pytest.mark.parametrize(("url", "reason"), [
    ("https://crm.example.com/companies/", "must contain {company_id} exactly once"),
    ("http://crm.example.com/companies/{company_id}", "must use https"),
    ("https://crm.example.com/{company_id}/{number}", "only the {company_id} placeholder"),
])
def test_company_template_follows_the_url_rules(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        HttpCrmSettings(url_template="https://crm.example.com/clients/{number}", company_url_template=url)


async def test_reference_server_serves_companies_by_id(reference: TestServer) -> None:
    base = str(reference.make_url("/")).rstrip("/")
    settings = CrmSettings(adapter="http", http={"url_template": template(reference),
                                                  "company_url_template": base + "/companies/{company_id}"})
    crm = build_crm(settings, SAMPLE.parent, env={"CASELINE_CRM_TOKEN": TOKEN})
    assert isinstance(crm, HttpCrm)
    direct = FileCrm(SAMPLE)
    company = await crm.lookup_company("C-2001")
    assert company is not None and company == await direct.lookup_company("C-2001")
    assert (company.name, company.responsible) == ("Avtodom Holding", "mgr1")
    assert await crm.lookup_company("C-0000") is None
    await crm.aclose()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        async with session.get(reference.make_url("/companies/%2E%2Eevil")) as resp:
            assert resp.status == 400 and (await resp.json()) == {"error": "bad_company_id"}
    async with aiohttp.ClientSession() as session:
        async with session.get(reference.make_url("/companies/C-2001")) as resp:
            assert resp.status == 401
