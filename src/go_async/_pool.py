"""Pool: a pool's settings, its blocking edge for scripts, ``async with`` for a running pool; and
``Hooks``, which lives here because its pool events hand over the ``Pool``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from ._adaptive import Adaptive
from ._breaker import CircuitBreaker, CircuitState
from ._hookset import HookSet
from ._pool_options import PoolOptions, concurrency
from ._running import RunningPool
from ._runs import Runs
from ._settings import Settings
from ._task import Args, Middleware, check_middleware

X = TypeVar("X")
R = TypeVar("R")


class Hooks:
    """Override the events you want to hear of; the others cost nothing.

    Hooks are plain (not async) methods called on the event loop as each
    event happens, in the context of the task they are about. Keep them
    quick. A hook that raises is logged on the ``go_async`` logger and the
    run goes on; it never changes a task's outcome. ``task_queued`` and the
    cancellation of a queued task only happen in a running pool.

    Each event's arguments come by position, so a hook may name them as it
    likes; ``@typing_extensions.override`` on each makes the type checkers
    catch a misspelled one, which would otherwise never be called.

    Example::

        class CountFailures(Hooks):
            def __init__(self) -> None:
                self.failed = 0

            @override
            def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
                self.failed += 1

        Pool(limit=8, hooks=[CountFailures()]).go(tasks)
    """

    def pool_started(self, pool: Pool, /) -> None:
        """A run of ``go``/``map`` began, or a running pool opened."""

    def pool_closed(self, pool: Pool, /) -> None:
        """That run, or that running pool, ended: every task has ended too."""

    def task_queued(self, args: Args[Any], /) -> None:
        """A task was submitted to a running pool and waits for room."""

    def task_started(self, args: Args[Any], /) -> None:
        """A task began its first try."""

    def task_retried(self, args: Args[Any], error: Exception, attempt: int, wait: float, /) -> None:
        """Try number ``attempt`` failed with ``error``; the next starts in ``wait`` seconds."""

    def retry_refused(self, args: Args[Any], error: Exception, attempt: int, /) -> None:
        """Try ``attempt`` failed with ``error``, its final error: the pool's retry budget refused a retry."""

    def task_succeeded(self, args: Args[Any], seconds: float, /) -> None:
        """A task ended well, ``seconds`` after it started (retries included)."""

    def task_failed(self, args: Args[Any], error: Exception, seconds: float, /) -> None:
        """A task ended with its final ``error``, ``seconds`` after it started."""

    def task_cancelled(self, args: Args[Any], /) -> None:
        """A task was cancelled, running or (in a running pool) still queued."""

    def circuit_changed(self, breaker: CircuitBreaker, state: CircuitState, /) -> None:
        """A task of this pool moved ``breaker`` to ``state`` (see ``CircuitBreaker``)."""

    def limit_changed(self, old: int, new: int, reason: str, /) -> None:
        """The pool's ``Adaptive`` limit went from ``old`` to ``new`` after an ``"ok"``/``"overload"`` try."""


class Pool(Runs, PoolOptions):
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
        limit: int | Adaptive | None = None,
        *,
        middleware: Iterable[Middleware] = (),
        hooks: Iterable[Hooks] = (),
    ) -> None:
        most, adaptive = concurrency("Pool", limit)
        layers = replace(
            Settings().layers, middleware=check_middleware("Pool(middleware)", middleware), adaptive=adaptive
        )
        self._settings = _with_hooks(Settings(limit=most, layers=layers), check_hooks("Pool(hooks)", hooks))
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

    def _plus_hooks(self, settings: Settings, added: tuple[object, ...]) -> Settings:
        return _with_hooks(settings, (*settings.hooks, *added))

    def __repr__(self) -> str:
        settings, layers = self._settings, self._settings.layers
        retry = "" if layers.retry is None else f", retry={layers.retry}"
        timeout = "" if layers.timeout is None else f", timeout={layers.timeout}s"
        queue = "" if settings.queue_size is None else f", queue_size={settings.queue_size}"
        rate = "" if layers.rate is None else f", rate={layers.rate!r}"
        adaptive = layers.adaptive  # shown by its range: its limit now would change the pool's repr
        limit = settings.limit if adaptive is None else f"Adaptive(min={adaptive.min}, max={adaptive.max})"
        return f"Pool(limit={limit}{retry}{timeout}{queue}{rate})"

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
