"""Reading a request body without letting a client make us hold more than a bound."""
from __future__ import annotations

from aiohttp import web


async def read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than `limit` (read past the app's MAX_BODY)."""
    chunks, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
