"""GET/POST /callbacks and POST /callbacks/{id}/dial on a real aiohttp server and client, over
a real Redis store and the real router (shipped routing.yaml, a CRM of a few clients)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from ari_app.config.callback_settings import CallbackSettings
from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig
from ari_app.core.clock import FixedClock
from ari_app.history.store import MemoryHistoryStore
from ari_app.ops.api import OpsServer, create_app
from ari_app.ops.metrics import Metrics
from ari_app.record.callback_api import callback_hooks
from ari_app.record.callbacks import CallbackFiler, CallbackStore
from ari_app.router import Router
from tests.support.fake_world import A_CLIENT, NEW_CALLER, NOW, crm

CONFIG = Path(__file__).resolve().parents[2] / "config"
TOKEN = "cb-ops-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    store: CallbackStore
    dialled: list[str] = field(default_factory=list)
    filed: int = 0

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        kwargs.setdefault("headers", AUTH)
        async with self.http.request(method, self.url + path, **kwargs) as answer:
            return answer.status, await answer.json()


@pytest.fixture
async def api(redis: Redis) -> AsyncIterator[Api]:
    store = CallbackStore(redis)
    config = LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml")
    router = Router(config=config, history=MemoryHistoryStore(), crm=crm, clock=FixedClock(NOW),
                    windows=HistorySettings().windows(), history_budget_s=1.0, crm_budget_s=1.0,
                    default_region="RU")
    filer = CallbackFiler(store, CallbackSettings(), clock=FixedClock(NOW))
    async with aiohttp.ClientSession() as http:
        state = Api("", http, store)

        async def dial(request_id: str) -> tuple[int, Mapping[str, Any]]:
            state.dialled.append(request_id)
            return 202, {"ok": True, "id": request_id, "status": "dialling", "person": "mgr1"}

        def filed() -> None:
            state.filed += 1

        hooks = callback_hooks(store, filer, router, region="RU", mask_numbers=False, dial=dial,
                               on_filed=filed)
        app = create_app(token=TOKEN, metrics=Metrics(), checks={}, reload=_nothing,
                         live_calls=list, invalidate=_nothing, callbacks=hooks)
        server = OpsServer(app, port=0)
        await server.start()
        state.url = f"http://127.0.0.1:{server.port}"
        try:
            yield state
        finally:
            await server.close()


async def _nothing(*_: object) -> None:
    return None


@pytest.mark.parametrize(("method", "path"), [("GET", "/callbacks"), ("POST", "/callbacks"),
                                              ("POST", "/callbacks/abc/dial")])
async def test_callbacks_need_the_token(api: Api, method: str, path: str) -> None:
    status, _ = await api.request(method, path, headers={}, json={"number": A_CLIENT})
    assert status == 401
    assert await api.store.listing() == [] and api.dialled == []


async def test_a_website_form_files_a_request_for_the_case_holder(api: Api) -> None:
    status, body = await api.request("POST", "/callbacks", json={"number": "8 916 123-45-67",
                                                                 "reason": "website form"})
    assert status == 201 and body["ok"] and body["created"]
    cb = body["callback"]
    # normalised like a caller ID; the holder and priority the router gives this client now
    assert (cb["number"], cb["holder"], cb["priority"], cb["status"]) == (A_CLIENT, "mgr1", 70, "open")
    assert cb["reason"] == "api: website form"
    assert api.filed == 1  # the dialler is woken

    again, repeat = await api.request("POST", "/callbacks", json={"number": A_CLIENT})
    assert again == 200 and repeat["created"] is False and repeat["callback"]["id"] == cb["id"]

    status, new = await api.request("POST", "/callbacks", json={"number": NEW_CALLER})
    assert status == 201 and new["callback"]["holder"] == ""  # nobody's client: the operators

    status, listed = await api.request("GET", "/callbacks")
    assert status == 200 and listed["count"] == 2
    assert {c["id"] for c in listed["callbacks"]} == {new["callback"]["id"], cb["id"]}  # filed at one NOW
    status, listed = await api.request("GET", "/callbacks?status=done")
    assert (status, listed) == (200, {"callbacks": [], "count": 0})


@pytest.mark.parametrize("body", [
    {"number": "anonymous"}, {"number": "12"}, {"number": "+7916*1234567"}, {"number": "&PJSIP/x"},
])
async def test_a_number_that_is_not_a_phone_number_is_refused(api: Api, body: dict) -> None:
    status, answer = await api.request("POST", "/callbacks", json=body)
    assert (status, answer) == (400, {"ok": False, "error": "number: not a phone number"})
    assert await api.store.listing() == []


@pytest.mark.parametrize("body", [
    [], {"reason": "x"}, {"number": 79161234567}, {"number": A_CLIENT, "holder": "mgr2"},
    {"number": A_CLIENT, "reason": "x" * 201}, {"number": "+7916\n1234567"}, {"number": ""},
])
async def test_a_malformed_body_is_refused(api: Api, body: object) -> None:
    status, answer = await api.request("POST", "/callbacks", json=body)
    assert status == 400 and "number" in answer["error"]


async def test_not_json_is_refused(api: Api) -> None:
    status, answer = await api.request("POST", "/callbacks", data=b"number=+79161234567",
                                       headers={**AUTH, "Content-Type": "application/json"})
    assert (status, answer) == (400, {"error": "body is not valid JSON"})


@pytest.mark.parametrize("query", ["status=closed", "limit=0", "limit=x", "limit=1001"])
async def test_a_bad_listing_query_is_refused(api: Api, query: str) -> None:
    status, _ = await api.request("GET", f"/callbacks?{query}")
    assert status == 400


async def test_dial_asks_the_dialler(api: Api) -> None:
    status, answer = await api.request("POST", "/callbacks/3fa9c0d2e1/dial")
    assert (status, answer["status"]) == (202, "dialling")
    assert api.dialled == ["3fa9c0d2e1"]
    status, _ = await api.request("POST", "/callbacks/..%2F..%2Fx/dial")
    assert status == 404 and api.dialled == ["3fa9c0d2e1"]
