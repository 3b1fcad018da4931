"""Shared HTTP plumbing for the http and bitrix24 adapters: one request, a capped body, JSON.

Error details are built from status codes and exception *type names* only: aiohttp's
messages can carry the URL, and a Bitrix24 webhook URL embeds its token.
"""
from __future__ import annotations

import json
from typing import Any

import aiohttp

from ari_app.crm.base import CrmBadAnswer, CrmUnavailable

GATEWAY_DOWN = frozenset({502, 503, 504})  # a proxy in front of the CRM says it is not there


class SessionHolder:
    """Uses the app's ClientSession if given, else lazily creates (and later closes) its own."""

    def __init__(self, session: aiohttp.ClientSession | None) -> None:
        self._session = session
        self._owned = session is None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owned and self._session.closed):
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        if self._owned and self._session is not None and not self._session.closed:
            await self._session.close()


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    if resp.content_length is not None and resp.content_length > limit:
        raise CrmBadAnswer(f"answer larger than {limit} bytes")
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(16384):
        buf += chunk
        if len(buf) > limit:
            raise CrmBadAnswer(f"answer larger than {limit} bytes")
    return bytes(buf)


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    max_bytes: int,
    timeout_s: float,
) -> tuple[int, bytes]:
    """(status, body). Transport failures -> CrmUnavailable; oversized body -> CrmBadAnswer."""
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            json=json_body,
            allow_redirects=False,  # a redirect could carry our Authorization elsewhere
            raise_for_status=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            return resp.status, await _read_capped(resp, max_bytes)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
        # ValueError: aiohttp's InvalidURL and friends; TimeoutError: aiohttp's own timeout.
        raise CrmUnavailable(f"request failed ({type(e).__name__})") from None


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise CrmBadAnswer(f"not JSON ({type(e).__name__})") from None
