"""A user's trial: a plain def where an async function is needed, a cancelled flow, a step's messages."""

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any
from unittest.mock import AsyncMock

import pytest

from go_async import Pool, call, group, prepend, step

ran: list[int] = []


def charge(order: int) -> int:  # a plain def, given by mistake
    ran.append(order)
    return order


def add_charge(order: int, extra: int) -> int:
    ran.append(order + extra)
    return order + extra


class Charger:
    def __call__(self, order: int) -> int:
        ran.append(order)
        return order

    def method(self, order: int) -> int:
        ran.append(order)
        return order


class AsyncCharger:
    async def __call__(self, order: int) -> int:
        return order


async def ident(value: int) -> int:
    return value


async def scaled(value: int, by: int) -> int:
    return value * by


SYNC: list[Any] = [charge, functools.partial(add_charge, extra=1), Charger(), Charger().method]


@pytest.mark.parametrize("fn", SYNC, ids=["def", "partial", "object", "method"])
def test_a_plain_def_is_refused_at_the_call_and_never_run(fn: Any) -> None:
    ran.clear()
    named = re.escape(repr(fn))
    with pytest.raises(TypeError, match=rf"Pool.map\(fn, inputs\): fn must be an async function.*{named}"):
        Pool(limit=2).with_retry(3, 0).map(fn, [1, 2])

    async def main() -> None:
        with pytest.raises(TypeError, match=r"Pool.amap\(fn, inputs\): fn must be an async function"):
            await Pool().amap(fn, [1])
        with pytest.raises(TypeError, match=r"Pool.as_completed\(fn, inputs\): fn must be an async"):
            Pool().as_completed(fn, [1])
        async with Pool() as pool:
            with pytest.raises(TypeError, match=r"RunningPool.map\(fn, inputs\): fn must be an async"):
                await pool.map(fn, [1])
            with pytest.raises(TypeError, match=r"RunningPool.amap\(fn, inputs\): fn must be an async"):
                await pool.amap(fn, [1])
            with pytest.raises(TypeError, match=r"RunningPool.as_completed\(fn, inputs\): fn must be"):
                pool.as_completed(fn, [1])

    asyncio.run(main())
    with pytest.raises(
        TypeError, match=rf"step\(fn\): fn must be an async function \(async def\), got {named}"
    ):
        step(fn)
    with pytest.raises(TypeError, match=r"call\(fn\): fn must be an async function"):
        call(fn, 1)
    with pytest.raises(TypeError, match=r"prepend\(fn\): fn must be an async function"):
        prepend(fn)
    assert ran == []


def test_what_gives_an_awaitable_is_still_accepted() -> None:
    async def main() -> None:
        def awaiting(value: int) -> Awaitable[int]:
            return asyncio.sleep(0, value)

        fns: list[Callable[[int], Awaitable[int]]] = [
            ident,
            lambda x: asyncio.sleep(0, x),
            functools.partial(scaled, by=1),
            AsyncCharger(),
            functools.wraps(ident)(awaiting),
            AsyncMock(side_effect=ident),  # its class's __call__ is a def, but it is marked async
        ]
        for fn in fns:
            assert await Pool().amap(fn, [1, 2]) == [1, 2]
            assert await step(fn).arun(3) == 3
            assert await prepend(fn).arun(3) == 3
            assert await call(fn, 4).arun(None) == 4

    asyncio.run(main())


def test_a_map_whose_fn_returns_no_awaitable_says_fn_must_be_async() -> None:
    async def main() -> None:
        with pytest.raises(ExceptionGroup) as raised:
            await Pool().amap(lambda x: x * 10, [1])  # type: ignore[arg-type, return-value]
        (error,) = raised.value.exceptions
        assert isinstance(error, TypeError)
        assert re.fullmatch(
            r"fn must be an async function: .*<lambda> returned 10, not an awaitable", str(error)
        )

    asyncio.run(main())


def test_cancelling_a_flow_on_a_running_pool_cancels_its_running_steps() -> None:
    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()
        ended: list[int] = []

        async def first(value: int) -> int:
            return value

        async def hold(value: int) -> int:
            try:
                started.set()
                await release.wait()
                return value
            finally:
                ended.append(value)

        async with Pool(limit=4) as pool:
            try:
                for flow in (step(first).then(step(hold)), step(first).then(step(hold)).then(step(hold))):
                    started.clear()
                    ended.clear()
                    run = asyncio.create_task(flow.arun(1, pool))
                    await started.wait()
                    run.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await run
                    assert ended == [1]  # the running step was cancelled and has unwound; no later step ran
                    assert pool.stats().running == 0
            finally:
                release.set()  # without the fix, let the steps end, so the block does too

    asyncio.run(main())


def test_cancelling_a_flow_cancels_every_running_member_of_its_group() -> None:
    async def main() -> None:
        started = asyncio.Semaphore(0)
        release = asyncio.Event()
        ended: list[int] = []

        async def hold(value: int) -> int:
            try:
                started.release()
                await release.wait()
                return value
            finally:
                ended.append(value)

        async with Pool(limit=4) as pool:
            try:
                run = asyncio.create_task(step(ident).then(group(step(hold), step(hold))).arun(2, pool))
                await started.acquire()
                await started.acquire()
                run.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await run
                assert ended == [2, 2]
                assert pool.stats().running == 0
            finally:
                release.set()

    asyncio.run(main())


def test_a_steps_options_name_the_steps_methods() -> None:
    with pytest.raises(ValueError, match=r"^Step.with_retry: attempts must be an int >= 1, got 0"):
        step(ident).with_retry(0)
    with pytest.raises(ValueError, match=r"^Step.with_timeout: seconds must be"):
        step(ident).with_timeout(-1)
    with pytest.raises(TypeError, match=r"^Step.with_name: name must be a str, got 3"):
        step(ident).with_name(3)  # type: ignore[arg-type]
    assert repr(step(ident).with_retry(2, 0).with_timeout(1).with_name("fetch")) == "Flow(fetch)"
