"""Per-try timeouts for many tasks on one timer, instead of an ``asyncio.timeout`` per try.

``asyncio.timeout`` schedules and cancels a timer handle for every try,
which costs several times a no-op task. Here a try (``limit``) records
its deadline in a dict keyed by the asyncio task running it, and one
timer, armed for the earliest deadline, cancels the tasks whose deadline
has passed. A try that ends in time only removes its entry.

Scenario: workers A and B each run tries of 10 s. The timer is armed for
A's deadline; by then A's try has ended and A runs another, due 10 s later:
the timer finds nothing due, and re-arms for the earliest deadline now
recorded (B's, or A's new one). So it fires about once per timeout, not
once per try.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

Call = Callable[[Any], Awaitable[Any]]
if sys.version_info < (3, 12):
    # Python 3.11's asyncio.current_task() looks the loop up again and costs
    # several times a no-op task; with the loop at hand, its table answers
    # at once. From 3.12 on, current_task is in C and cheap.
    _current_tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = vars(asyncio.tasks)["_current_tasks"]

    def _task_of(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
        return _current_tasks.get(loop)

else:

    def _task_of(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
        return asyncio.current_task(loop)


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

    def limit(self, call: Call, seconds: float, note: Callable[[Any], str]) -> Call:
        """``call`` with each run of it limited to ``seconds``: past that it raises ``TimeoutError``.

        The error carries ``note(args)``. A run that swallows its
        cancellation and returns keeps its value.
        """
        due, expired = self._due, self._expired

        async def limited(args: Any) -> Any:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            task = _task_of(loop)
            assert task is not None
            deadline = due[task] = loop.time() + seconds
            if deadline < self._armed_at:
                self._arm(deadline)
            try:
                value = await call(args)
            except BaseException as error:
                due.pop(task, None)
                if task in expired:
                    # The timer cancelled it: take that back, whatever the run
                    # raised instead. Cancelled, and by nothing else: it timed out.
                    expired.discard(task)
                    if task.uncancel() == 0 and isinstance(error, asyncio.CancelledError):
                        timed_out = TimeoutError()
                        timed_out.add_note(note(args))
                        raise timed_out from None
                raise
            due.pop(task, None)
            if expired and task in expired:
                expired.discard(task)
                task.uncancel()  # it ran out of time but swallowed the cancellation: its value stands
            return value

        return limited

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
