"""How a pool runs its tasks: the ``with_*`` methods of ``Pool`` that change one of its settings."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, Self, overload

from ._adaptive import Adaptive
from ._checks import positive_int, timeout_seconds
from ._clock import Clock
from ._rate import RateLimit, rate_limit
from ._retry import DEFAULT_MAX_WAIT, RetryOn, RetryPolicy
from ._retry_budget import UNSET, RetryBudget, Unset, retry_budget
from ._settings import Settings
from ._task import Middleware, check_middleware


class PoolOptions:
    """The ``with_*`` methods of ``Pool``: each returns a copy of the pool with one setting changed.

    Example::

        pool = Pool(limit=8).with_retry(3, 0.2, on=ConnectionError).with_timeout(10)
    """

    __slots__ = ()

    _settings: Settings

    def with_limit(self, limit: int | Adaptive | None) -> Self:
        """A copy of this pool that runs at most ``limit`` tasks at a time (or as ``Adaptive`` finds)."""
        most, adaptive = concurrency("Pool.with_limit", limit)
        return self._with(limit=most, layers=replace(self._settings.layers, adaptive=adaptive))

    def with_retry(
        self,
        attempts: int,
        sleep: float | timedelta = 0.1,
        *,
        on: RetryOn = Exception,
        max_wait: float | timedelta = DEFAULT_MAX_WAIT,
        within: float | timedelta | None = None,
    ) -> Self:
        """A copy of this pool whose tasks without a retry of their own get this one.

        The arguments mean what they mean in ``Task.with_retry``: ``on``
        chooses the errors tried again, ``max_wait`` caps each wait and
        ``within`` is a time budget for all of a task's tries.
        """
        retry = RetryPolicy.checked("Pool.with_retry", attempts, sleep, max_wait, on, within)
        return self._with_layers(retry=retry)

    def with_timeout(self, seconds: float | timedelta | None) -> Self:
        """A copy of this pool whose tasks without a timeout of their own get this one.

        See ``Task.with_timeout``; ``None`` removes the pool's timeout.
        """
        return self._with_layers(timeout=timeout_seconds("Pool.with_timeout", seconds))

    @overload
    def with_rate_limit(self, limit: RateLimit | None, /) -> Self: ...
    @overload
    def with_rate_limit(self, limit: int, /, per: float | timedelta = 1.0) -> Self: ...
    def with_rate_limit(self, limit: RateLimit | int | None, /, per: float | timedelta = 1.0) -> Self:
        """A copy of this pool whose tasks' tries start at most ``limit`` times per ``per`` seconds.

        It applies with the concurrency limit, and with the tasks' own rate
        limits (see ``RateLimit``). ``None`` removes the pool's rate limit.

        Example::

            Pool(limit=20).with_rate_limit(100, per=1).go(tasks)  # at most 100 starts a second
        """
        rate = None if limit is None else rate_limit("Pool.with_rate_limit", limit, per)
        return self._with_layers(rate=rate)

    @overload
    def with_retry_budget(self, budget: RetryBudget | None, /) -> Self: ...
    @overload
    def with_retry_budget(
        self,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        *,
        window: float | timedelta = 10.0,
        clock: Clock | None = None,
    ) -> Self: ...
    def with_retry_budget(
        self,
        ratio: RetryBudget | float | None = 0.2,
        min_per_second: float | Unset = UNSET,
        *,
        window: float | timedelta | Unset = UNSET,
        clock: Clock | Unset | None = UNSET,
    ) -> Self:
        """A copy of this pool whose retries may add at most ``ratio`` of its recent first tries.

        Every first try of a task that may retry deposits ``ratio`` tokens,
        every retry takes one, both counted over the last ``window`` seconds;
        a retry goes ahead while ``ratio * first_tries + min_per_second *
        window - retries >= 1``, else its task fails with its last error (see
        ``RetryBudget``). By default ``min_per_second`` is 10 and ``window``
        10 seconds. Every task of the pool shares it; pass a ``RetryBudget``
        to share one between pools, or ``None`` to remove it (either alone:
        with another argument, a ``TypeError``).

        Example::

            pool = Pool(limit=8).with_retry(5, 0.1).with_retry_budget(0.2, min_per_second=10, window=10)
        """
        budget = retry_budget("Pool.with_retry_budget", ratio, min_per_second, window, clock)
        return self._with_layers(budget=budget)

    def with_middleware(self, *middleware: Middleware) -> Self:
        """A copy of this pool with ``middleware`` added inside what it had."""
        added = check_middleware("Pool.with_middleware", middleware)
        return self._with_layers(middleware=self._settings.layers.middleware + added)

    def with_queue_size(self, size: int | None) -> Self:
        """A copy of this pool whose running pools queue at most ``size`` tasks.

        With a full queue ``submit`` waits and ``submit_nowait`` raises
        ``QueueFull``. ``None`` (the default) never limits the queue.
        """
        return self._with(
            queue_size=None if size is None else positive_int("Pool.with_queue_size", "size", size)
        )

    def _with(self, **changes: Any) -> Self:
        raise NotImplementedError  # Pool's own: a copy has its own state

    def _with_layers(self, **changes: Any) -> Self:
        return self._with(layers=replace(self._settings.layers, **changes))


def concurrency(where: str, limit: object) -> tuple[int | None, Adaptive | None]:
    """A pool's ``limit`` as its number of workers and its adaptive limit, if it has one."""
    if isinstance(limit, Adaptive):
        return limit.max, limit  # as many workers as the limit may reach
    return (None if limit is None else positive_int(where, "limit", limit)), None
