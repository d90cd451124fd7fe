"""Time as a seam: the system clock, and a manual clock that tests move by hand.

Schedules, rate limits and circuit breakers read the time and sleep only
through a ``Clock``, so a test can give them a ``ManualClock`` and decide
exactly when each moment comes, instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

from . import _explore
from ._checks import seconds as checked_seconds


class Clock(Protocol):
    """What a schedule, a rate limit or a circuit breaker asks of time.

    ``time()`` is monotonic seconds; ``wall()`` is the date and time that cron
    expressions are read against; ``sleep_until(deadline)`` returns once
    ``time()`` has reached ``deadline``. The system clock is the default;
    ``ManualClock`` is the one for tests.

    Example::

        def limiter(clock: Clock | None = None) -> RateLimit:
            return RateLimit(10, per=1, clock=clock)
    """

    def time(self) -> float:
        """The time now, in monotonic seconds."""
        ...

    def wall(self) -> datetime:
        """The date and time now, which cron expressions are read against."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``time()`` has reached ``deadline``."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic()``, the local time, and ``asyncio.sleep``."""

    __slots__ = ()

    # The builtin itself, not a method calling it: rate limits read it before every try.
    time = staticmethod(time.monotonic)

    def wall(self) -> datetime:
        return datetime.now().astimezone()

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


def clock_of(where: str, clock: object) -> Clock:
    """``clock``, or the system clock for ``None``; anything else without a ``time()`` is refused by name."""
    if clock is None:
        return SYSTEM_CLOCK
    if not callable(getattr(clock, "time", None)):
        msg = f"{where}: clock must be a Clock, got {clock!r} ({type(clock).__name__})"
        raise TypeError(msg)
    return cast("Clock", clock)


class ManualClock:
    """A clock that moves only when ``advance`` is awaited: for tests, with no real waiting.

    ``advance(seconds)`` wakes every sleeper whose deadline comes within
    ``seconds``, one deadline after the other, and after each lets the event
    loop run whatever that woke until it waits again (on the clock, or on
    anything else), so a test sees the state at each moment. Sleepers with
    equal deadlines wake in the order they slept, or, while interleavings are
    explored (``set_testing(explore=seed)``), in an order drawn from the seed.
    Work in threads and real I/O are not waited for. ``wall()`` starts at ``start``
    (2026-01-01 00:00 UTC by default) and moves with ``time()``.

    Example::

        clock = ManualClock()
        async with Pool() as pool:
            pool.schedule(task, every=60, clock=clock, times=3)
            await clock.advance(180)  # three runs, at once
    """

    __slots__ = ("_now", "_order", "_sleepers", "_start")

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and not isinstance(start, datetime):
            msg = f"ManualClock(start): start must be a datetime, got {start!r} ({type(start).__name__})"
            raise TypeError(msg)
        self._start = datetime(2026, 1, 1, tzinfo=UTC) if start is None else start
        self._now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # equal deadlines wake in the order they slept

    def time(self) -> float:
        """The seconds that ``advance`` has moved the clock, from 0."""
        return self._now

    def wall(self) -> datetime:
        """``start`` plus the seconds the clock has moved."""
        return self._start + timedelta(seconds=self._now)

    async def sleep_until(self, deadline: float) -> None:
        """Wait until ``advance`` moves the clock to ``deadline``; at once if it is there."""
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        order, exploration = next(self._order), _explore.active
        if exploration is not None:  # exploring: equal deadlines wake in an order drawn from the seed
            order = exploration.tie(order)
        heapq.heappush(self._sleepers, (deadline, order, woken))
        try:
            await woken
        finally:
            woken.cancel()  # a cancelled sleeper stays in the heap, done, and is skipped

    @property
    def sleepers(self) -> int:
        """How many are sleeping on this clock now."""
        return sum(not woken.done() for _, _, woken in self._sleepers)

    async def advance(self, seconds: float | timedelta) -> None:
        """Move the clock ``seconds`` ahead, waking each sleeper at its deadline in turn."""
        target = self._now + checked_seconds("ManualClock.advance", "seconds", seconds)
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, woken = heapq.heappop(self._sleepers)
            if woken.done():
                continue
            self._now = max(self._now, deadline)
            woken.set_result(None)
            await _settle()
        self._now = target
        await _settle()

    def __repr__(self) -> str:
        return f"ManualClock(time={self._now}, sleepers={self.sleepers})"


async def _settle() -> None:
    # Let the loop run until nothing is ready to run: whatever the last wake-up
    # set going has reached its next wait. asyncio's loops keep their ready
    # callbacks in `_ready`; other loops get a fixed number of turns.
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    for _ in range(10_000 if ready is not None else 100):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return
