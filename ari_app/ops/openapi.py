"""GET /openapi.json: the ops API's OpenAPI 3.1 document, served without the token.

The document (openapi.json beside this module) is maintained by hand: its descriptions,
parameters and answers say more than a route table could. tests/unit/test_openapi.py keeps
it honest: every route the running API has is documented, every documented one exists, and
the document is valid OpenAPI. It holds no data (the same text ships in the package), so it
is as open as /healthz.
"""
from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

DOCUMENT = Path(__file__).with_name("openapi.json")
PATH = "/openapi.json"
_BODY = web.AppKey("openapi_body", bytes)


def load(path: Path = DOCUMENT) -> bytes:
    """The document's bytes; a file that is not JSON stops the start, not the first request."""
    raw = path.read_bytes()
    json.loads(raw)
    return raw


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_BODY], content_type="application/json", charset="utf-8")


def add_openapi_route(app: web.Application) -> None:
    app[_BODY] = load()
    app.router.add_get(PATH, _openapi)
