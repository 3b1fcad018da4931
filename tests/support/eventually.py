"""eventually(): wait for a condition by polling it, in the manner of wazo-calld's `until`.

The one way tests wait for something another process does (Asterisk, Caseline, SIPp):
never a fixed sleep.
"""
from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(check: Callable[..., T | Awaitable[T]], *args: Any, timeout: float = 10,
                     interval: float = 0.05, message: str | None = None, **kwargs: Any) -> T:
    """Call `check(*args, **kwargs)` (sync or async) until it holds; return its value.

    It holds when it returns without raising AssertionError and its value is not falsy
    (None counts as holding: an assertion function returns it). Any other exception ends
    the wait at once. After `timeout` seconds an AssertionError names the check (or
    `message`) and carries the last failed assertion (chained) or the last falsy value.
    A sync check runs on the event loop: keep it quick (files, not network).
    """
    tries = finished = 0
    last_error: AssertionError | None = None
    last_value: object = None
    try:
        async with asyncio.timeout(timeout) as bound:
            while True:
                tries += 1
                try:
                    value = check(*args, **kwargs)
                    if inspect.isawaitable(value):
                        value = await value
                except AssertionError as e:
                    finished += 1
                    last_error = e
                else:
                    finished += 1
                    if value is None or value:
                        return value
                    last_error, last_value = None, value
                await asyncio.sleep(interval)  # the poll interval
    except TimeoutError:
        if not bound.expired():
            raise  # the check's own timeout, not ours
    what = message or getattr(check, "__qualname__", repr(check))
    if last_error is not None:
        last = f"last failure: {last_error}"
    elif finished:
        last = f"last value: {last_value!r}"
    else:
        last = "the check never returned"
    raise AssertionError(f"{what}: did not hold within {timeout:g} s ({tries} tries); {last}") \
        from last_error
