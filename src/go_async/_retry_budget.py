"""RetryBudget: a pool-wide cap on retries as a share of recent first tries.

As Envoy's retry budgets, gRPC's retry throttling and Finagle's
``RetryBudget``: when a service fails, each task's own retry policy would
multiply the load on it by up to its number of attempts; a budget lets
retries add at most ``ratio`` of the recent traffic (plus a small reserve),
so a healthy service's rare failures are retried and a failing one is not
flooded. The runner (``_runner``) counts a first try for every task that
may retry, and asks ``allow`` before each retry.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from ._checks import positive_seconds
from ._clock import Clock, clock_of
from ._hookset import HookSet, emit

Call = Callable[[Any], Awaitable[Any]]
# What a budget has when not told otherwise.
MIN_PER_SECOND = 10.0
WINDOW = 10.0


class Unset(enum.Enum):
    """An argument of ``Pool.with_retry_budget`` not given: refused beside a budget, else its default."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "<default>"


UNSET = Unset.UNSET


class RetryBudget:
    """Retries may add at most ``ratio`` of a pool's recent first tries, plus a reserve.

    Every first try of a task that may be retried deposits ``ratio`` tokens
    and every retry takes one, both counted over the last ``window`` seconds
    (an event at time ``s`` counts while ``now - window < s``). A retry goes
    ahead while::

        ratio * first_tries + min_per_second * window - retries >= 1

    counted just before it, and takes its token at once (before its backoff
    wait). Otherwise the retry is refused: the task fails with its last
    error, which gets a note saying so; the running pool's
    ``stats().retries_refused`` counts it and ``Hooks.retry_refused`` hears
    of it. ``min_per_second * window`` is the reserve, for a pool with
    little traffic. Give one to a pool with ``Pool.with_retry_budget``: every
    task of that pool shares it (``go``/``map`` runs, the running pool and
    flows through it), and so does every pool given the same object. Tasks
    without a retry policy are not counted. So ``N`` first tries bring at
    most ``ratio * N + min_per_second * (elapsed + window)`` retries,
    ``elapsed`` being the seconds from the budget's first event to its last retry.
    ``clock`` is for tests (see ``ManualClock``). It keeps the time of each
    counted event of the last ``window`` seconds (events at one time share
    one entry).

    Example::

        budget = RetryBudget(ratio=0.2, min_per_second=10, window=10)
        pool = Pool(limit=8).with_retry(5, 0.1).with_retry_budget(budget)
    """

    __slots__ = ("_clock", "_firsts", "_retries", "_window", "min_per_second", "ratio")

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = MIN_PER_SECOND,
        *,
        window: float | timedelta = WINDOW,
        clock: Clock | None = None,
    ) -> None:
        checked = _checked("RetryBudget", ratio, min_per_second, window, clock)
        self.ratio: float = checked[0]
        """Tokens each first try deposits."""
        self.min_per_second: float = checked[1]
        """Retries a second allowed whatever the traffic (the reserve is this times ``window``)."""
        self._window, self._clock = checked[2], checked[3]
        self._firsts = _Events()
        self._retries = _Events()

    @property
    def window(self) -> float:
        """The seconds over which first tries and retries are counted."""
        return self._window

    @property
    def clock(self) -> Clock:
        """The clock it reads."""
        return self._clock

    def first_try(self) -> None:
        """Count a first try now: it deposits ``ratio`` tokens for ``window`` seconds."""
        now = self._clock.time()
        self._firsts.add(now)
        self._firsts.since(now - self._window)  # forget what left the window: memory stays O(window)

    def allow(self) -> bool:
        """Whether a retry may go now; if so, it is counted (it takes its token)."""
        now = self._clock.time()
        if self._balance(now) < 1:
            return False
        self._retries.add(now)
        self._retries.since(now - self._window)
        return True

    def balance(self) -> float:
        """The tokens there are now: ``ratio * first_tries + min_per_second * window - retries``.

        A retry goes ahead while this is at least 1.
        """
        return self._balance(self._clock.time())

    def counts(self) -> tuple[int, int]:
        """The first tries and the retries counted in the window now."""
        horizon = self._clock.time() - self._window
        return self._firsts.since(horizon), self._retries.since(horizon)

    def counting(self, call: Call) -> Call:
        """``call`` (a task's retrying plan), counting a first try each time it is called."""
        first_try = self.first_try

        def counted(args: Any) -> Awaitable[Any]:
            # A plain function: the plan's own coroutine is the awaitable.
            first_try()
            return call(args)

        return counted

    def gate(
        self, args: Any, hooks: HookSet | None, refused: Callable[[Any], object] | None
    ) -> Callable[[Exception, int], bool]:
        """For one task's retries: ``gate(error, attempt)`` asks ``allow``. A refusal notes ``error``
        (the task's final error), calls ``refused(args)`` and tells ``hooks`` (``retry_refused``)."""

        def gate(error: Exception, attempt: int) -> bool:
            if self.allow():
                return True
            firsts, retries = self.counts()
            error.add_note(
                f"go_async: the retry budget refused a retry after try {attempt} "
                f"({_count(retries, 'retry', 'retries')} and {_count(firsts, 'first try', 'first tries')}"
                f" in the last {self._window}s)"
            )
            if refused is not None:
                refused(args)
            if hooks is not None and hooks.retry_refused:
                emit(hooks.retry_refused, args, error, attempt)
            return False

        return gate

    def _balance(self, now: float) -> float:
        horizon = now - self._window
        firsts, retries = self._firsts.since(horizon), self._retries.since(horizon)
        return self.ratio * firsts + self.min_per_second * self._window - retries

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self.ratio}, min_per_second={self.min_per_second}, window={self._window})"


class _Events:
    """The times of some events, oldest first, each with how many happened then, and their total.

    Two deques of numbers rather than one of pairs: a float or a small int is no container,
    so the garbage collector never walks them (a pair per event made a busy pool's tries
    trigger collections that cost more than the tries).
    """

    __slots__ = ("counts", "times", "total")

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.counts: deque[int] = deque()  # how many happened at each of `times`
        self.total = 0

    def add(self, now: float) -> None:
        times = self.times
        if times and times[-1] == now:
            self.counts[-1] += 1
        else:
            times.append(now)
            self.counts.append(1)
        self.total += 1

    def since(self, horizon: float) -> int:
        """How many happened after ``horizon``; those at or before it are forgotten."""
        times = self.times
        while times and times[0] <= horizon:
            times.popleft()
            self.total -= self.counts.popleft()
        return self.total


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _rate(where: str, name: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        msg = f"{where}: {name} must be a number >= 0, got {value!r} ({type(value).__name__})"
        raise TypeError(msg)
    if not math.isfinite(value) or value < 0:
        msg = f"{where}: {name} must be a finite number >= 0, got {value!r}"
        raise ValueError(msg)
    return float(value)


def _checked(
    where: str, ratio: object, min_per_second: object, window: object, clock: object
) -> tuple[float, float, float, Clock]:
    return (
        _rate(where, "ratio", ratio),
        _rate(where, "min_per_second", min_per_second),
        positive_seconds(where, "window", window),
        clock_of(where, clock),
    )


def retry_budget(
    where: str, ratio: object, min_per_second: object, window: object, clock: object
) -> RetryBudget | None:
    """``ratio`` if it is a ``RetryBudget`` or ``None``, else a new budget of these arguments.

    They are checked for ``where``, and are ``UNSET`` where not given: a budget or ``None`` comes alone.
    """
    others = {"min_per_second": min_per_second, "window": window, "clock": clock}
    given = ", ".join(f"{name}={value!r}" for name, value in others.items() if value is not UNSET)
    if ratio is None or isinstance(ratio, RetryBudget):
        if given:
            meant = "None removes the budget" if ratio is None else "a RetryBudget has settings of its own"
            msg = f"{where}: {meant}, so it comes alone: got {ratio!r} with {given}"
            raise TypeError(msg)
        return ratio
    if not isinstance(ratio, int | float) or isinstance(ratio, bool):
        msg = f"{where}: ratio must be a RetryBudget or a number >= 0, got {ratio!r} ({type(ratio).__name__})"
        raise TypeError(msg)
    ratio, min_per_second, window, clock = _checked(
        where,
        ratio,
        MIN_PER_SECOND if min_per_second is UNSET else min_per_second,
        WINDOW if window is UNSET else window,
        None if clock is UNSET else clock,
    )
    return RetryBudget(ratio, min_per_second, window=window, clock=clock)
