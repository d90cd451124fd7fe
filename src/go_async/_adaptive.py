"""Adaptive concurrency: a limit that grows while calls go well and shrinks when the service is overloaded.

Additive increase, multiplicative decrease, as TCP and Netflix's
concurrency-limits do it: each try that ends well at a steady latency while
the limit is in use (another try waits for room) adds ``1 / limit``, so the
limit grows by one per limit's worth of such tries; an overload (an error the
user names, a timeout, or a latency ``tolerance`` times the recent best)
sets it to ``floor(limit * backoff)``, one less at least. An overload counts
only for a try let in after the last decrease, as TCP's NewReno counts one
loss per window: the tries let in before it saw the old limit. Every
decision reads only the clock and the outcomes: on a ``ManualClock`` the
same run gives the same trace.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, cast

from ._checks import positive_int
from ._clock import Clock, clock_of

# What counts as an overload: error types, or a test of the error.
OverloadOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]
# How a try ended, as the limit sees it.
Outcome = Literal["ok", "overload", "other"]
# A try let in: the clock's time then, and its ticket (how many were let in before it, plus one).
Admission = tuple[float, int]
# How fast the best latency drifts up, per second (so that a service that got slower for good
# is judged against its new normal in time): 1%, about 1.5 times in 40 seconds.
_BEST_DRIFT = 0.01


class Adaptive:
    """``Pool(limit=Adaptive(min=1, max=200))``: a concurrency limit that finds the service's capacity.

    The limit starts at ``initial`` (``min`` by default) and stays within
    ``[min, max]``. A try that succeeds, no slower than ``tolerance`` times
    the best latency of late, while another try waits for room, adds
    ``1 / limit``. An overload sets the limit to ``floor(limit * backoff)``
    (one less at least): an error for which ``overload`` says so (exception
    types, or a function of the error; timeouts always count), or a try
    slower than that. Only a try let in after the last decrease can cause
    another. Other errors, and tries that end well with no one waiting,
    leave it be. Each change goes to the pool's hooks (``limit_changed``)
    and OpenTelemetry; ``limit`` and ``changes`` read it now. One
    ``Adaptive`` belongs to one pool; ``clock`` (a ``ManualClock`` in tests)
    times the tries.

    Example::

        limit = Adaptive(min=2, max=200, overload=ServiceBusy)
        sizes = Pool(limit=limit).map(fetch_size, urls)
        print(limit.limit, limit.changes)
    """

    __slots__ = (
        "_admitted",
        "_backoff",
        "_best",
        "_best_at",
        "_clock",
        "_cut_after",
        "_limit",
        "_overload",
        "_tolerance",
        "_waiters",
        "_window",
        "changes",
        "in_flight",
        "max",
        "min",
    )

    def __init__(
        self,
        min: int = 1,  # the words users read: Adaptive(min=1, max=200)
        max: int = 100,
        *,
        initial: int | None = None,
        overload: OverloadOn = (),
        tolerance: float = 2.0,
        backoff: float = 0.9,
        clock: Clock | None = None,
    ) -> None:
        self.min: int = positive_int("Adaptive", "min", min)
        self.max: int = positive_int("Adaptive", "max", max)
        if self.max < self.min:
            msg = f"Adaptive: max must be at least min ({self.min}), got {max!r}"
            raise ValueError(msg)
        start = self.min if initial is None else positive_int("Adaptive", "initial", initial)
        if not self.min <= start <= self.max:
            msg = f"Adaptive: initial must be within [min, max] = [{self.min}, {self.max}], got {initial!r}"
            raise ValueError(msg)
        self._backoff = _number("backoff", backoff, "between 0 and 1 (exclusive)", lambda b: 0 < b < 1)
        self._tolerance = _number(
            "tolerance",
            tolerance,
            "above 1 and finite (a multiple of the best latency)",
            lambda t: 1 < t < math.inf,
        )
        self._overload = _overload_test(overload)
        self._clock: Clock = clock_of("Adaptive", clock)
        # The limit as a real number: additive increase adds fractions of one.
        self._window = float(start)
        self._limit = start  # int(window), kept beside it: every try reads it
        self.in_flight: int = 0
        self.changes: int = 0
        self._best: float | None = None  # the best latency of late
        self._best_at = 0.0  # when it was last set
        self._admitted = 0  # tries let in so far: each try's ticket is its number
        self._cut_after = 0  # the last ticket before the last decrease
        self._waiters: deque[asyncio.Future[int]] = deque()

    @property
    def limit(self) -> int:
        """How many tries may run at once now."""
        return self._limit

    @property
    def window(self) -> float:
        """The limit as a real number: additive increase adds fractions of one."""
        return self._window

    @window.setter
    def window(self, value: float) -> None:
        self._window, self._limit = value, int(value)

    def __repr__(self) -> str:
        return f"Adaptive(min={self.min}, max={self.max}, limit={self.limit}, in_flight={self.in_flight})"

    # --- around each try ----------------------------------------------------------

    def _admit(self) -> Admission:
        """Room now, when ``_has_room``: the clock's time, and a ticket (``acquire`` without the wait)."""
        started = self._clock.time()  # before the slot is taken: a clock that fails takes nothing
        self.in_flight += 1
        self._admitted += 1
        return started, self._admitted

    @property
    def _has_room(self) -> bool:
        """Whether a try may start now: below the limit, with no try waiting before it."""
        return self.in_flight < self._limit and not self._waiters

    async def acquire(self) -> Admission:
        """Wait for room under the limit (first come, first served); the clock's time then, and a ticket."""
        if self._has_room:
            return self._admit()
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            ticket = await waiter
            return self._clock.time(), ticket
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # given room, but cancelled (or the clock failed): it goes to the next
                self._wake()
            elif waiter in self._waiters:  # a release may have dropped it already (cancelled)
                self._waiters.remove(waiter)
            raise

    def release(
        self, admission: Admission, error: BaseException | None, notify: Callable[..., object] | None
    ) -> None:
        """A try let in by ``admission`` ended (with ``error`` if it failed): adjust, then admit the next."""
        self.in_flight -= 1
        try:
            self._adjust(admission, error, notify)
        finally:
            if self._waiters:  # whatever the clock or a hook did, the room goes to the next
                self._wake()

    def _adjust(
        self, admission: Admission, error: BaseException | None, notify: Callable[..., object] | None
    ) -> None:
        started, ticket = admission
        now = self._clock.time()
        latency = now - started
        if error is None:
            best = self._best
            if best is None:
                outcome: Outcome = "ok"
                best = latency
            else:
                outcome = "overload" if best > 0 and latency > self._tolerance * best else "ok"
                best *= 1 + _BEST_DRIFT * (now - self._best_at)  # the best of late: it drifts up
                best = min(best, latency)
            self._best, self._best_at = best, now
        else:
            outcome = self._outcome_of(error)
        before = self._limit
        if outcome == "overload":
            if ticket > self._cut_after:
                # A try let in before the last decrease saw the limit before it: it counts once.
                self.window = float(max(self.min, math.floor(before * self._backoff)))
                self._cut_after = self._admitted
        elif outcome == "ok" and self._waiters:
            # Grow only a limit in use (a try waits for room): idle room says nothing of the capacity.
            self.window = min(float(self.max), self.window + 1 / self.window)
        after = self._limit
        if after != before:
            self.changes += 1
            if notify is not None:
                notify(before, after, outcome)

    def _outcome_of(self, error: BaseException) -> Outcome:
        if isinstance(error, TimeoutError) or (isinstance(error, Exception) and self._overload(error)):
            return "overload"
        return "other"

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                self._admitted += 1
                waiter.set_result(self._admitted)


def _number(name: str, value: object, within: str, fits: Callable[[float], bool]) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        msg = f"Adaptive: {name} must be a number {within}, got {value!r} ({type(value).__name__})"
        raise TypeError(msg)
    if not fits(float(value)):  # NaN fits no range: it is refused here too
        msg = f"Adaptive: {name} must be a number {within}, got {value!r}"
        raise ValueError(msg)
    return float(value)


def _overload_test(overload: object) -> Callable[[Exception], bool]:
    kinds = _as_tuple(overload)
    if all(isinstance(kind, type) and issubclass(kind, Exception) for kind in kinds):
        types = tuple(kind for kind in kinds if isinstance(kind, type))
        return lambda error: isinstance(error, types)
    if callable(overload) and not isinstance(overload, type):
        test = cast("Callable[[Exception], object]", overload)
        return lambda error: bool(test(error))
    msg = (
        "Adaptive: overload must be an Exception subclass, a tuple of them, or a function of the error "
        f"returning bool, got {overload!r} ({type(overload).__name__})"
    )
    raise TypeError(msg)


def _as_tuple(given: object) -> tuple[object, ...]:
    return cast("tuple[object, ...]", given) if isinstance(given, tuple) else (given,)


async def gated(
    adaptive: Adaptive, call: Callable[[Any], Any], args: Any, notify: Callable[..., object] | None
) -> Any:
    """``await call(args)`` once there is room under ``adaptive``; the try's end adjusts the limit."""
    # Room now is the common case: taken without a coroutine of its own.
    admission = adaptive._admit() if adaptive._has_room else await adaptive.acquire()
    try:
        value = await call(args)
    except BaseException as error:
        adaptive.release(admission, error, notify)
        raise
    adaptive.release(admission, None, notify)
    return value
