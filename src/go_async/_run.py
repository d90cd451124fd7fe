"""One run of tasks: the worker loop, running one task, and what the run leaves behind."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from operator import itemgetter
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._drain import Drain
from ._middleware import run_chain
from ._retry import RetryPolicy, retry_after
from ._task import Args, Origin, Task, _Core, run_numbers

if TYPE_CHECKING:
    from ._hooks import HookSet
    from ._middleware import Middleware
    from ._rate import RateLimit
    from ._service import RunningPool

R = TypeVar("R")

_new = object.__new__
# What a run pulls from once its supply has ended.
_NO_MORE: Iterator[Any] = iter(())
# The most workers a run adds in one loop iteration (see `_add_workers`).
_MAX_BATCH = 100


class Run:
    """The state of one run: its errors, the drains it feeds, its workers and threads.

    A pool holds only configuration; everything that one call of ``go``/``ago``
    changes lives here, so runs never share state by accident.
    """

    __slots__ = (
        "_bare",
        "_default_retry",
        "_default_timeout",
        "_errors",
        "_executor",
        "_fed",
        "_hooks",
        "_interrupt",
        "_keep",
        "_middleware",
        "_notify_circuit",
        "_number",
        "_owns_executor",
        "_parent",
        "_rate",
        "_retried",
        "_service",
        "_source_error",
        "_specs",
        "_thread_limit",
        "_total",
    )

    def __init__(
        self,
        *,
        default_retry: RetryPolicy | None,
        thread_limit: int | None,
        default_timeout: float | None = None,
        executor: ThreadPoolExecutor | None = None,
        service: RunningPool | None = None,
        number: int | None = None,
        middleware: tuple[Middleware, ...] = (),
        hooks: HookSet | None = None,
        keep: Callable[[int, Any], object] | None = None,
        rate: RateLimit | None = None,
    ) -> None:
        self._number = next(run_numbers) if number is None else number
        self._rate = rate
        self._middleware = middleware
        self._hooks = hooks
        self._notify_circuit = None
        if hooks is not None and hooks.circuit_changed:
            self._notify_circuit = partial(hooks.emit, hooks.circuit_changed)
        # Where each task's result goes, by position (map's list), if anywhere.
        self._keep = keep
        # Nothing to do around a task but run it: the worker's fast path.
        self._bare = (
            default_timeout is None and not middleware and hooks is None and keep is None and rate is None
        )
        self._service = service
        self._owns_executor = executor is None
        self._retried = 0
        self._default_retry = default_retry
        self._default_timeout = default_timeout
        self._thread_limit = thread_limit
        self._errors: list[tuple[int, Exception]] = []
        self._fed: set[Drain[Any]] = set()
        self._executor = executor
        self._source_error: Exception | None = None
        self._interrupt: BaseException | None = None
        self._parent: asyncio.Task[Any] | None = None
        self._specs: Iterator[Task[Any]] = _NO_MORE
        self._total = 0

    async def drive(self, tasks: Iterable[Task[Any]], limit: int | None) -> None:
        """Run every task of ``tasks`` to its end, at most ``limit`` at a time."""
        self._specs = iter(tasks)
        self._parent = asyncio.current_task()
        try:
            async with asyncio.TaskGroup() as group:
                await self._add_workers(group, limit)
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

    async def run_here(self, args: Args[Any]) -> None:
        """Run the task of ``args`` alone, in the calling asyncio task."""
        core = args._task._core
        if core.drain is not None:
            self._feed(core.drain)
        self._total = args._index + 1
        await self._run_task(core, args, args._index)

    async def _add_workers(self, group: asyncio.TaskGroup, limit: int | None) -> None:
        # Workers pull their own tasks, so tasks that finish without waiting
        # all run on the first worker. While tasks remain, each loop iteration
        # adds a batch of workers (1, 2, 4... up to _MAX_BATCH), until the
        # limit: a pool reaches its limit within a few iterations, a small
        # run starts few idle workers, and without a limit no task waits long
        # for a worker while others wait on something.
        started, batch = 0, 1
        while True:
            if limit is not None:
                batch = min(batch, limit - started)
            for _ in range(batch):
                group.create_task(self._work())
            started += batch
            if started == limit:
                return
            await asyncio.sleep(0)
            if self._specs is _NO_MORE:
                return
            batch = min(2 * batch, _MAX_BATCH)

    async def _work(self) -> None:
        """Pull the run's next task and run it, until there are none left.

        This is the hot path of every pool, so it stays flat: a worker is one
        coroutine for all its tasks, pulled straight from the user's iterable
        (no queue between), and a task's first try is awaited right here,
        retry or not; only a failure takes the slower path.
        """
        me = cast("asyncio.Task[None]", asyncio.current_task())
        origin = Origin(self._number, self._service)
        bare = self._bare
        # What depends only on the task's core (shared by every input of one
        # task) is settled when the core changes, not for each task.
        named: _Core | None = None
        fast = False
        while True:
            try:
                task = next(self._specs)
            except StopIteration:
                self._specs = _NO_MORE
                return
            except Exception as error:
                # The user's iterable failed: no new task starts, the running
                # ones finish, and `raise_failures` reports it. Raising here
                # instead would abort the TaskGroup.
                error.add_note(f"raised by the tasks iterable after {self._total} tasks")
                self._stop_supply(error)
                return
            if not isinstance(task, Task):
                self._stop_supply(not_a_task(self._total, task))
                return
            index = self._total
            self._total = index + 1
            core = task._core
            if core is not named:
                named = core
                # Name the worker after its task, for debuggers and asyncio's introspection.
                me.set_name(core.label)
                if core.drain is not None and core.drain not in self._fed:
                    self._feed(core.drain)
                fast = core.plain and bare

            args: Args[Any] = _new(Args)  # pyright: ignore[reportUnknownVariableType]
            args._task, args._origin, args._index = task, origin, index
            if fast:
                failure = None
                try:
                    await core.fn(args)  # type: ignore[misc] # an async fn returns an awaitable
                except Exception as error:
                    failure = error
                except (KeyboardInterrupt, SystemExit) as interrupt:
                    self._interrupted(interrupt)
                if failure is not None:
                    await self._settle(index, core, args, failure)
            else:
                await self._run_task(core, args, index)
            # A task that swallowed its CancelledError must not make a
            # cancelled worker pull and start the next one.
            if me.cancelling():
                raise asyncio.CancelledError

    def _time_limit(self, core: _Core) -> float | None:
        return self._default_timeout if core.timeout is None else core.timeout

    async def _settle(self, index: int, core: _Core, args: Args[Any], failure: Exception) -> None:
        # The fast path's first try failed: retry the task if its policy (or
        # the pool's) says so, and record its final error otherwise.
        try:
            await self._retry(core, args, failure, self._time_limit(core))
        except Exception as error:
            self._errors.append((index, error))
        except (KeyboardInterrupt, SystemExit) as interrupt:
            self._interrupted(interrupt)

    async def _run_task(self, core: _Core, args: Args[Any], index: int) -> None:
        # Every task that needs more than an await: hooks, middleware, a
        # timeout, a thread, a result to keep.
        hooks = self._hooks
        started = 0.0
        if hooks is not None:
            if hooks.task_started:
                hooks.emit(hooks.task_started, args)
            started = perf_counter()
        middleware = self._middleware + core.middleware if core.middleware else self._middleware
        tries = self._tries if core.breaker is None else self._guarded
        try:
            if middleware:
                value = await run_chain(middleware, args, partial(tries, core, args))
            else:
                value = await tries(core, args)
            if self._keep is not None:
                self._keep(index, value)
        except Exception as error:
            self._errors.append((index, error))
            if hooks is not None and hooks.task_failed:
                hooks.emit(hooks.task_failed, args, error, perf_counter() - started)
            return
        except asyncio.CancelledError:
            if hooks is not None:
                hooks.emit(hooks.task_cancelled, args)
            raise
        except (KeyboardInterrupt, SystemExit) as interrupt:
            if hooks is not None:
                hooks.emit(hooks.task_cancelled, args)
            self._interrupted(interrupt)
        if hooks is not None and hooks.task_succeeded:
            hooks.emit(hooks.task_succeeded, args, perf_counter() - started)

    async def _guarded(self, core: _Core, args: Args[Any]) -> Any:
        # A task's tries, through its circuit breaker, which may refuse them.
        breaker = core.breaker
        assert breaker is not None
        notify = self._notify_circuit
        probe = breaker.admit(notify)
        try:
            value = await self._tries(core, args)
        except Exception as error:
            breaker.failed(probe, error, notify)
            raise
        except BaseException:
            breaker.abandoned(probe)
            raise
        breaker.succeeded(probe, notify)
        return value

    async def _tries(self, core: _Core, args: Args[Any]) -> Any:
        # A task's every try: the first, then those its retry policy allows.
        time_limit = self._time_limit(core)
        try:
            if time_limit is None and core.is_async and core.rate is None and self._rate is None:
                return await core.fn(args)  # type: ignore[misc] # an async fn returns an awaitable
            return await self._call(core, args, time_limit)
        except Exception as error:
            failure = error
        # Out of the except block, so that later errors do not chain to this one.
        return await self._retry(core, args, failure, time_limit)

    async def _retry(self, core: _Core, args: Args[Any], failure: Exception, time_limit: float | None) -> Any:
        # Try again after `failure`, as the task's retry policy (or the
        # pool's) allows; raise the final error.
        policy = core.retry or self._default_retry
        if policy is None or policy.attempts == 1:
            raise failure
        self._retried += 1
        hooks = self._hooks
        on_retry = (
            None if hooks is None or not hooks.task_retried else partial(hooks.emit, hooks.task_retried, args)
        )
        return await retry_after(failure, partial(self._call, core, args, time_limit), policy, on_retry)

    def _stop_supply(self, error: Exception) -> None:
        self._source_error = error
        self._specs = _NO_MORE

    def _feed(self, drain: Drain[Any]) -> None:
        # Readers of a drain wait until every run feeding it has ended.
        self._fed.add(drain)
        drain._begin_feed()

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

    async def _call(self, core: _Core, args: Args[Any], time_limit: float | None) -> Any:
        # One try of a task, returning what its function returned. Its turn
        # under a rate limit comes first: waiting for it is not part of the try.
        for rate in (self._rate, core.rate):
            if rate is not None and (turn := rate._take_turn()) is not None:
                await rate._clock.sleep_until(turn)
        if time_limit is None and core.is_async:
            return await core.fn(args)  # type: ignore[misc] # an async fn returns an awaitable
        return await self._try(core, args, time_limit)

    async def _try(self, core: _Core, args: Args[Any], time_limit: float | None) -> Any:
        if time_limit is not None:
            deadline = asyncio.timeout(time_limit)
            try:
                async with deadline:
                    return await self._try(core, args, None)
            except TimeoutError as error:
                if deadline.expired():
                    error.add_note(f"{args.task!r} timed out after {time_limit}s")
                raise
        if core.is_async:
            return await core.fn(args)  # type: ignore[misc] # an async fn returns an awaitable
        return await self._call_in_thread(core.fn, args)

    async def _call_in_thread(self, fn: Callable[[Args[Any]], Any], args: Args[Any]) -> Any:
        result = await self._in_thread(fn, args)
        # A plain function may still hand back an awaitable (a lambda calling
        # a coroutine function): run it rather than drop it.
        if inspect.isawaitable(result):
            return await result
        return result

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

    def close(self) -> None:
        """End the run's feeds and threads (every thread call is done by now)."""
        for drain in self._fed:
            drain._end_feed()
        self._fed.clear()
        if self._executor is not None and self._owns_executor:
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
        await run.run_here(Args(task))
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
