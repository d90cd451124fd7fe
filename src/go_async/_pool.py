"""Pool: a pool's settings, its blocking edge for scripts, ``async with`` for a running pool; and
``Hooks``, which lives here because its pool events hand over the ``Pool``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar, cast, overload

from ._batch import Batch
from ._breaker import CircuitBreaker, CircuitState
from ._calls import calls, check_mapping, check_tasks, refuse_to_block, size_of, stream
from ._checks import positive_int, timeout_seconds
from ._hookset import HookSet, emit
from ._progress import ProgressChoice, progress_hooks
from ._rate import RateLimit, rate_limit
from ._retry import DEFAULT_MAX_WAIT, RetryPolicy
from ._running import RunningPool
from ._settings import Settings
from ._spec import describe
from ._task import Args, Middleware, Task, check_middleware

X = TypeVar("X")
R = TypeVar("R")


class Hooks:
    """Override the events you want to hear of; the others cost nothing.

    Hooks are plain (not async) methods called on the event loop as each
    event happens, in the context of the task they are about. Keep them
    quick. A hook that raises is logged on the ``go_async`` logger and the
    run goes on; it never changes a task's outcome. ``task_queued`` and the
    cancellation of a queued task only happen in a running pool.

    Example::

        class CountFailures(Hooks):
            def __init__(self) -> None:
                self.failed = 0

            def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
                self.failed += 1

        Pool(limit=8, hooks=[CountFailures()]).go(tasks)
    """

    def pool_started(self, pool: Pool) -> None:
        """A run of ``go``/``map`` began, or a running pool opened."""

    def pool_closed(self, pool: Pool) -> None:
        """That run, or that running pool, ended: every task has ended too."""

    def task_queued(self, args: Args[Any]) -> None:
        """A task was submitted to a running pool and waits for room."""

    def task_started(self, args: Args[Any]) -> None:
        """A task began its first try."""

    def task_retried(self, args: Args[Any], error: Exception, attempt: int, wait: float) -> None:
        """Try number ``attempt`` failed with ``error``; the next starts in ``wait`` seconds."""

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        """A task ended well, ``seconds`` after it started (retries included)."""

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        """A task ended with its final ``error``, ``seconds`` after it started."""

    def task_cancelled(self, args: Args[Any]) -> None:
        """A task was cancelled, running or (in a running pool) still queued."""

    def circuit_changed(self, breaker: CircuitBreaker, state: CircuitState) -> None:
        """A task of this pool moved ``breaker`` to ``state`` (see ``CircuitBreaker``)."""


class Pool:
    """Runs tasks at most ``limit`` at a time; ``None`` (the default) starts them all at once.

    ``go`` blocks (for scripts); ``await ago`` does the same in async code.
    Every task runs to its end; afterwards, if any failed, one
    ``ExceptionGroup`` holds each final error in submission order, and
    ``errors()`` lists them. ``STAGE=test`` in the environment forces one task
    at a time, in submission order. ``middleware`` wraps every task (see
    ``Middleware``), and ``hooks`` hear of every task's events (see ``Hooks``).

    A pool is its settings: each ``with_*`` returns a new pool, and every
    run (each ``go``/``map``, each ``async with``) keeps its state to itself,
    so one pool serves many runs at once.

    Example::

        pool = Pool(limit=8, middleware=[LogTasks()]).with_retry(3, 0.2)
        pool.go(Task(fetch).with_input(url).drain_to(pages) for url in urls)
    """

    __slots__ = ("_errors", "_open", "_settings")

    def __init__(
        self,
        limit: int | None = None,
        *,
        middleware: Iterable[Middleware] = (),
        hooks: Iterable[Hooks] = (),
    ) -> None:
        checked = None if limit is None else positive_int("Pool", "limit", limit)
        layers = replace(Settings().layers, middleware=check_middleware("Pool(middleware)", middleware))
        self._settings = _with_hooks(
            Settings(limit=checked, layers=layers), check_hooks("Pool(hooks)", hooks)
        )
        self._errors: list[Exception] = []
        # The running pools that `async with` opened, by the asyncio task that opened them.
        self._open: dict[asyncio.Task[Any] | None, list[RunningPool]] = {}

    @property
    def limit(self) -> int | None:
        """The configured limit (``STAGE=test`` overrides it when a run starts)."""
        return self._settings.limit

    def with_limit(self, limit: int | None) -> Self:
        """A copy of this pool that runs at most ``limit`` tasks at a time."""
        return self._with(limit=None if limit is None else positive_int("Pool.with_limit", "limit", limit))

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
        return self._with_layers(retry=RetryPolicy.checked("Pool.with_retry", attempts, sleep, max_wait))

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

    def with_hooks(self, *hooks: Hooks) -> Self:
        """A copy of this pool with ``hooks`` added after those it had."""
        pool = self._with()
        added = check_hooks("Pool.with_hooks", hooks)
        pool._settings = _with_hooks(self._settings, self._settings.hooks + added)
        return pool

    def with_queue_size(self, size: int | None) -> Self:
        """A copy of this pool whose running pools queue at most ``size`` tasks.

        With a full queue ``submit`` waits and ``submit_nowait`` raises
        ``QueueFull``. ``None`` (the default) never limits the queue.
        """
        return self._with(
            queue_size=None if size is None else positive_int("Pool.with_queue_size", "size", size)
        )

    async def __aenter__(self) -> RunningPool:
        """Open a running pool that takes tasks until the block ends (see ``RunningPool``)."""
        running = RunningPool(self._settings, owner=self)
        await running._open()
        self._open.setdefault(asyncio.current_task(), []).append(running)
        return running

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        # Each block closes the running pool it opened, even when several
        # asyncio tasks use this pool at once.
        opener = asyncio.current_task()
        mine = self._open[opener]
        running = mine.pop()
        if not mine:
            del self._open[opener]
        await running._close(error)

    def errors(self) -> list[Exception]:
        """The final error of each task that failed in the run of this pool that ended last.

        A run sets it as it ends (a run that starts leaves it be), so with
        runs going on at once it is the list of whichever ended last; each
        run's own ``ExceptionGroup`` always holds exactly its failures.
        """
        return self._errors.copy()

    def go(self, tasks: Iterable[Task[Any]], *, progress: ProgressChoice = False) -> None:
        """Run every task to its end, blocking until done; for scripts.

        Raises ``RuntimeError`` inside a running event loop: use
        ``await pool.ago(tasks)`` there. ``progress=True`` draws a progress
        bar with tqdm, or rich if tqdm is not installed (``"tqdm"`` or
        ``"rich"`` picks one): install ``go-async[tqdm]`` or ``go-async[rich]``.
        """
        refuse_to_block("Pool.go()", "await pool.ago(tasks)")
        check_tasks(tasks)
        bar = progress_hooks("Pool.go", progress, size_of(tasks), "go")
        asyncio.run(self._drive(tasks, bar))

    async def ago(self, tasks: Iterable[Task[Any]], *, progress: ProgressChoice = False) -> None:
        """Run every task to its end; the async twin of ``go``.

        ``tasks`` may be any iterable; a generator is consumed lazily, so with
        a limit only ``limit`` tasks exist at once. A list or tuple is checked
        whole before anything starts.
        """
        check_tasks(tasks)
        await self._drive(tasks, progress_hooks("Pool.ago", progress, size_of(tasks), "go"))

    async def _drive(
        self,
        tasks: Iterable[Task[Any]],
        bar: object | None,
        keep: Callable[[int, Any], object] | None = None,
        deliver: Callable[[Any], Awaitable[object]] | None = None,
    ) -> None:
        settings = (
            self._settings if bar is None else _with_hooks(self._settings, (*self._settings.hooks, bar))
        )
        run = Batch(settings, keep, deliver)
        events = settings.events
        if events is not None:
            emit(events.pool_started, self)
        try:
            await run.drive(tasks, settings.run_limit)
        finally:
            self._errors = run.errors()
            if events is not None:
                emit(events.pool_closed, self)
        run.raise_failures()

    def map(
        self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X], *, progress: ProgressChoice = False
    ) -> list[R]:
        """``fn(x)`` for each of ``inputs``, run as tasks of this pool, in input order; blocks.

        For scripts; ``await pool.amap(fn, inputs)`` is its async twin. Every
        call runs to its end; if any failed, the failures are raised together
        as ``go`` raises them, and no partial list is returned. ``progress``
        is as in ``go``.

        Example::

            async def size(url: str) -> int: ...

            sizes: list[int] = Pool(limit=8).map(size, urls)
        """
        refuse_to_block("Pool.map()", "await pool.amap(fn, inputs)")
        check_mapping("Pool.map", fn, inputs)
        bar = progress_hooks("Pool.map", progress, size_of(inputs), describe(fn))
        return asyncio.run(self._map(fn, inputs, bar))

    async def amap(
        self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X], *, progress: ProgressChoice = False
    ) -> list[R]:
        """``fn(x)`` for each of ``inputs``, in input order; the async twin of ``map``."""
        check_mapping("Pool.amap", fn, inputs)
        return await self._map(
            fn, inputs, progress_hooks("Pool.amap", progress, size_of(inputs), describe(fn))
        )

    async def _map(self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X], bar: object | None) -> list[R]:
        results: dict[int, R] = {}
        await self._drive(calls(fn, inputs), bar, results.__setitem__)
        return [results[index] for index in range(len(results))]

    def as_completed(self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X]) -> AsyncGenerator[R, None]:
        """``fn(x)`` for each of ``inputs``, yielded as each one ends, run as tasks of this pool.

        Unread results stay bounded: ``limit`` wait for the reader, and a worker
        whose result cannot join them waits with it (twice ``limit`` at most).
        Once every result is out, the failures, if any, are raised together as
        ``go`` raises them. Leaving the loop early cancels the calls still
        running once the generator is closed (at once with
        ``contextlib.aclosing``); the failures so far are then in ``errors()``.

        Example::

            async with aclosing(Pool(limit=8).as_completed(fetch, urls)) as pages:
                async for page in pages:
                    print(page.title)
        """
        check_mapping("Pool.as_completed", fn, inputs)
        return self._as_completed(fn, inputs)

    def _as_completed(self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X]) -> AsyncGenerator[R, None]:
        return stream(partial(self._drive, calls(fn, inputs), None, None), self._settings.run_limit)

    def __repr__(self) -> str:
        settings, layers = self._settings, self._settings.layers
        retry = "" if layers.retry is None else f", retry={layers.retry}"
        timeout = "" if layers.timeout is None else f", timeout={layers.timeout}s"
        queue = "" if settings.queue_size is None else f", queue_size={settings.queue_size}"
        rate = "" if layers.rate is None else f", rate={layers.rate!r}"
        return f"Pool(limit={settings.limit}{retry}{timeout}{queue}{rate})"

    def _with(self, **changes: Any) -> Self:
        pool = object.__new__(type(self))
        pool._settings = replace(self._settings, **changes)
        pool._errors = []
        pool._open = {}
        return pool

    def _with_layers(self, **changes: Any) -> Self:
        return self._with(layers=replace(self._settings.layers, **changes))


def _with_hooks(settings: Settings, hooks: tuple[object, ...]) -> Settings:
    return replace(settings, hooks=hooks, events=HookSet.of(hooks, Hooks))


def check_hooks(where: str, hooks: object) -> tuple[Hooks, ...]:
    """``hooks`` as a tuple, or a TypeError naming what is not a ``Hooks``."""
    if isinstance(hooks, Hooks) or not isinstance(hooks, Iterable):
        msg = f"{where}: hooks must be an iterable of Hooks, got {hooks!r} ({type(hooks).__name__})"
        raise TypeError(msg)
    checked: list[Hooks] = []
    for index, hook in enumerate(cast("Iterable[object]", hooks)):
        if not isinstance(hook, Hooks):
            msg = f"{where}: hooks[{index}] must be a Hooks instance, got {hook!r} ({type(hook).__name__})"
            raise TypeError(msg)
        checked.append(hook)
    return tuple(checked)
