"""One run of tasks: the worker loop, running one task, and what the run leaves behind."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from typing import Any, TypeVar

from ._drain import Drain
from ._retry import RetryPolicy, call_with_retry
from ._task import Args, Task

R = TypeVar("R")


class Run:
    """The state of one run: its errors, the drains it feeds and its threads.

    A pool holds only configuration; everything that one call of ``go``/``ago``
    changes lives here, so runs never share state by accident.
    """

    __slots__ = (
        "_default_retry",
        "_errors",
        "_executor",
        "_fed",
        "_interrupt",
        "_parent",
        "_source_error",
        "_thread_limit",
        "_total",
    )

    def __init__(self, *, default_retry: RetryPolicy | None, thread_limit: int | None) -> None:
        self._default_retry = default_retry
        self._thread_limit = thread_limit
        self._errors: list[tuple[int, Exception]] = []
        self._fed: set[Drain[Any]] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._source_error: Exception | None = None
        self._interrupt: BaseException | None = None
        self._parent: asyncio.Task[Any] | None = None
        self._total = 0

    async def drive(self, tasks: Iterable[Task[Any]], limit: int | None) -> None:
        """Run every task of ``tasks`` to its end, at most ``limit`` at a time."""
        specs = self._numbered(tasks)
        self._parent = asyncio.current_task()
        try:
            async with asyncio.TaskGroup() as group:
                if limit is None:
                    for index, task in specs:
                        group.create_task(self.execute(index, task))
                    return
                # Each worker starts with a task in hand, so a run of fewer
                # tasks than the limit starts no idle workers.
                for workers, (index, task) in enumerate(specs, start=1):
                    group.create_task(self._worker(index, task, specs))
                    if workers == limit:
                        break
        except asyncio.CancelledError:
            if self._interrupt is None:
                raise
            # The cancellation was ours (see `_interrupted`): every task has
            # unwound, so now the interrupt may go on to stop the program.
            if self._parent is not None:
                self._parent.uncancel()
            raise self._interrupt from None
        finally:
            self.close()

    async def _worker(self, index: int, task: Task[Any], specs: Iterator[tuple[int, Task[Any]]]) -> None:
        # All workers pull from one iterator: no queue between producer and
        # workers, and at most `limit` specs are out of it at any time.
        me = asyncio.current_task()
        while True:
            await self.execute(index, task)
            # A task that swallowed its CancelledError must not make a
            # cancelled worker pull and start the next one.
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            spec = next(specs, None)
            if spec is None:
                return
            index, task = spec

    async def execute(self, index: int, task: Task[Any]) -> None:
        """Run ``task`` to its end, recording its final error under ``index``."""
        drain = task._drain
        if drain is not None and drain not in self._fed:
            self._fed.add(drain)
            drain._begin_feed()
        args = Args(task)
        policy = task._retry or self._default_retry
        try:
            if policy is not None:
                await call_with_retry(lambda: self._call(task, args), policy)
            elif task._is_async:
                # The hot path, inlined: no extra coroutine per task.
                result = task._fn(args)
                if result is not None:
                    await result
            else:
                await self._call(task, args)
        except Exception as error:
            self._errors.append((index, error))
        except (KeyboardInterrupt, SystemExit) as interrupt:
            self._interrupted(interrupt)

    def _interrupted(self, interrupt: BaseException) -> None:
        # Let KeyboardInterrupt or SystemExit escape a task and asyncio lets
        # it out of the event loop at once: the other tasks are then cancelled
        # by asyncio.run's clean-up, where the TaskGroup raises it again and
        # cuts that clean-up short, leaving tasks pending. Instead we keep it,
        # cancel the run so that every task unwinds inside the loop, and raise
        # it from `drive` once they have.
        if self._parent is None:
            raise interrupt
        if self._interrupt is None:
            self._interrupt = interrupt
            self._parent.cancel()
        raise asyncio.CancelledError

    async def _call(self, task: Task[Any], args: Args[Any]) -> None:
        if task._is_async:
            result = task._fn(args)
        else:
            result = await self._in_thread(task._fn, args)
        # A plain function may still hand back an awaitable (a lambda calling
        # a coroutine function): run it rather than drop it.
        if result is not None:
            await result

    async def _in_thread(self, fn: Callable[[Args[Any]], R], args: Args[Any]) -> R:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._thread_limit, thread_name_prefix="go_async")
        context = contextvars.copy_context()

        def call() -> R:
            return context.run(fn, args)

        future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await _outlast(future)
            raise

    def _numbered(self, tasks: Iterable[Task[Any]]) -> Iterator[tuple[int, Task[Any]]]:
        # An error from the user's iterable (or a non-task in it) stops the
        # supply of new tasks; the running ones finish and `raise_failures`
        # reports it. Raising here instead would abort the TaskGroup.
        index = -1
        try:
            for index, task in enumerate(tasks):
                if not isinstance(task, Task):
                    self._source_error = not_a_task(index, task)
                    return
                self._total = index + 1
                yield index, task
        except Exception as error:
            error.add_note(f"raised by the tasks iterable after {index + 1} tasks")
            self._source_error = error

    def close(self) -> None:
        """End the run's feeds and threads (every thread call is done by now)."""
        for drain in self._fed:
            drain._end_feed()
        self._fed.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def errors(self) -> list[Exception]:
        """The final error of each failed task, in submission order."""
        return [error for _, error in sorted(self._errors, key=itemgetter(0))]

    def raise_failures(self) -> None:
        """Raise what went wrong: the tasks iterable's error, else all task errors."""
        errors = self.errors()
        if self._source_error is not None:
            if errors:
                self._source_error.add_note(f"{len(errors)} tasks failed too: see pool.errors()")
            raise self._source_error
        if errors:
            msg = f"{len(errors)} of {self._total} tasks failed"
            raise ExceptionGroup(msg, errors)


def not_a_task(index: int, value: object) -> TypeError:
    """The error for a value in the tasks iterable that is not a Task."""
    hint = f": wrap the function as Task({getattr(value, '__name__', 'fn')})" if callable(value) else ""
    return TypeError(f"tasks[{index}] must be a Task, got {value!r} ({type(value).__name__}){hint}")


async def run_alone(task: Task[Any]) -> None:
    """Run one task outside any pool and raise its final error."""
    run = Run(default_retry=None, thread_limit=None)
    try:
        await run.execute(0, task)
    finally:
        run.close()
    errors = run.errors()
    if errors:
        raise errors[0]


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
