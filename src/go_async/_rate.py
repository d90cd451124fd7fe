"""RateLimit: at most N starts in any period, for a pool or a group of tasks."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

from ._checks import positive_int, positive_seconds
from ._clock import Clock, clock_of


class RateLimit:
    """At most ``count`` starts in any window of ``per`` seconds, in the order they asked.

    Give one to a pool (``Pool.with_rate_limit``) or to tasks
    (``Task.with_rate_limit``); every task and pool given the same object
    shares its budget. Each try of a task is a start, retries included. A
    rate limit combines with the concurrency limit: a task waits for its
    turn while holding its place in the pool. A waiter that is cancelled
    still spends its turn. ``clock`` is for tests (see ``ManualClock``).

    Example::

        api = RateLimit(100, per=1)  # 100 calls a second, whoever makes them
        Pool(limit=20).go(Task(call_api).with_rate_limit(api).with_input(q) for q in queries)
    """

    __slots__ = ("_clock", "_count", "_per", "_turns", "started", "waited")

    def __init__(self, count: int, per: float | timedelta = 1.0, *, clock: Clock | None = None) -> None:
        self._count = positive_int("RateLimit", "count", count)
        self._per = positive_seconds("RateLimit", "per", per)
        self._clock = clock_of("RateLimit", clock)
        # The times given to the latest `count` starts, in order: a start may
        # come `per` seconds after the one `count` places before it.
        self._turns: deque[float] = deque(maxlen=self._count)
        self.started: int = 0
        """How many starts it has let through."""
        self.waited: int = 0
        """How many of them had to wait for their turn."""

    @property
    def count(self) -> int:
        """Starts allowed per period."""
        return self._count

    @property
    def per(self) -> float:
        """The period, in seconds."""
        return self._per

    @property
    def clock(self) -> Clock:
        """The clock it reads and waits on."""
        return self._clock

    async def acquire(self) -> None:
        """Wait for the next turn to start."""
        turn = self.reserve()
        if turn is not None:
            await self._clock.sleep_until(turn)

    def reserve(self) -> float | None:
        """Take the next turn without waiting: ``None`` to start now, else the clock time it comes at.

        Pools call it before each try, and wait on ``clock`` only when they must.
        """
        now = self._clock.time()
        turns = self._turns
        # Turns are handed out in order, so they are sorted and the oldest is
        # first. Those older than a period no longer count: dropping them
        # keeps memory to one period's starts, even for a huge count.
        horizon = now - self._per
        while turns and turns[0] <= horizon:
            turns.popleft()
        self.started += 1
        if len(turns) < self._count:
            turns.append(now)
            return None
        turn = turns[0] + self._per
        turns.append(turn)
        self.waited += 1
        return turn

    def __repr__(self) -> str:
        return f"RateLimit({self._count}, per={self._per})"


def rate_limit(where: str, limit: object, per: object) -> RateLimit:
    """``limit`` if it is a ``RateLimit``, else a new one of ``limit`` starts per ``per`` seconds."""
    if isinstance(limit, RateLimit):
        return limit
    if not isinstance(limit, int) or isinstance(limit, bool):
        msg = f"{where}: limit must be a RateLimit or an int >= 1, got {limit!r} ({type(limit).__name__})"
        raise TypeError(msg)
    return RateLimit(positive_int(where, "limit", limit), positive_seconds(where, "per", per))
