"""RateLimit: at most N starts in any window of a period, for pools and tasks, on a manual clock."""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from go_async import Args, ManualClock, Pool, RateLimit, Task, WaitLog

Recorder = Callable[[Args[int]], Coroutine[Any, Any, None]]


def starts_recorder(clock: ManualClock) -> tuple[list[float], Recorder]:
    starts: list[float] = []

    async def record(args: Args[int]) -> None:
        starts.append(clock.time())

    return starts, record


def test_a_pool_rate_limit_spaces_the_starts() -> None:
    clock = ManualClock()
    starts, record = starts_recorder(clock)
    pool = Pool(limit=10).with_rate_limit(RateLimit(3, per=1, clock=clock))

    async def main() -> None:
        run = asyncio.create_task(pool.ago(Task(record).with_input(n) for n in range(10)))
        await clock.advance(5)
        await run

    asyncio.run(main())
    assert starts == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


@pytest.mark.parametrize(
    ("limit", "per_second", "expected"),
    [
        (1, 10, [0, 0.5, 1, 1.5, 2, 2.5]),  # one at a time: the concurrency limit binds
        (5, 2, [0, 0, 1, 1, 2, 2]),  # two a second: the rate limit binds
    ],
)
def test_the_concurrency_limit_and_the_rate_limit_both_hold(
    limit: int, per_second: int, expected: list[float]
) -> None:
    clock = ManualClock()
    starts: list[float] = []

    async def half_a_second(args: Args[int]) -> None:
        starts.append(clock.time())
        await clock.sleep_until(clock.time() + 0.5)

    pool = Pool(limit=limit).with_rate_limit(RateLimit(per_second, per=1, clock=clock))

    async def main() -> None:
        run = asyncio.create_task(pool.ago(Task(half_a_second).with_input(n) for n in range(6)))
        await clock.advance(10)
        await run

    asyncio.run(main())
    assert starts == expected


def test_tasks_sharing_a_rate_limit_share_its_budget_and_retries_count_as_starts(waits: WaitLog) -> None:
    clock = ManualClock()
    api = RateLimit(2, per=10, clock=clock)
    starts: list[tuple[str, float]] = []
    failed_once: set[int] = set()

    async def read(args: Args[int]) -> None:
        starts.append(("read", clock.time()))

    async def write(args: Args[int]) -> None:
        starts.append(("write", clock.time()))
        if args.input not in failed_once:
            failed_once.add(args.input)
            raise ConnectionError(args.input)

    tasks = [Task(read).with_rate_limit(api).with_input(0), Task(write).with_rate_limit(api).with_retry(2)]

    async def main() -> None:
        run = asyncio.create_task(Pool(limit=1).ago([tasks[0], tasks[1].with_input(1)]))
        await clock.advance(30)
        await run

    asyncio.run(main())
    assert starts == [("read", 0), ("write", 0), ("write", 10)]
    assert (api.started, api.waited) == (3, 1)


def test_a_pool_rate_limit_paces_map_too() -> None:
    clock = ManualClock()

    async def stamp(value: int) -> tuple[int, float]:
        return value, clock.time()

    async def main() -> list[tuple[int, float]]:
        pool = Pool(limit=4).with_rate_limit(RateLimit(2, per=5, clock=clock))
        run = asyncio.create_task(pool.amap(stamp, range(5)))
        await clock.advance(20)
        return await run

    assert asyncio.run(main()) == [(0, 0), (1, 0), (2, 5), (3, 5), (4, 10)]


def test_a_task_rate_limit_applies_in_a_running_pool_and_with_a_count() -> None:
    clock = ManualClock()
    starts, record = starts_recorder(clock)
    limited = Task(record).with_rate_limit(RateLimit(1, per=2, clock=clock))

    async def main() -> None:
        async with Pool() as pool:
            for n in range(3):
                await pool.submit(limited.with_input(n))
            await clock.advance(10)

    asyncio.run(main())
    assert starts == [0, 2, 4]
    assert Task(record).with_rate_limit(5, per=2)._spec.layers.rate is not None


@given(
    count=st.integers(1, 4),
    per=st.sampled_from([0.5, 1.0, 3.0]),
    arrivals=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]), min_size=1, max_size=15),
)
def test_no_window_ever_holds_more_than_count_starts_and_none_waits_longer_than_needed(
    count: int, per: float, arrivals: list[float]
) -> None:
    """Starts follow arrival order, each as early as the window allows."""
    clock = ManualClock()
    limit = RateLimit(count, per=per, clock=clock)
    starts: list[float] = []

    async def arrive(delay: float) -> None:
        await clock.sleep_until(delay)
        await limit.acquire()
        starts.append(clock.time())

    async def main() -> None:
        ordered = sorted(arrivals)
        tasks = [asyncio.create_task(arrive(at)) for at in ordered]
        await clock.advance(100)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    expected: list[float] = []
    for at in sorted(arrivals):
        earliest = at if len(expected) < count else max(at, expected[-count] + per)
        expected.append(earliest)
    assert starts == expected
    for index in range(count, len(starts)):
        assert starts[index] - starts[index - count] >= per


def test_starts_older_than_a_period_are_forgotten() -> None:
    """Memory holds one period's starts, however large the count."""
    clock = ManualClock()
    limit = RateLimit(10**9, per=1, clock=clock)

    async def main() -> None:
        for _ in range(50):
            await limit.acquire()
        assert len(limit._turns) == 50
        await clock.advance(1)
        await limit.acquire()
        assert len(limit._turns) == 1

    asyncio.run(main())
    assert (limit.started, limit.waited) == (51, 0)


def test_bad_rate_limits_are_refused_naming_the_call() -> None:
    with pytest.raises(ValueError, match=r"RateLimit: count must be an int >= 1, got 0"):
        RateLimit(0)
    with pytest.raises(ValueError, match=r"RateLimit: per must be finite and > 0 seconds, got 0"):
        RateLimit(5, per=0)
    with pytest.raises(TypeError, match=r"with_rate_limit: limit must be a RateLimit or an int >= 1, got '5"):
        Task(starts_recorder(ManualClock())[1]).with_rate_limit("5")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"Pool.with_rate_limit: per must be finite and > 0 seconds"):
        Pool().with_rate_limit(5, per=-1)
    with pytest.raises(ValueError, match=r"Pool.with_rate_limit: limit must be an int >= 1, got 0"):
        Pool().with_rate_limit(0)


def test_a_pool_without_a_rate_limit_again() -> None:
    limited = Pool().with_rate_limit(10)
    assert "rate=RateLimit(10, per=1.0)" in repr(limited)
    assert limited.with_rate_limit(None)._settings.layers.rate is None
    assert repr(RateLimit(3, per=2)) == "RateLimit(3, per=2.0)"
    assert (RateLimit(3, per=2).count, RateLimit(3, per=2).per) == (3, 2.0)
