"""Callback requests for the ops API (GET/POST /callbacks), over the store and the router;
wired in ari_app.main. The FastAGI front files its own: record/agi_calls.py."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ari_app.core.numbers import mask, normalize
from ari_app.ops.callbacks_api import CallbackHooks
from ari_app.record.callbacks import CallbackFiler, CallbackStore, holder_for
from ari_app.router import Router

log = logging.getLogger("caseline.record.callbacks")

Dial = Callable[[str], Awaitable[tuple[int, Mapping[str, Any]]]]


def callback_hooks(store: CallbackStore, filer: CallbackFiler, router: Router, *, region: str,
                   mask_numbers: bool, dial: Dial | None = None,
                   on_filed: Callable[[], None] = lambda: None) -> CallbackHooks:
    async def listing(limit: int) -> list[Mapping[str, Any]]:
        now = filer.clock.now()
        return [r.as_dict(now, mask_numbers=mask_numbers) for r in await store.listing(limit)]

    async def file(number: str, reason: str) -> Mapping[str, Any]:
        normalized = normalize(number, region)  # validated like a caller ID
        if normalized is None:
            return {"ok": False, "error": "number: not a phone number"}
        # who they are, as if they called now: the holder to ring first and their priority
        routed = await router.route(normalized)
        req = filer.new(normalized, holder=holder_for(routed.snapshot.policy, routed.profile),
                        reason=f"api: {reason}" if reason else "api", priority=routed.decision.priority)
        open_id = await store.file(req)  # at once, not buffered: the form wants the answer
        found = await filer.existing(req, open_id)
        if open_id == req.id:
            log.info("callback request %s for %s filed over the ops API", req.id, mask(normalized))
            on_filed()
        return {"ok": True, "created": open_id == req.id,
                "callback": found.as_dict(filer.clock.now(), mask_numbers=mask_numbers)}

    return CallbackHooks(listing=listing, file=file, dial=dial)
