"""A reference CRM implementing our generic HTTP contract (docs/crm-http-contract.md).

It serves a client directory YAML (the same format as the `file` adapter), for the docker
lab, for integrators who want a working example, and for our own tests.

    python -m ari_app.crm.reference_server --clients config/clients.yaml --port 8085

GET /clients/{number} finds a client by number, GET /companies/{company_id} by its id.

If CASELINE_CRM_TOKEN is set, requests must carry `Authorization: Bearer <token>`.
SIGHUP reloads the directory (a broken file keeps the old one).
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from ari_app.config.crm_settings import TOKEN_ENV
from ari_app.config.files import ConfigError
from ari_app.core.models import CrmRecord
from ari_app.core.numbers import is_e164
from ari_app.crm.adapters.file import FileCrm
from ari_app.crm.base import COMPANY_ID_RE

log = logging.getLogger("caseline.crm.reference")

CRM_KEY = web.AppKey("crm", FileCrm)
TOKEN_KEY = web.AppKey("token", str)


def record_to_json(record: CrmRecord) -> dict[str, Any]:
    """A record in the contract's default shape."""
    return {
        "id": record.client_id,
        "name": record.name,
        "status": record.status,
        "abc": record.abc,
        "responsible": record.responsible,
        "open_deals": record.open_deals,
        "open_orders": record.open_orders,
        "open_claims": record.open_claims,
        "delivery_today": record.delivery_today,
        "vip": record.vip,
        "extra": dict(record.extra),
    }


def _error(status: int, code: str) -> web.Response:
    return web.json_response({"error": code}, status=status)


def _authorized(request: web.Request) -> bool:
    token = request.app[TOKEN_KEY]
    if not token:
        return True
    # aiohttp keeps non-UTF-8 header bytes as surrogates: "surrogatepass" encodes any str,
    # so a Latin-1 byte is a wrong token (401), not an encoding error (500)
    given = request.headers.get("Authorization", "").encode("utf-8", "surrogatepass")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


def _answer(record: CrmRecord | None) -> web.Response:
    return _error(404, "not_found") if record is None else web.json_response(record_to_json(record))


async def _client(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _error(401, "unauthorized")
    number = request.match_info["number"]  # already percent-decoded: "%2B7..." -> "+7..."
    if not is_e164(number):
        return _error(400, "bad_number")
    return _answer(await request.app[CRM_KEY].lookup(number))


async def _company(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _error(401, "unauthorized")
    company_id = request.match_info["company_id"]
    if not COMPANY_ID_RE.fullmatch(company_id):
        return _error(400, "bad_company_id")
    return _answer(await request.app[CRM_KEY].lookup_company(company_id))


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "numbers": len(request.app[CRM_KEY])})


def make_app(crm: FileCrm, token: str | None = None) -> web.Application:
    app = web.Application()
    app[CRM_KEY] = crm
    app[TOKEN_KEY] = token or ""
    app.router.add_get("/clients/{number}", _client)
    app.router.add_get("/companies/{company_id}", _company)
    app.router.add_get("/healthz", _health)
    return app


def _reload(crm: FileCrm) -> None:
    try:
        log.info("reloaded %s: %d numbers", crm.path, crm.reload())
    except ConfigError as e:
        log.error("reload failed, keeping the previous directory: %s", e)


async def _serve(crm: FileCrm, host: str, port: int, token: str | None) -> None:
    runner = web.AppRunner(make_app(crm, token))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("serving %d numbers from %s on http://%s:%d/clients/{number}", len(crm), crm.path, host, port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, _reload, crm)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=Path, default=Path("config/clients.yaml"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--region", default="RU", help="default region for numbers without +")
    parser.add_argument("--timezone", default="Europe/Moscow", help="what 'delivery today' means")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        crm = FileCrm(args.clients, default_region=args.region, timezone=args.timezone)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    asyncio.run(_serve(crm, args.host, args.port, os.environ.get(TOKEN_ENV) or None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
