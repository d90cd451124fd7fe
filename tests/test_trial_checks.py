"""Arguments a user's trial found unchecked, or checked with a message that contradicted another."""

import asyncio

import pytest

from go_async import Args, CircuitBreaker, Pool, RateLimit, Task, set_testing


async def tick(args: Args[None]) -> None:
    pass


def test_a_clock_that_is_not_one_is_refused_where_it_is_given() -> None:
    with pytest.raises(TypeError, match=r"RateLimit: clock must be a Clock, got 'x' \(str\)"):
        RateLimit(1, clock="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"CircuitBreaker: clock must be a Clock, got 'x' \(str\)"):
        CircuitBreaker(clock="x")  # type: ignore[arg-type]

    async def main() -> None:
        async with Pool() as pool:
            with pytest.raises(TypeError, match=r"RunningPool\.schedule: clock must be a Clock, got 'x'"):
                pool.schedule(Task(tick), every=1, clock="x")  # type: ignore[arg-type]

    asyncio.run(main())


@pytest.mark.parametrize("value", [0, -1, float("inf")])
def test_seconds_that_must_be_above_zero_say_so_whatever_the_value(value: float) -> None:
    with pytest.raises(ValueError, match=rf"RateLimit: per must be finite and > 0 seconds, got {value!r}"):
        RateLimit(1, per=value)


def test_a_seed_must_be_an_int() -> None:
    with pytest.raises(TypeError, match=r"set_testing: seed must be an int or None, got 'x' \(str\)"):
        set_testing(seed="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"set_testing: seed must be an int or None, got True"):
        set_testing(seed=True)


def test_a_stopped_running_pools_map_names_the_call() -> None:
    async def same(value: int) -> int:
        return value

    async def main() -> None:
        async with Pool() as pool:
            pass
        for call in ("map", "amap"):
            with pytest.raises(RuntimeError, match=rf"RunningPool\.{call}\(\): the pool is not running"):
                await getattr(pool, call)(same, [1])
        with pytest.raises(RuntimeError, match=r"RunningPool\.as_completed\(\): the pool is not running"):
            pool.as_completed(same, [1])

    asyncio.run(main())
