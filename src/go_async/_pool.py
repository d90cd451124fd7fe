"""Pool: a pool's settings, its blocking edge for scripts, ``async with`` for a running pool; and
``Hooks``, which lives here because its pool events hand over the ``Pool``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import replace
from functools import partial
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast, overload

from ._batch import Batch
from ._breaker import CircuitBreaker, CircuitState
from ._calls import calls, check_mapping, check_tasks, refuse_to_block, size_of, stream
from ._checks import positive_int
from ._hookset import HookSet, emit
from ._pool_options import PoolOptions
from ._progress import ProgressChoice, progress_hooks
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


class Pool(PoolOptions):
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

    def with_hooks(self, *hooks: Hooks) -> Self:
        """A copy of this pool with ``hooks`` added after those it had."""
        pool = self._with()
        added = check_hooks("Pool.with_hooks", hooks)
        pool._settings = _with_hooks(self._settings, self._settings.hooks + added)
        return pool

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

    def go(self, tasks: Iterable[Task[Any, Any, Any]], *, progress: ProgressChoice = False) -> None:
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

    async def ago(self, tasks: Iterable[Task[Any, Any, Any]], *, progress: ProgressChoice = False) -> None:
        """Run every task to its end; the async twin of ``go``.

        ``tasks`` may be any iterable; a generator is consumed lazily, so with
        a limit only ``limit`` tasks exist at once. A list or tuple is checked
        whole before anything starts.
        """
        check_tasks(tasks)
        await self._drive(tasks, progress_hooks("Pool.ago", progress, size_of(tasks), "go"))

    async def _drive(
        self,
        tasks: Iterable[Task[Any, Any, Any]],
        bar: object | None,
        keep: Callable[[int, Any], object] | None = None,
        deliver: Callable[[Any], Awaitable[object]] | None = None,
        *,
        settle: bool = False,
    ) -> list[tuple[int, Exception]]:
        # With `settle`, the tasks' failures are returned by position, not raised.
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
        return run.raise_failures(settle=settle)

    @overload
    def map(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Iterable[X],
        *,
        progress: ProgressChoice = ...,
        return_exceptions: Literal[False] = ...,
    ) -> list[R]: ...
    @overload
    def map(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Iterable[X],
        *,
        progress: ProgressChoice = ...,
        return_exceptions: Literal[True],
    ) -> list[R | Exception]: ...
    def map(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Iterable[X],
        *,
        progress: ProgressChoice = False,
        return_exceptions: bool = False,
    ) -> list[R] | list[R | Exception]:
        """``fn(x)`` for each of ``inputs``, run as tasks of this pool, in input order; blocks.

        For scripts; ``await pool.amap(fn, inputs)`` is its async twin. Every
        call runs to its end; if any failed, the failures are raised together
        as ``go`` raises them, and no partial list is returned, unless
        ``return_exceptions=True``: then each failed call's place in the list
        holds its final error. ``progress`` is as in ``go``.

        Example::

            async def size(url: str) -> int: ...

            sizes: list[int] = Pool(limit=8).map(size, urls)
            either: list[int | Exception] = Pool(limit=8).map(size, urls, return_exceptions=True)
        """
        refuse_to_block("Pool.map()", "await pool.amap(fn, inputs)")
        check_mapping("Pool.map", fn, inputs)
        bar = progress_hooks("Pool.map", progress, size_of(inputs), describe(fn))
        return asyncio.run(self._map(fn, inputs, bar, return_exceptions))

    @overload
    async def amap(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Iterable[X],
        *,
        progress: ProgressChoice = ...,
        return_exceptions: Literal[False] = ...,
    ) -> list[R]: ...
    @overload
    async def amap(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Iterable[X],
        *,
        progress: ProgressChoice = ...,
        return_exceptions: Literal[True],
    ) -> list[R | Exception]: ...
    async def amap(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Iterable[X],
        *,
        progress: ProgressChoice = False,
        return_exceptions: bool = False,
    ) -> list[R] | list[R | Exception]:
        """``fn(x)`` for each of ``inputs``, in input order; the async twin of ``map``."""
        check_mapping("Pool.amap", fn, inputs)
        bar = progress_hooks("Pool.amap", progress, size_of(inputs), describe(fn))
        return await self._map(fn, inputs, bar, return_exceptions)

    async def _map(
        self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X], bar: object | None, settle: bool
    ) -> list[R | Exception]:
        results: dict[int, R | Exception] = {}
        failures = await self._drive(calls(fn, inputs), bar, results.__setitem__, settle=settle)
        results.update(failures)
        return [results[index] for index in range(len(results))]

    def as_completed(
        self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X], *, progress: ProgressChoice = False
    ) -> AsyncGenerator[R, None]:
        """``fn(x)`` for each of ``inputs``, yielded as each one ends, run as tasks of this pool.

        Unread results stay bounded: ``limit`` wait for the reader, and a worker
        whose result cannot join them waits with it (twice ``limit`` at most).
        Once every result is out, the failures, if any, are raised together as
        ``go`` raises them. Leaving the loop early cancels the calls still
        running once the generator is closed (at once with
        ``contextlib.aclosing``); the failures so far are then in ``errors()``.
        ``progress`` is as in ``go``.

        Example::

            async with aclosing(Pool(limit=8).as_completed(fetch, urls)) as pages:
                async for page in pages:
                    print(page.title)
        """
        check_mapping("Pool.as_completed", fn, inputs)
        bar = progress_hooks("Pool.as_completed", progress, size_of(inputs), describe(fn))
        return stream(partial(self._drive, calls(fn, inputs), bar, None), self._settings.run_limit)

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
