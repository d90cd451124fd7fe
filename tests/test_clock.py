"""ManualClock: time that tests move by hand, waking each sleeper at its deadline."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from go_async import ManualClock
from go_async._clock import SystemClock


def test_advance_wakes_each_sleeper_at_its_deadline_in_order() -> None:
    clock = ManualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append((name, clock.time()))

    async def main() -> None:
        plan = [("c", 3), ("a", 1), ("b", 2), ("a2", 1)]
        tasks = [asyncio.create_task(sleeper(name, at)) for name, at in plan]
        await clock.advance(0)
        assert clock.sleepers == 4
        await clock.advance(1.5)
        assert woke == [("a", 1), ("a2", 1)]
        assert clock.time() == 1.5
        await clock.advance(timedelta(seconds=10))
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert woke == [("a", 1), ("a2", 1), ("b", 2), ("c", 3)]
    assert clock.time() == 11.5


def test_a_sleeper_woken_can_sleep_again_within_the_same_advance() -> None:
    clock = ManualClock()
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(3):
            await clock.sleep_until(clock.time() + 2)
            ticks.append(clock.time())

    async def main() -> None:
        task = asyncio.create_task(ticker())
        await clock.advance(0)
        await clock.advance(7)
        await task

    asyncio.run(main())
    assert ticks == [2, 4, 6]


def test_a_cancelled_sleeper_is_skipped_and_a_past_deadline_returns_at_once() -> None:
    clock = ManualClock()

    async def main() -> None:
        task = asyncio.create_task(clock.sleep_until(5))
        await clock.advance(0)
        task.cancel()
        await clock.advance(0)
        assert clock.sleepers == 0
        await clock.advance(10)
        assert task.cancelled()
        await clock.sleep_until(3)  # already past: returns without anyone advancing

    asyncio.run(main())


def test_wall_time_starts_where_asked_and_moves_with_the_clock() -> None:
    start = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    clock = ManualClock(start)

    asyncio.run(clock.advance(90))
    assert clock.wall() == start + timedelta(seconds=90)
    assert ManualClock().wall() == datetime(2026, 1, 1, tzinfo=UTC)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"ManualClock\(start\): start must be a datetime, got '2026'"):
        ManualClock("2026")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ManualClock.advance: seconds must be finite and >= 0 seconds"):
        asyncio.run(ManualClock().advance(-1))


def test_the_system_clock_is_monotonic_and_its_sleep_returns_at_the_deadline() -> None:
    clock = SystemClock()

    async def main() -> None:
        before = clock.time()
        await clock.sleep_until(before)
        assert clock.time() >= before
        assert clock.wall().tzinfo is not None

    asyncio.run(main())
