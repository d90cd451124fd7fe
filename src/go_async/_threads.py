"""Plain ``def`` tasks run in worker threads, so that they never block the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class Threads:
    """A run's thread pool, made on first use, at most ``limit`` threads (``None``: Python's default)."""

    __slots__ = ("_executor", "_limit")

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._executor: ThreadPoolExecutor | None = None

    async def call(self, fn: Callable[[Any], Any], args: Any) -> Any:
        """``fn(args)`` in a thread, in the caller's context; a returned awaitable is awaited here."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._limit, thread_name_prefix="go_async")
        context = contextvars.copy_context()

        def call() -> Any:
            return context.run(fn, args)

        future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            await _outlast(future)
            raise
        # A plain function may still hand back an awaitable (a lambda calling
        # a coroutine function): run it rather than drop it.
        if inspect.isawaitable(result):
            return await result
        return result

    def close(self) -> None:
        """Wait for the threads to finish and release them (every call has returned by now)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


async def _outlast(future: Awaitable[object]) -> None:
    # A thread cannot be interrupted. We wait for it even through further
    # cancellations, so that once a cancelled run returns, none of its work is
    # still going on; the caller then re-raises the CancelledError.
    fut = asyncio.ensure_future(future)
    while not fut.done():
        try:
            await asyncio.wait((fut,))
        except asyncio.CancelledError:
            continue
    if not fut.cancelled():
        fut.exception()  # retrieved: the task's outcome is its cancellation
