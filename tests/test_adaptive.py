"""Adaptive concurrency: a limit that finds a simulated service's capacity on a manual clock.

The service takes ``capacity`` calls at once, each for about 100 ms of clock
time, and refuses more with ``Busy`` (or, in the queueing variant, slows
down). A driver moves the clock in steps of 10 ms while a pool with
``limit=Adaptive(...)`` maps over it, and records the limit at each step.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from go_async import Adaptive, Args, Hooks, ManualClock, Pool, Task

STEP = 0.01
LATENCY = 0.1
REFUSAL = 0.005


class Busy(Exception):
    """The service is at its capacity."""


@dataclass
class Service:
    clock: ManualClock
    capacity: int
    rng: random.Random
    queueing: bool = False  # slow down past the capacity instead of refusing
    active: int = 0
    most: int = 0

    async def call(self, value: int) -> int:
        if self.active >= self.capacity and not self.queueing:
            await self.clock.sleep_until(self.clock.time() + REFUSAL)  # a refusal takes a round trip
            raise Busy(value)
        self.active += 1
        self.most = max(self.most, self.active)
        slowdown = max(1.0, self.active / self.capacity) if self.queueing else 1.0
        try:
            await self.clock.sleep_until(self.clock.time() + LATENCY * slowdown + self.rng.random() * 0.005)
        finally:
            self.active -= 1
        return value


@dataclass
class Changes(Hooks):
    clock: ManualClock
    trace: list[tuple[float, int, int, str]] = field(default_factory=list)

    def limit_changed(self, old: int, new: int, reason: str) -> None:
        self.trace.append((round(self.clock.time(), 6), old, new, reason))


async def _drive(
    service: Service,
    adaptive: Adaptive,
    count: int,
    *,
    capacities: tuple[tuple[float, int], ...] = (),
    hooks: tuple[Hooks, ...] = (),
) -> list[tuple[float, int]]:
    """Map ``service.call`` over ``count`` inputs; the limit at each clock step.

    ``capacities`` changes the service's capacity at those clock times.
    """
    clock = service.clock
    pool = Pool(limit=adaptive, hooks=hooks)
    run = asyncio.ensure_future(pool.amap(service.call, range(count), return_exceptions=True))
    seen: list[tuple[float, int]] = []
    changes = list(capacities)
    while not run.done():
        if changes and clock.time() >= changes[0][0]:
            service.capacity = changes.pop(0)[1]
        seen.append((clock.time(), adaptive.limit))
        await clock.advance(STEP)
    results = await run
    assert len(results) == count  # every input ran to its end, or failed as Busy
    assert all(isinstance(result, int | Busy) for result in results)
    return seen


def _share_within(seen: list[tuple[float, int]], start: float, end: float, low: float, high: float) -> float:
    window = [limit for time, limit in seen if start <= time < end]
    assert window, (start, end)
    return sum(low <= limit <= high for limit in window) / len(window)


def test_the_limit_settles_below_the_capacity_and_never_far_above() -> None:
    clock = ManualClock()
    service = Service(clock, capacity=20, rng=random.Random(1))
    adaptive = Adaptive(min=1, max=200, overload=Busy, clock=clock)
    seen = asyncio.run(_drive(service, adaptive, 6000))
    steady = [limit for time, limit in seen if time >= 5]
    assert steady, "the run ended before it could settle"
    assert _share_within(seen, 5, seen[-1][0], 0.7 * 20, 20) >= 0.9
    assert max(steady) <= 21  # the probe that finds the capacity, no more
    assert min(steady) >= 14  # 0.7 x 20
    assert service.most <= 20


def test_the_limit_follows_the_capacity_when_it_doubles_then_halves() -> None:
    clock = ManualClock()
    service = Service(clock, capacity=10, rng=random.Random(2))
    adaptive = Adaptive(min=1, max=200, overload=Busy, clock=clock)
    seen = asyncio.run(_drive(service, adaptive, 8000, capacities=((10.0, 20), (25.0, 10))))
    assert seen[-1][0] > 30, "the run ended before the last change settled"
    assert _share_within(seen, 5, 10, 7, 10) >= 0.9  # settled at 10
    assert _share_within(seen, 20, 25, 14, 20) >= 0.9  # doubled: settled at 20
    assert _share_within(seen, 28, seen[-1][0], 7, 10) >= 0.9  # halved: back at 10


def test_rising_latency_shrinks_the_limit_of_a_service_that_queues() -> None:
    clock = ManualClock()
    service = Service(clock, capacity=10, rng=random.Random(3), queueing=True)
    adaptive = Adaptive(min=1, max=200, tolerance=1.5, clock=clock)
    seen = asyncio.run(_drive(service, adaptive, 4000))
    steady = [limit for time, limit in seen if time >= 5]
    # It stops where tries take 1.5 times the best latency (15 at once here), overshooting by
    # what starts in the ~0.15 s before a slow try comes back: far below max=200, never collapsing.
    assert min(steady) >= 10
    assert max(steady) <= 25


def test_the_same_run_gives_the_same_trace() -> None:
    def trace() -> list[tuple[float, int, int, str]]:
        clock = ManualClock()
        changes = Changes(clock)
        service = Service(clock, capacity=12, rng=random.Random(7))
        asyncio.run(_drive(service, Adaptive(max=50, overload=Busy, clock=clock), 2000, hooks=(changes,)))
        return changes.trace

    first = trace()
    assert len(first) > 20
    assert {reason for *_, reason in first} == {"ok", "overload"}
    assert trace() == first


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 5), st.integers(5, 40), st.integers(1, 30), st.integers(0, 1000))
def test_min_and_max_hold_whatever_the_capacity(low: int, high: int, capacity: int, seed: int) -> None:
    clock = ManualClock()
    service = Service(clock, capacity=capacity, rng=random.Random(seed))
    adaptive = Adaptive(min=low, max=high, overload=Busy, clock=clock)
    seen = asyncio.run(_drive(service, adaptive, 300))
    assert all(low <= limit <= high for _, limit in seen)
    assert service.most <= max(capacity, low)  # never more at once than the service takes, or min


def test_a_timeout_is_an_overload_and_other_errors_leave_the_limit_be() -> None:
    clock = ManualClock()
    adaptive = Adaptive(min=1, max=10, initial=8, clock=clock)

    async def main() -> None:
        started = await adaptive.acquire()
        adaptive.release(started, ValueError("not an overload"), None)
        assert adaptive.limit == 8
        started = await adaptive.acquire()
        adaptive.release(started, TimeoutError(), None)
        assert adaptive.limit == 7  # 8 x 0.9, down

    asyncio.run(main())


def test_a_running_pool_reports_its_limit_in_stats() -> None:
    clock = ManualClock()
    adaptive = Adaptive(min=2, max=5, clock=clock)

    async def quick(args: Args[int]) -> int:
        return args.input

    async def main() -> None:
        async with Pool(limit=adaptive) as pool:
            for value in range(30):
                assert await (await pool.submit(Task(quick).with_input(value))) == value
            assert pool.stats().concurrency_limit == adaptive.limit
        async with Pool(limit=4) as fixed:
            assert fixed.stats().concurrency_limit == 4

    asyncio.run(main())
    assert 2 <= adaptive.limit <= 5


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"min": 0}, ValueError, r"Adaptive: min must be"),
        ({"min": 5, "max": 2}, ValueError, r"Adaptive: max must be at least min \(5\), got 2"),
        (
            {"initial": 300},
            ValueError,
            r"Adaptive: initial must be within \[min, max\] = \[1, 100\], got 300",
        ),
        ({"backoff": 1.5}, ValueError, r"Adaptive: backoff must be between 0 and 1"),
        ({"tolerance": 0.5}, ValueError, r"Adaptive: tolerance must be above 1"),
        ({"overload": "Busy"}, TypeError, r"Adaptive: overload must be an Exception subclass"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Adaptive(**kwargs)


def test_a_pool_takes_an_adaptive_limit_where_it_takes_a_number() -> None:
    adaptive = Adaptive(min=2, max=8)
    assert Pool(limit=adaptive).limit == 8  # its workers: as many as the limit may reach
    assert Pool().with_limit(adaptive).limit == 8
    assert Pool(limit=adaptive).with_limit(3).limit == 3
    assert repr(adaptive) == "Adaptive(min=2, max=8, limit=2, in_flight=0)"


def test_cancelling_a_run_whose_tasks_wait_for_room_cancels_them_all_and_fails_none() -> None:
    """Tries waiting under the limit when the run is cancelled end cancelled, not as failures."""
    clock = ManualClock()
    adaptive = Adaptive(min=1, max=10, clock=clock)  # a limit of 1: nine of ten wait for room
    started: list[int] = []

    async def forever(x: int) -> int:
        started.append(x)
        await asyncio.Event().wait()
        return x

    async def main() -> None:
        pool = Pool(limit=adaptive)
        run = asyncio.ensure_future(pool.amap(forever, range(10)))
        while not started:
            await asyncio.sleep(0)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert pool.errors() == []

    asyncio.run(main())
    assert started == [0]
    assert (adaptive.in_flight, adaptive.limit) == (0, 1)
