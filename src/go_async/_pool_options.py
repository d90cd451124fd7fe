"""How a pool runs its tasks: the ``with_*`` methods of ``Pool`` that change one of its settings."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, Self, overload

from ._checks import positive_int, timeout_seconds
from ._rate import RateLimit, rate_limit
from ._retry import DEFAULT_MAX_WAIT, RetryOn, RetryPolicy
from ._settings import Settings
from ._task import Middleware, check_middleware


class PoolOptions:
    """The ``with_*`` methods of ``Pool``: each returns a copy of the pool with one setting changed.

    Example::

        pool = Pool(limit=8).with_retry(3, 0.2, on=ConnectionError).with_timeout(10)
    """

    __slots__ = ()

    _settings: Settings

    def with_limit(self, limit: int | None) -> Self:
        """A copy of this pool that runs at most ``limit`` tasks at a time."""
        return self._with(limit=None if limit is None else positive_int("Pool.with_limit", "limit", limit))

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
