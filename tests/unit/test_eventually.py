"""tests.support.eventually: the suite's one way to wait for another process."""
from __future__ import annotations

import asyncio

import pytest

from tests.support.eventually import eventually


class Counter:
    def __init__(self, holds_at: int) -> None:
        self.calls = 0
        self.holds_at = holds_at

    def value(self) -> int:
        self.calls += 1
        return self.calls if self.calls >= self.holds_at else 0

    def check(self) -> None:
        self.calls += 1
        assert self.calls >= self.holds_at, f"only {self.calls}"


async def test_returns_the_first_truthy_value():
    counter = Counter(holds_at=3)
    assert await eventually(counter.value, interval=0) == 3


async def test_an_assertion_function_holds_once_it_stops_raising():
    counter = Counter(holds_at=3)
    assert await eventually(counter.check, interval=0) is None
    assert counter.calls == 3


async def test_async_checks_and_arguments():
    async def equals(a: int, *, b: int) -> bool:
        await asyncio.sleep(0)
        return a == b

    assert await eventually(equals, 2, b=2) is True


async def test_timeout_names_the_check_and_chains_the_last_assertion():
    counter = Counter(holds_at=10**9)
    with pytest.raises(AssertionError, match=r"^waiting: did not hold within 0.05 s \(\d+ tries\); "
                                             r"last failure: only \d+") as raised:
        await eventually(counter.check, timeout=0.05, interval=0.01, message="waiting")
    assert isinstance(raised.value.__cause__, AssertionError)


async def test_timeout_reports_the_last_falsy_value():
    with pytest.raises(AssertionError, match=r"last value: \[\]"):
        await eventually(list, timeout=0.05, interval=0.01)


async def test_a_check_that_never_returns_is_bounded_too():
    with pytest.raises(AssertionError, match="the check never returned"):
        await eventually(asyncio.Event().wait, timeout=0.05)


async def test_other_errors_end_the_wait_at_once():
    def broken() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await eventually(broken, timeout=60)
