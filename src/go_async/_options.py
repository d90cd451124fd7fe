"""How a task runs, apart from what it runs: the ``with_*`` methods every ``Task`` has.

They only replace fields of the task's ``Spec`` (see ``_spec``), so they
live apart from ``Task`` itself, which adds its typed function, input and
drain on top.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, Self, overload

from ._breaker import CircuitBreaker
from ._checks import integer, label, timeout_seconds
from ._rate import RateLimit, rate_limit
from ._retry import DEFAULT_MAX_WAIT, RetryOn, RetryPolicy
from ._spec import Spec


class TaskOptions:
    """The ``with_*`` methods of ``Task``: each returns a copy of the task with one setting changed.

    Example::

        fetch_page = Task(fetch).with_retry(5, 0.2, on=ConnectionError).with_timeout(10)
    """

    __slots__ = ()

    _spec: Spec

    def with_retry(
        self,
        attempts: int,
        sleep: float | timedelta = 0.1,
        *,
        on: RetryOn = Exception,
        max_wait: float | timedelta = DEFAULT_MAX_WAIT,
        within: float | timedelta | None = None,
    ) -> Self:
        """A copy of this task that tries up to ``attempts`` times in all.

        After the n-th failure it waits ``sleep * 2 ** (n - 1)`` seconds plus
        a jitter of up to half that; ``max_wait`` caps each single wait (not
        their sum). ``on`` chooses the errors tried again: an ``Exception``
        subclass, a tuple of them, or a function of the error returning
        ``True`` to retry; any other error is final at once. ``within`` is a
        time budget in seconds for all tries together, from the first try's
        start: a wait that would end past it is not taken. The last error is
        the task's error. Backed by tenacity.

        Example::

            Task(fetch).with_retry(5, 0.5, on=(ConnectionError, TimeoutError), within=30)
        """
        retry = RetryPolicy.checked("Task.with_retry", attempts, sleep, max_wait, on, within)
        return self._with_layers(retry=retry)

    def with_timeout(self, seconds: float | timedelta | None) -> Self:
        """A copy of this task whose every try fails with ``TimeoutError`` after ``seconds``.

        A try that times out is a failure like any other: the task's retry, if
        it has one, tries again. ``None`` means no timeout of its own (the
        pool's applies, if it has one). A plain ``def`` cannot be interrupted:
        its try fails once the function returns.
        """
        timeout = timeout_seconds("Task.with_timeout", seconds)
        return self._with_layers(timeout=timeout)

    def with_name(self, name: str) -> Self:
        """A copy of this task named ``name``, which ``args.name`` gives inside it."""
        return self._with(name=label("Task.with_name", "name", name))

    def with_tags(self, *tags: str) -> Self:
        """A copy of this task with exactly these ``tags`` (``args.tags`` inside it)."""
        checked = tuple(dict.fromkeys(label("Task.with_tags", "tag", tag) for tag in tags))
        return self._with(tags=checked)

    def with_priority(self, priority: int) -> Self:
        """A copy of this task that a running pool starts before queued tasks of lower priority.

        Higher runs first; equal priorities run in the order they were
        submitted. The default is 0; negative values are allowed.
        """
        return self._with(priority=integer("Task.with_priority", "priority", priority))

    @overload
    def with_rate_limit(self, limit: RateLimit, /) -> Self: ...
    @overload
    def with_rate_limit(self, limit: int, /, per: float | timedelta = 1.0) -> Self: ...
    def with_rate_limit(self, limit: RateLimit | int, /, per: float | timedelta = 1.0) -> Self:
        """A copy of this task whose tries start at most ``limit`` times per ``per`` seconds.

        The limit is shared by every copy of this task (every input), and by
        every task given the same ``RateLimit`` object (see ``RateLimit``).
        It replaces the task's rate limit, if it had one.
        """
        return self._with_layers(rate=rate_limit("Task.with_rate_limit", limit, per))

    def with_circuit_breaker(self, breaker: CircuitBreaker) -> Self:
        """A copy of this task whose runs go through ``breaker`` (see ``CircuitBreaker``).

        Give the same breaker to several tasks and their failures count together.
        """
        if not isinstance(breaker, CircuitBreaker):
            kind = type(breaker).__name__
            msg = f"Task.with_circuit_breaker: breaker must be a CircuitBreaker, got {breaker!r} ({kind})"
            raise TypeError(msg)
        return self._with_layers(breaker=breaker)

    def _with(self, **changes: Any) -> Self:
        raise NotImplementedError  # Task's own: a copy keeps its input too

    def _with_layers(self, **changes: Any) -> Self:
        return self._with(layers=replace(self._spec.layers, **changes))
