"""Pool: runs tasks with a concurrency limit on one asyncio.TaskGroup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sized
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, TypeVar, cast, overload

from ._checks import positive_int, timeout_seconds
from ._drain import Drain
from ._hooks import Hooks, HookSet, check_hooks
from ._middleware import Middleware, check_middleware
from ._progress import ProgressChoice, progress_hooks
from ._rate import RateLimit, rate_limit
from ._retry import DEFAULT_MAX_WAIT, RetryPolicy
from ._run import Run, not_a_task
from ._service import RunningPool
from ._stage import effective_limit
from ._task import Args, Task, _describe

X = TypeVar("X")
R = TypeVar("R")


class Pool:
    """Runs tasks at most ``limit`` at a time; ``None`` (the default) starts them all at once.

    ``go`` blocks (for scripts); ``await ago`` does the same in async code.
    Every task runs to its end; afterwards, if any failed, one
    ``ExceptionGroup`` holds each final error in submission order, and
    ``errors()`` lists them. ``STAGE=test`` in the environment forces one task
    at a time, in submission order. ``middleware`` wraps every task (see
    ``Middleware``), and ``hooks`` hear of every task's events (see ``Hooks``).

    Example::

        pool = Pool(limit=8, middleware=[LogTasks()]).with_retry(3, 0.2)
        pool.go(Task(fetch).with_input(url).drain_to(pages) for url in urls)
    """

    __slots__ = (
        "_errors",
        "_hooks",
        "_limit",
        "_middleware",
        "_open",
        "_queue_size",
        "_rate",
        "_retry",
        "_timeout",
    )

    def __init__(
        self,
        limit: int | None = None,
        *,
        middleware: Iterable[Middleware] = (),
        hooks: Iterable[Hooks] = (),
    ) -> None:
        self._limit = None if limit is None else positive_int("Pool", "limit", limit)
        self._middleware = check_middleware("Pool(middleware)", middleware)
        self._hooks = HookSet.of(check_hooks("Pool(hooks)", hooks))
        self._retry: RetryPolicy | None = None
        self._timeout: float | None = None
        self._queue_size: int | None = None
        self._rate: RateLimit | None = None
        self._errors: list[Exception] = []
        self._open: list[RunningPool] = []

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
        pool = self._copy()
        pool._rate = None if limit is None else rate_limit("Pool.with_rate_limit", limit, per)
        return pool

    def with_middleware(self, *middleware: Middleware) -> Self:
        """A copy of this pool with ``middleware`` added inside what it had."""
        pool = self._copy()
        pool._middleware = self._middleware + check_middleware("Pool.with_middleware", middleware)
        return pool

    def with_hooks(self, *hooks: Hooks) -> Self:
        """A copy of this pool with ``hooks`` added after those it had."""
        pool = self._copy()
        before = () if self._hooks is None else self._hooks.hooks
        pool._hooks = HookSet.of(before + check_hooks("Pool.with_hooks", hooks))
        return pool

    def with_queue_size(self, size: int | None) -> Self:
        """A copy of this pool whose running pools queue at most ``size`` tasks.

        With a full queue ``submit`` waits and ``submit_nowait`` raises
        ``QueueFull``. ``None`` (the default) never limits the queue.
        """
        pool = self._copy()
        pool._queue_size = None if size is None else positive_int("Pool.with_queue_size", "size", size)
        return pool

    async def __aenter__(self) -> RunningPool:
        """Open a running pool that takes tasks until the block ends (see ``RunningPool``)."""
        running = RunningPool(self, limit=effective_limit(self._limit))
        await running._open()
        self._open.append(running)
        return running

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._open.pop()._close(error)

    def errors(self) -> list[Exception]:
        """The final error of each task that failed in the last run, in submission order."""
        return self._errors.copy()

    def go(self, tasks: Iterable[Task[Any]], *, progress: ProgressChoice = False) -> None:
        """Run every task to its end, blocking until done; for scripts.

        Raises ``RuntimeError`` inside a running event loop: use
        ``await pool.ago(tasks)`` there. ``progress=True`` draws a progress
        bar with tqdm, or rich if tqdm is not installed (``"tqdm"`` or
        ``"rich"`` picks one): install ``go-async[tqdm]`` or ``go-async[rich]``.
        """
        _refuse_to_block("Pool.go()", "await pool.ago(tasks)")
        _check_tasks(tasks)
        bar = progress_hooks("Pool.go", progress, _size(tasks), "go")
        asyncio.run(self._drive(tasks, bar))

    async def ago(self, tasks: Iterable[Task[Any]], *, progress: ProgressChoice = False) -> None:
        """Run every task to its end; the async twin of ``go``.

        ``tasks`` may be any iterable; a generator is consumed lazily, so with
        a limit only ``limit`` tasks exist at once. A list or tuple is checked
        whole before anything starts.
        """
        _check_tasks(tasks)
        await self._drive(tasks, progress_hooks("Pool.ago", progress, _size(tasks), "go"))

    async def _drive(
        self,
        tasks: Iterable[Task[Any]],
        bar: Hooks | None,
        keep: Callable[[int, Any], object] | None = None,
    ) -> None:
        self._errors = []
        limit = effective_limit(self._limit)
        hooks = self._hooks if bar is None else HookSet.of((*self._hook_list(), bar))
        run = Run(
            default_retry=self._retry,
            thread_limit=limit,
            default_timeout=self._timeout,
            middleware=self._middleware,
            hooks=hooks,
            keep=keep,
            rate=self._rate,
        )
        if hooks is not None:
            hooks.emit(hooks.pool_started, self)
        try:
            await run.drive(tasks, limit)
        finally:
            self._errors = run.errors()
            if hooks is not None:
                hooks.emit(hooks.pool_closed, self)
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
        _refuse_to_block("Pool.map()", "await pool.amap(fn, inputs)")
        _check_mapping("Pool.map", fn, inputs)
        bar = progress_hooks("Pool.map", progress, _size(inputs), _describe(fn))
        return asyncio.run(self._map(fn, inputs, bar))

    async def amap(
        self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X], *, progress: ProgressChoice = False
    ) -> list[R]:
        """``fn(x)`` for each of ``inputs``, in input order; the async twin of ``map``."""
        _check_mapping("Pool.amap", fn, inputs)
        return await self._map(
            fn, inputs, progress_hooks("Pool.amap", progress, _size(inputs), _describe(fn))
        )

    async def _map(self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X], bar: Hooks | None) -> list[R]:
        results: dict[int, R] = {}
        await self._drive(_calls(fn, inputs), bar, results.__setitem__)
        return [results[index] for index in range(len(results))]

    def as_completed(self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X]) -> AsyncGenerator[R, None]:
        """``fn(x)`` for each of ``inputs``, yielded as each one ends, run as tasks of this pool.

        Once every result is out, the failures, if any, are raised together as
        ``go`` raises them. Leaving the loop early cancels the calls still
        running once the generator is closed (at once with
        ``contextlib.aclosing``); the failures so far are then in ``errors()``.

        Example::

            async with aclosing(Pool(limit=8).as_completed(fetch, urls)) as pages:
                async for page in pages:
                    print(page.title)
        """
        _check_mapping("Pool.as_completed", fn, inputs)
        return self._as_completed(fn, inputs)

    async def _as_completed(
        self, fn: Callable[[X], Awaitable[R]], inputs: Iterable[X]
    ) -> AsyncGenerator[R, None]:
        out: Drain[R] = Drain()
        run = asyncio.ensure_future(self._drive(_calls(fn, inputs), None, lambda _, value: out.send(value)))
        run.add_done_callback(lambda _: out.close())
        try:
            async for value in out:
                yield value
        except BaseException:
            # The loop was left early, or its task is being cancelled.
            run.cancel()
            await _settled(run)
            raise
        await run  # every result is out: raise the failures, if any

    def __repr__(self) -> str:
        retry = "" if self._retry is None else f", retry={self._retry}"
        timeout = "" if self._timeout is None else f", timeout={self._timeout}s"
        queue = "" if self._queue_size is None else f", queue_size={self._queue_size}"
        rate = "" if self._rate is None else f", rate={self._rate!r}"
        return f"Pool(limit={self._limit}{retry}{timeout}{queue}{rate})"

    def _copy(self) -> Self:
        cls = type(self)
        pool = cls.__new__(cls)
        pool._limit = self._limit
        pool._retry = self._retry
        pool._timeout = self._timeout
        pool._queue_size = self._queue_size
        pool._rate = self._rate
        pool._middleware = self._middleware
        pool._hooks = self._hooks
        pool._errors = []
        pool._open = []
        return pool

    def _hook_list(self) -> tuple[Hooks, ...]:
        return () if self._hooks is None else self._hooks.hooks


def _calls(fn: Callable[[X], Awaitable[R]], inputs: Iterable[X]) -> Iterable[Task[X]]:
    # What `map` and friends run: a task per input, whose function's result
    # the run keeps by position, after the pool's middleware.
    task = Task(cast("Callable[[Args[X]], Awaitable[None]]", _Call(fn)))
    return (task.with_input(value) for value in inputs)


class _Call:
    """``fn(args.input)``: the function of a task of ``map``, returning ``fn``'s result."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[Any], Awaitable[Any]]) -> None:
        self._fn = fn

    async def __call__(self, args: Args[Any]) -> Any:
        return await self._fn(args.input)

    def __repr__(self) -> str:
        return _describe(self._fn)


def _size(items: Iterable[Any]) -> int | None:
    return len(items) if isinstance(items, Sized) else None


async def _settled(run: asyncio.Future[None]) -> None:
    # Wait for a run we cancelled; what it raised is in the pool's errors().
    await asyncio.wait((run,))
    if not run.cancelled():
        run.exception()


def _refuse_to_block(call: str, instead: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop here: the one case where blocking is right
    msg = f"{call} blocks, so it cannot run inside a running event loop: use `{instead}`"
    raise RuntimeError(msg)


def _check_mapping(where: str, fn: object, inputs: object) -> None:
    if not callable(fn):
        kind = type(fn).__name__
        msg = f"{where}(fn, inputs): fn must be an async function of one input, got {fn!r} ({kind})"
        raise TypeError(msg)
    if not isinstance(inputs, Iterable):
        msg = f"{where}(fn, inputs): inputs must be iterable, got {inputs!r} ({type(inputs).__name__})"
        raise TypeError(msg)


def _check_tasks(tasks: Iterable[Task[Any]]) -> None:
    # Annotations do not bind untyped callers: check what we were given.
    if isinstance(tasks, Task) or not isinstance(tasks, Iterable):
        msg = f"Pool.go(tasks): tasks must be an iterable of Task, got {tasks!r} ({type(tasks).__name__})"
        raise TypeError(msg)
    if isinstance(tasks, list | tuple):
        for index, task in enumerate(tasks):
            if not isinstance(task, Task):
                raise not_a_task(index, task)
