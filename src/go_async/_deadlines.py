"""Per-try timeouts for many tasks on one timer, instead of an ``asyncio.timeout`` per try.

``asyncio.timeout`` schedules and cancels a timer handle for every try,
which costs several times a no-op task. Here a try records its deadline
in a dict keyed by the asyncio task running it, and one timer, armed for
the earliest deadline, cancels the tasks whose deadline has passed. A try
that ends in time only removes its entry.

Scenario: workers A and B each run tries of 10 s. The timer is armed for
A's deadline; by then A's try has ended and A runs another, due 10 s later:
the timer finds nothing due, and re-arms for the earliest deadline now
recorded (B's, or A's new one). So it fires about once per timeout, not
once per try.
"""

from __future__ import annotations

import asyncio
import math
import time

# asyncio runs a timer up to its clock's resolution early: such a deadline counts as passed.
_EARLY = time.get_clock_info("monotonic").resolution


class Deadlines:
    """The deadlines of the tries running now, and the one timer that enforces them."""

    __slots__ = ("_armed_at", "_due", "_expired", "_loop", "_timer")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def start(self, task: asyncio.Task[object], seconds: float) -> None:
        """``task`` begins a try that must end within ``seconds``."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._due[task] = deadline
        if deadline < self._armed_at:
            self._arm(deadline)

    def stop(self, task: asyncio.Task[object]) -> bool:
        """``task``'s try ended: True if it had run out of time and the timer cancelled the task.

        The caller then owns that cancellation: it uncancels the task and
        raises ``TimeoutError`` in place of the ``CancelledError`` (or lets
        the result stand, if the try ended on its own in the meantime).
        """
        self._due.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._armed_at = deadline
        self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed_at = math.inf
        assert self._loop is not None
        now = self._loop.time() + _EARLY
        earliest = math.inf
        for task, deadline in list(self._due.items()):
            if deadline <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._arm(earliest)
