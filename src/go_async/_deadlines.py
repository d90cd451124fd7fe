"""Per-try timeouts for many tasks on one timer, instead of an ``asyncio.timeout`` per try.

``asyncio.timeout`` schedules and cancels a timer handle for every try,
which costs several times a no-op task. Here a try (``limit``) records
its deadline in a dict keyed by the asyncio task running it, and one
timer, armed for the earliest deadline, cancels the tasks whose deadline
has passed. A try that ends in time only removes its entry.

A worker of ``go`` running its tasks' tries inline keeps its deadline in a
``Slot`` of its own instead: an attribute to set, read by the same timer.

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


class Slot:
    """One worker's deadline, for tries it runs inline: ``math.inf`` between tries.

    The timer sets ``expired`` when it cancels the worker; the worker clears it.
    """

    __slots__ = ("deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.deadline = math.inf
        self.expired = False

    def take_back(self, error: BaseException | None) -> bool:
        """The timer cancelled the task during a try that ended with ``error``: see ``timed_out``."""
        self.expired = False
        return timed_out(self.task, error)


def timed_out(task: asyncio.Task[Any], error: BaseException | None) -> bool:
    """The timer cancelled ``task`` during a try: take that back; True if the try timed out.

    It timed out if it ended cancelled (``error``) and by nothing else; a
    try that ended otherwise keeps its value or its own error.
    """
    return task.uncancel() == 0 and isinstance(error, asyncio.CancelledError)


class Deadlines:
    """The deadlines of the tries running now, and the one timer that enforces them."""

    __slots__ = ("_due", "_expired", "_loop", "_slots", "_timer", "armed_at")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._slots: list[Slot] = []
        self._timer: asyncio.TimerHandle | None = None
        # When the timer fires: a deadline set before it must be `watch`ed.
        self.armed_at = math.inf

    def slot(self, task: asyncio.Task[Any]) -> Slot:
        """A deadline of ``task``'s own, for the tries it runs inline."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        slot = Slot(task)
        self._slots.append(slot)
        return slot

    def watch(self, deadline: float) -> None:
        """Fire the timer at ``deadline`` too (a slot's, set before ``armed_at``)."""
        if deadline < self.armed_at:
            self._arm(deadline)

    def limit(self, call: Call, seconds: float, error_for: Callable[[Any], TimeoutError]) -> Call:
        """``call`` with each run of it limited to ``seconds``: past that it raises ``TimeoutError``.

        The error is ``error_for(args)``. A run that swallows its
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
            if deadline < self.armed_at:
                self._arm(deadline)
            try:
                value = await call(args)
            except BaseException as error:
                due.pop(task, None)
                if task in expired:
                    expired.discard(task)
                    if timed_out(task, error):
                        raise error_for(args) from None
                raise
            due.pop(task, None)
            if expired and task in expired:
                expired.discard(task)
                timed_out(task, None)  # it ran out of time but swallowed the cancellation: its value stands
            return value

        return limited

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self.armed_at = deadline
        self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.armed_at = math.inf
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
        for slot in self._slots:
            if slot.deadline <= now:
                slot.deadline = math.inf
                slot.expired = True
                slot.task.cancel()
            elif slot.deadline < earliest:
                earliest = slot.deadline
        if earliest < math.inf:
            self._arm(earliest)
