"""Pool: runs tasks with a concurrency limit on one asyncio.TaskGroup."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Self

from ._checks import positive_int, timeout_seconds
from ._retry import DEFAULT_MAX_WAIT, RetryPolicy
from ._run import Run, not_a_task
from ._stage import effective_limit
from ._task import Task


class Pool:
    """Runs tasks at most ``limit`` at a time; ``None`` (the default) starts them all at once.

    ``go`` blocks (for scripts); ``await ago`` does the same in async code.
    Every task runs to its end; afterwards, if any failed, one
    ``ExceptionGroup`` holds each final error in submission order, and
    ``errors()`` lists them. ``STAGE=test`` in the environment forces one task
    at a time, in submission order.

    Example::

        pool = Pool(limit=8).with_retry(3, 0.2)
        pool.go(Task(fetch).with_input(url).drain_to(pages) for url in urls)
    """

    __slots__ = ("_errors", "_limit", "_retry", "_timeout")

    def __init__(self, limit: int | None = None) -> None:
        self._limit = None if limit is None else positive_int("Pool", "limit", limit)
        self._retry: RetryPolicy | None = None
        self._timeout: float | None = None
        self._errors: list[Exception] = []

    @property
    def limit(self) -> int | None:
        """The configured limit (``STAGE=test`` overrides it when a run starts)."""
        return self._limit

    def with_limit(self, limit: int | None) -> Self:
        """A copy of this pool that runs at most ``limit`` tasks at a time."""
        pool = self._copy()
        pool._limit = None if limit is None else positive_int("Pool.with_limit", "limit", limit)
        return pool

    def with_retry(
        self,
        attempts: int,
        sleep: float | timedelta = 0.1,
        *,
        max_wait: float | timedelta = DEFAULT_MAX_WAIT,
    ) -> Self:
        """A copy of this pool whose tasks without a retry of their own get this one.

        The arguments mean what they mean in ``Task.with_retry``.
        """
        pool = self._copy()
        pool._retry = RetryPolicy.checked("Pool.with_retry", attempts, sleep, max_wait)
        return pool

    def with_timeout(self, seconds: float | timedelta | None) -> Self:
        """A copy of this pool whose tasks without a timeout of their own get this one.

        See ``Task.with_timeout``; ``None`` removes the pool's timeout.
        """
        pool = self._copy()
        pool._timeout = timeout_seconds("Pool.with_timeout", seconds)
        return pool

    def errors(self) -> list[Exception]:
        """The final error of each task that failed in the last run, in submission order."""
        return self._errors.copy()

    def go(self, tasks: Iterable[Task[Any]]) -> None:
        """Run every task to its end, blocking until done; for scripts.

        Raises ``RuntimeError`` inside a running event loop: use
        ``await pool.ago(tasks)`` there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop here: the one case where blocking is right
        else:
            msg = (
                "Pool.go() blocks, so it cannot run inside a running event loop: use `await pool.ago(tasks)`"
            )
            raise RuntimeError(msg)
        asyncio.run(self.ago(tasks))

    async def ago(self, tasks: Iterable[Task[Any]]) -> None:
        """Run every task to its end; the async twin of ``go``.

        ``tasks`` may be any iterable; a generator is consumed lazily, so with
        a limit only ``limit`` tasks exist at once. A list or tuple is checked
        whole before anything starts.
        """
        _check_tasks(tasks)
        self._errors = []
        limit = effective_limit(self._limit)
        run = Run(default_retry=self._retry, thread_limit=limit, default_timeout=self._timeout)
        try:
            await run.drive(tasks, limit)
        finally:
            self._errors = run.errors()
        run.raise_failures()

    def __repr__(self) -> str:
        retry = "" if self._retry is None else f", retry={self._retry}"
        timeout = "" if self._timeout is None else f", timeout={self._timeout}s"
        return f"Pool(limit={self._limit}{retry}{timeout})"

    def _copy(self) -> Self:
        cls = type(self)
        pool = cls.__new__(cls)
        pool._limit = self._limit
        pool._retry = self._retry
        pool._timeout = self._timeout
        pool._errors = []
        return pool


def _check_tasks(tasks: Iterable[Task[Any]]) -> None:
    # Annotations do not bind untyped callers: check what we were given.
    if isinstance(tasks, Task) or not isinstance(tasks, Iterable):
        msg = f"Pool.go(tasks): tasks must be an iterable of Task, got {tasks!r} ({type(tasks).__name__})"
        raise TypeError(msg)
    if isinstance(tasks, list | tuple):
        for index, task in enumerate(tasks):
            if not isinstance(task, Task):
                raise not_a_task(index, task)
