"""Reading a server-sent events stream (GET /events/calls) with aiohttp, as the console does."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """(event type, parsed JSON data) for each event; comments (keepalives) skipped."""
    kind, data = "message", []
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)


async def next_event(events: AsyncIterator[tuple[str, Any]], kind: str, *, where=lambda data: True,
                     timeout: float = 5.0) -> Any:
    """The data of the next `kind` event that `where` accepts; others are skipped."""
    async with asyncio.timeout(timeout):
        async for got, data in events:
            if got == kind and where(data):
                return data
    raise AssertionError(f"the stream ended before a {kind} event")
