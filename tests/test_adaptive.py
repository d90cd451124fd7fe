"""Adaptive concurrency: a limit that finds a simulated service's capacity on a manual clock.

The service takes ``capacity`` calls at once, each for about 100 ms of clock
time. Past that it refuses with ``Busy``, at once or after a 5 ms round trip,
or (the kind that slows) takes every call ``active / capacity`` times longer,
as a queue in front of it would. A driver moves the clock in steps of 10 ms
while a pool with ``limit=Adaptive(...)`` maps over it (or callers submit to
it, calling again soon after a refusal), and records the limit at each step.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from go_async import Adaptive, Args, Hooks, ManualClock, Pool, Task

STEP = 0.01
LATENCY = 0.1
ROUND_TRIP = 0.005
CAPACITIES = (3, 5, 10, 20, 50)

Kind = Literal["refuses", "refuses after a round trip", "slows"]


class Busy(Exception):
    """The service is at its capacity."""


@dataclass
class Service:
    clock: ManualClock
    capacity: int
    rng: random.Random
    kind: Kind = "refuses after a round trip"
    active: int = 0
    most: int = 0

    async def call(self, value: int) -> int:
        if self.active >= self.capacity and self.kind != "slows":
            if self.kind == "refuses after a round trip":
                await self.clock.sleep_until(self.clock.time() + ROUND_TRIP)
            raise Busy(value)
        self.active += 1
        self.most = max(self.most, self.active)
        slowdown = max(1.0, self.active / self.capacity) if self.kind == "slows" else 1.0
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


async def _callers(
    service: Service, adaptive: Adaptive, callers: int, until: float
) -> list[tuple[float, int]]:
    """``callers`` callers, each submitting one call at a time to a running pool and calling again 1 ms
    after a refusal (demand comes and goes, as with retries), until ``until``; the limit at each step."""
    clock = service.clock
    seen: list[tuple[float, int]] = []
    stop = False

    async def call(args: Args[int]) -> int:
        return await service.call(args.input)

    async with Pool(limit=adaptive) as pool:

        async def caller() -> None:
            while not stop:
                try:
                    await (await pool.submit(Task(call).with_input(0)))
                except Busy:
                    await clock.sleep_until(clock.time() + 0.001)

        running = [asyncio.ensure_future(caller()) for _ in range(callers)]
        while clock.time() < until:
            seen.append((clock.time(), adaptive.limit))
            await clock.advance(STEP)
        stop = True
        while not all(each.done() for each in running):
            await clock.advance(STEP)
    return seen


def _settle(capacity: int, kind: Kind, tolerance: float = 2.0) -> tuple[list[int], Service]:
    """The limit at each step of 10 s after the warm-up (the climb from 1, at about one per latency)."""
    clock = ManualClock()
    service = Service(clock, capacity=capacity, rng=random.Random(1), kind=kind)
    adaptive = Adaptive(min=1, max=500, overload=Busy, tolerance=tolerance, clock=clock)
    warm_up = 2 + 0.25 * capacity * tolerance
    seen = asyncio.run(_callers(service, adaptive, 2 * capacity, warm_up + 10))
    return [limit for time, limit in seen if time >= warm_up], service


@pytest.mark.parametrize("kind", ["refuses", "refuses after a round trip"])
@pytest.mark.parametrize("capacity", CAPACITIES)
def test_the_limit_settles_within_the_capacity_of_a_service_that_refuses(capacity: int, kind: Kind) -> None:
    """At least 90% of the time within [0.7 C, C]; above C only in the probe that finds C (cut at once)."""
    steady, service = _settle(capacity, kind)
    share = sum(0.7 * capacity <= limit <= capacity for limit in steady) / len(steady)
    assert share >= 0.9, (share, min(steady), max(steady))
    assert min(steady) >= 0.7 * capacity
    assert max(steady) <= capacity + 1  # the probe: C + 1, refused once, and cut back
    assert service.most <= capacity


@pytest.mark.parametrize("capacity", CAPACITIES)
def test_the_limit_over_a_service_that_slows_settles_past_the_capacity_where_latency_reaches_tolerance(
    capacity: int,
) -> None:
    """Past C such a service takes ``limit / C`` times its best latency: not slow enough to count as an
    overload until ``tolerance * C`` (as with any queue in front of C servers), so the limit settles
    past C, not within it: at least 90% of the time within [C, 1.5 t C], and never below C."""
    tolerance = 1.5
    steady, _ = _settle(capacity, "slows", tolerance)
    share = sum(capacity <= limit <= 1.5 * tolerance * capacity for limit in steady) / len(steady)
    assert share >= 0.9, (share, min(steady), max(steady))
    assert min(steady) >= capacity


@pytest.mark.parametrize("kind", ["refuses", "refuses after a round trip"])
def test_the_limit_follows_the_capacity_when_it_doubles_then_halves(kind: Kind) -> None:
    clock = ManualClock()
    service = Service(clock, capacity=10, rng=random.Random(2), kind=kind)
    adaptive = Adaptive(min=1, max=200, overload=Busy, clock=clock)
    seen = asyncio.run(_drive(service, adaptive, 8000, capacities=((10.0, 20), (25.0, 10))))
    assert seen[-1][0] > 30, "the run ended before the last change settled"
    assert _share_within(seen, 5, 10, 7, 10) >= 0.9  # settled at 10
    assert _share_within(seen, 20, 25, 14, 20) >= 0.9  # doubled: settled at 20
    assert _share_within(seen, 28, seen[-1][0], 7, 10) >= 0.9  # halved: back at 10


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


def test_an_overload_counts_once_for_the_tries_let_in_before_a_decrease() -> None:
    """Tries let in before a decrease saw the old limit: their overloads don't cut it again; later ones do."""
    clock = ManualClock()
    adaptive = Adaptive(min=1, max=20, initial=10, clock=clock)

    async def main() -> None:
        early = [await adaptive.acquire() for _ in range(3)]
        adaptive.release(early[0], TimeoutError(), None)
        assert adaptive.limit == 9  # 10 x 0.9
        adaptive.release(early[1], TimeoutError(), None)
        assert adaptive.limit == 9  # let in before the decrease: counted already
        later = await adaptive.acquire()  # at the same clock time
        adaptive.release(later, TimeoutError(), None)
        assert adaptive.limit == 8  # floor(9 x 0.9)
        adaptive.release(early[2], TimeoutError(), None)
        assert (adaptive.limit, adaptive.in_flight) == (8, 0)

    asyncio.run(main())


@pytest.mark.parametrize(("initial", "after"), [(2, 1), (5, 4), (9, 8)])
def test_a_decrease_always_lowers_the_limit(initial: int, after: int) -> None:
    """Below 10, 10% less is less than one: the limit, not its fraction, is cut, so it goes down by one."""
    adaptive = Adaptive(min=1, max=20, initial=initial, clock=ManualClock())

    async def main() -> None:
        ok = [await adaptive.acquire() for _ in range(initial)]
        for admission in ok[:-1]:
            adaptive.release(admission, None, None)  # no try waits: the fraction stays, the limit too
        adaptive.window += 0.9  # as if tries had waited: nearly one more
        adaptive.release(ok[-1], TimeoutError(), None)

    asyncio.run(main())
    assert adaptive.limit == after


def test_the_limit_grows_only_while_a_try_waits_for_room() -> None:
    """Two tries at a time under a limit of 4 say nothing of the capacity beyond 2: it stays 4."""
    clock = ManualClock()
    adaptive = Adaptive(min=1, max=20, initial=4, clock=clock)

    async def main() -> None:
        for _ in range(50):
            first, second = await adaptive.acquire(), await adaptive.acquire()
            adaptive.release(first, None, None)
            adaptive.release(second, None, None)
        assert adaptive.limit == 4
        held = [await adaptive.acquire() for _ in range(4)]
        waiting = asyncio.ensure_future(adaptive.acquire())
        await asyncio.sleep(0)
        adaptive.release(held[0], None, None)  # one waits: the limit is in use, it grows by 1/4
        assert adaptive.window == 4.25
        for admission in [*held[1:], await waiting]:
            adaptive.release(admission, None, None)

    asyncio.run(main())


class FailingClock(ManualClock):
    """A manual clock whose ``time()`` raises once ``broken`` is set."""

    broken = True

    def time(self) -> float:
        if self.broken:
            raise RuntimeError("clock broken")
        return super().time()


def test_a_clock_that_fails_takes_no_room() -> None:
    adaptive = Adaptive(min=1, max=2, clock=FailingClock())

    async def main() -> None:
        with pytest.raises(RuntimeError, match="clock broken"):
            await adaptive.acquire()

    asyncio.run(main())
    assert adaptive.in_flight == 0


def test_a_clock_that_fails_at_the_end_of_a_try_still_admits_the_next() -> None:
    clock = FailingClock()
    clock.broken = False
    adaptive = Adaptive(min=1, max=2, clock=clock)

    async def main() -> None:
        first = await adaptive.acquire()
        waiting = asyncio.ensure_future(adaptive.acquire())
        await asyncio.sleep(0)
        clock.broken = True  # it breaks while a try runs
        with pytest.raises(RuntimeError, match="clock broken"):
            adaptive.release(first, None, None)
        with pytest.raises(RuntimeError, match="clock broken"):
            await waiting  # it was given room, then failed to read the time: the room is back
        assert adaptive.in_flight == 0

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
        (
            {"backoff": 1.5},
            ValueError,
            r"Adaptive: backoff must be a number between 0 and 1 \(exclusive\), got 1.5$",
        ),
        (
            {"backoff": math.nan},
            ValueError,
            r"Adaptive: backoff must be a number between 0 and 1 .*, got nan$",
        ),
        (
            {"backoff": "0.5"},
            TypeError,
            r"Adaptive: backoff must be a number between 0 and 1 .*, got '0.5' \(str\)",
        ),
        (
            {"backoff": True},
            TypeError,
            r"Adaptive: backoff must be a number between 0 and 1 .*, got True \(bool\)",
        ),
        (
            {"tolerance": 0.5},
            ValueError,
            r"Adaptive: tolerance must be a number above 1 and finite .*, got 0.5$",
        ),
        ({"tolerance": 1}, ValueError, r"Adaptive: tolerance must be a number above 1 .*, got 1$"),
        ({"tolerance": math.inf}, ValueError, r"Adaptive: tolerance must be a number above 1 .*, got inf$"),
        (
            {"tolerance": True},
            TypeError,
            r"Adaptive: tolerance must be a number above 1 .*, got True \(bool\)",
        ),
        (
            {"tolerance": timedelta(seconds=3)},
            TypeError,
            r"Adaptive: tolerance must be a number above 1 and finite \(a multiple of the best latency\), "
            r"got datetime.timedelta\(seconds=3\) \(timedelta\)",
        ),
        ({"clock": 5}, TypeError, r"Adaptive: clock must be a Clock, got 5 \(int\)"),
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
