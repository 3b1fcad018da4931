"""Caseline's ops HTTP API as the lab runs it (127.0.0.1:8090, the lab's token)."""
from __future__ import annotations

from typing import Any

import aiohttp

from labkit import root as lab_root

OPS = "http://127.0.0.1:8090"


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {lab_root.lab_secrets()['CASELINE_OPS_TOKEN']}"}


async def ops_get(path: str) -> Any:
    """GET an authenticated ops endpoint: JSON, or text for /metrics."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{OPS}{path}", headers=auth()) as answer:
            assert answer.status == 200, f"GET {path}: {answer.status} {await answer.text()}"
            if answer.content_type == "application/json":
                return await answer.json()
            return await answer.text()
