"""Adaptive concurrency: a limit that grows while calls go well and shrinks when the service is overloaded.

Additive increase, multiplicative decrease, as TCP and Netflix's
concurrency-limits do it: each try that ends well at a steady latency, with
the limit in use, adds ``1 / limit`` (so the limit grows by one per limit's
worth of good tries); an overload (an error the user names, a timeout, or a
latency ``tolerance`` times the recent best) multiplies it by ``backoff``,
at most once per the best latency of late, so that one burst of failures
counts once. Every decision reads only the clock and the outcomes: on a
``ManualClock`` the same run gives the same trace.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, cast

from ._checks import positive_int, positive_seconds
from ._clock import SYSTEM_CLOCK, Clock

# What counts as an overload: error types, or a test of the error.
OverloadOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]
# How a try ended, as the limit sees it.
Outcome = Literal["ok", "overload", "other"]
# How fast the best latency drifts up, per second (so that a service that got slower for good
# is judged against its new normal in time): 1%, about 1.5 times in 40 seconds.
_BEST_DRIFT = 0.01


class Adaptive:
    """``Pool(limit=Adaptive(min=1, max=200))``: a concurrency limit that finds the service's capacity.

    The limit starts at ``initial`` (``min`` by default) and stays within
    ``[min, max]``. It grows while tries succeed at a steady latency with
    the limit in use, and shrinks (times ``backoff``) on an overload: an
    error for which ``overload`` says so (exception types, or a function of
    the error; timeouts always count), or a try slower than ``tolerance``
    times the best of the recent ones. Other errors leave it be. Each change
    goes to the pool's hooks (``limit_changed``) and OpenTelemetry;
    ``limit`` and ``changes`` read it now. One ``Adaptive`` belongs to one
    pool; ``clock`` (a ``ManualClock`` in tests) times the tries.

    Example::

        limit = Adaptive(min=2, max=200, overload=ServiceBusy)
        sizes = Pool(limit=limit).map(fetch_size, urls)
        print(limit.limit, limit.changes)
    """

    __slots__ = (
        "_backoff",
        "_best",
        "_best_at",
        "_calm_until",
        "_clock",
        "_overload",
        "_tolerance",
        "_waiters",
        "changes",
        "in_flight",
        "max",
        "min",
        "window",
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
        if not 0 < backoff < 1:
            msg = f"Adaptive: backoff must be between 0 and 1 (exclusive), got {backoff!r}"
            raise ValueError(msg)
        if positive_seconds("Adaptive", "tolerance", tolerance) <= 1:
            msg = f"Adaptive: tolerance must be above 1 (a multiple of the best latency), got {tolerance!r}"
            raise ValueError(msg)
        self._overload = _overload_test(overload)
        self._tolerance = float(tolerance)
        self._backoff = float(backoff)
        self._clock = SYSTEM_CLOCK if clock is None else clock
        # The limit as a real number: additive increase adds fractions of one.
        self.window: float = float(start)
        self.in_flight: int = 0
        self.changes: int = 0
        self._best: float | None = None  # the best latency of late
        self._best_at = 0.0  # when it was last set
        self._calm_until = -math.inf  # no second decrease before this time
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        """How many tries may run at once now."""
        return int(self.window)

    def __repr__(self) -> str:
        return f"Adaptive(min={self.min}, max={self.max}, limit={self.limit}, in_flight={self.in_flight})"

    # --- around each try ----------------------------------------------------------

    async def acquire(self) -> float:
        """Wait for room under the limit (first come, first served); the clock's time it started."""
        if self.in_flight >= self.limit or self._waiters:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.in_flight -= 1  # given room, but cancelled first: the room goes to the next
                    self._wake()
                elif waiter in self._waiters:  # a release may have dropped it already (cancelled)
                    self._waiters.remove(waiter)
                raise
        else:
            self.in_flight += 1
        return self._clock.time()

    def release(
        self, started: float, error: BaseException | None, notify: Callable[..., object] | None
    ) -> None:
        """A try begun at ``started`` ended (with ``error`` if it failed): adjust, then admit the next."""
        self.in_flight -= 1
        latency = self._clock.time() - started
        outcome = self._outcome(error, latency)
        if error is None:
            now, best = self._clock.time(), self._best
            if best is not None:
                best *= 1 + _BEST_DRIFT * (now - self._best_at)
            if best is None or latency <= best:
                best = latency
            self._best, self._best_at = best, now
        before = self.limit
        if outcome == "overload":
            self._decrease()
        elif outcome == "ok" and 2 * (self.in_flight + 1) >= before:
            # Only a limit in use grows: idle room says nothing about the capacity.
            self.window = min(float(self.max), self.window + 1 / self.window)
        after = self.limit
        if after != before:
            self.changes += 1
            if notify is not None:
                notify(before, after, outcome)
        self._wake()

    def _outcome(self, error: BaseException | None, latency: float) -> Outcome:
        if error is None:
            best = self._best
            slow = best is not None and best > 0 and latency > self._tolerance * best
            return "overload" if slow else "ok"
        if isinstance(error, TimeoutError) or (isinstance(error, Exception) and self._overload(error)):
            return "overload"
        return "other"

    def _decrease(self) -> None:
        now = self._clock.time()
        if now < self._calm_until:
            return  # the tries of one burst were overloaded together: it counts once
        self.window = max(float(self.min), math.floor(self.window * self._backoff))
        self._calm_until = now + (self._best or 0.0)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


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
    started = await adaptive.acquire()
    try:
        value = await call(args)
    except BaseException as error:
        adaptive.release(started, error, notify)
        raise
    adaptive.release(started, None, notify)
    return value
