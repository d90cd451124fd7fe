"""Results without drains: map, amap and as_completed."""

import asyncio
import re
from contextlib import aclosing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from go_async import Pool, WaitLog


async def square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


async def fails_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1000, 1000), max_size=60), st.one_of(st.none(), st.integers(1, 8)))
def test_map_returns_every_result_in_input_order(inputs: list[int], limit: int | None) -> None:
    """Whatever the limit and however the calls interleave, result i is fn(input i)."""

    async def uneven(x: int) -> int:
        for _ in range(x % 3):
            await asyncio.sleep(0)
        return x * 2

    assert Pool(limit).map(uneven, inputs) == [x * 2 for x in inputs]


def test_map_takes_a_generator_and_amap_runs_in_async_code() -> None:
    """Inputs may be any iterable; amap is the async twin."""
    assert Pool(limit=3).map(square, (n for n in range(5))) == [0, 1, 4, 9, 16]

    async def main() -> list[int]:
        return await Pool(limit=2).amap(square, [3, 4])

    assert asyncio.run(main()) == [9, 16]


def test_map_failures_follow_the_core_rules() -> None:
    """Every call runs; the failures come back together, in input order, and in errors()."""
    pool = Pool(limit=2)
    with pytest.raises(ExceptionGroup, match="2 of 5 tasks failed") as caught:
        pool.map(fails_on_odd, range(5))
    assert [str(e) for e in caught.value.exceptions] == ["odd 1", "odd 3"]
    assert [str(e) for e in pool.errors()] == ["odd 1", "odd 3"]


def test_map_uses_the_pool_retry_and_timeout(waits: WaitLog) -> None:
    """The calls are the pool's tasks: its retry and timeout apply."""
    tries: dict[int, int] = {}

    async def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if tries[x] < 2:
            raise ConnectionError(x)
        return x

    assert Pool(limit=2).with_retry(3, 0.1).map(flaky, [1, 2]) == [1, 2]
    assert tries == {1: 2, 2: 2}

    async def hangs(x: int) -> int:
        await asyncio.Event().wait()
        return x

    with pytest.raises(ExceptionGroup) as caught:
        Pool().with_timeout(0.01).map(hangs, [1])
    [error] = caught.value.exceptions
    assert isinstance(error, TimeoutError)
    assert error.__notes__[0] == "timed out after 0.01s"
    assert re.fullmatch(r"in task .*\.hangs \(id \d+\.0, input 1\)", error.__notes__[1])


def test_map_refuses_to_block_inside_a_loop_and_bad_arguments() -> None:
    """The errors name the call, the parameter and the value."""

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"use `await pool.amap\(fn, inputs\)`"):
            Pool().map(square, [1])

    asyncio.run(main())
    with pytest.raises(
        TypeError, match=r"Pool.map\(fn, inputs\): fn must be an async function of one input, got 3"
    ):
        Pool().map(3, [1])  # type: ignore[call-overload]
    with pytest.raises(
        TypeError, match=r"Pool.as_completed\(fn, inputs\): inputs must be iterable, got 5 \(int\)"
    ):
        Pool().as_completed(square, 5)  # type: ignore[arg-type]


def test_as_completed_yields_results_as_they_end() -> None:
    """A call that ends first comes out first, before slower ones have ended."""
    order: list[str] = []
    gates = {x: asyncio.Event() for x in range(3)}

    async def ends_when_let(x: int) -> int:
        await gates[x].wait()
        order.append(f"ended {x}")
        return x

    async def main() -> list[int]:
        seen = []
        gates[2].set()
        async for value in Pool().as_completed(ends_when_let, range(3)):
            seen.append(value)
            order.append(f"got {value}")
            if value == 2:
                gates[0].set()
            elif value == 0:
                gates[1].set()
        return seen

    assert asyncio.run(main()) == [2, 0, 1]
    assert order == ["ended 2", "got 2", "ended 0", "got 0", "ended 1", "got 1"]


def test_as_completed_raises_the_failures_after_the_last_result() -> None:
    """Every success is yielded before the failures are raised."""

    async def main() -> tuple[list[int], ExceptionGroup[Exception] | None]:
        seen: list[int] = []
        try:
            async for value in Pool(limit=2).as_completed(fails_on_odd, range(4)):
                seen.append(value)  # noqa: PERF401 - the values seen before the failures are the point
        except ExceptionGroup as group:
            return seen, group
        return seen, None

    seen, failures = asyncio.run(main())
    assert sorted(seen) == [0, 2]
    assert failures is not None
    assert [str(e) for e in failures.exceptions] == ["odd 1", "odd 3"]


def test_leaving_as_completed_early_cancels_the_calls_still_running() -> None:
    """Breaking out of the loop cancels the rest and leaves nothing running."""
    cancelled: list[int] = []

    async def slow_unless_zero(x: int) -> int:
        if x:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(x)
                raise
        return x

    async def main() -> None:
        async with aclosing(Pool().as_completed(slow_unless_zero, range(3))) as results:
            async for value in results:
                assert value == 0
                break
        assert sorted(cancelled) == [1, 2]
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())
