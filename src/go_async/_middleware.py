"""Ready-made middleware: timing, and catching named errors (see ``Middleware``; ``LogTasks`` logs)."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ._task import Args, CallNext

R = TypeVar("R")


def _describe(args: Args[Any]) -> str:
    return f"{args.task._spec.title} {args.id}"


class Timing:
    """Middleware that measures how long tasks take, retries included, and sums it up.

    ``count``, ``total``, ``mean`` and ``slowest`` (the id and seconds of the
    longest task) cover every task it wrapped, failed ones included;
    ``on_timed(args, seconds)``, if given, hears of each. ``clock`` is for
    tests.

    Example::

        timing = Timing()
        Pool(limit=8, middleware=[timing]).go(tasks)
        print(f"{timing.count} tasks, mean {timing.mean:.3f}s, slowest {timing.slowest}")
    """

    __slots__ = ("_clock", "_on_timed", "count", "slowest", "total")

    def __init__(
        self,
        on_timed: Callable[[Args[Any], float], object] | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        for name, value in (("on_timed", on_timed), ("clock", clock)):
            if value is not None and not callable(value):
                msg = f"Timing({name}): {name} must be callable, got {value!r} ({type(value).__name__})"
                raise TypeError(msg)
        self._on_timed = on_timed
        self._clock = clock
        self.count: int = 0
        self.total: float = 0.0
        self.slowest: tuple[str, float] | None = None

    @property
    def mean(self) -> float | None:
        """The mean duration in seconds, ``None`` before the first task ends."""
        return self.total / self.count if self.count else None

    async def __call__(self, args: Args[Any], call_next: CallNext[R]) -> R:
        started = self._clock()
        try:
            return await call_next()
        finally:
            seconds = self._clock() - started
            self.count += 1
            self.total += seconds
            if self.slowest is None or seconds > self.slowest[1]:
                self.slowest = (args.id, seconds)
            if self._on_timed is not None:
                self._on_timed(args, seconds)

    def __repr__(self) -> str:
        return f"Timing(count={self.count}, total={self.total:.6f}s, slowest={self.slowest})"


class CatchErrors:
    """Middleware that turns the named exceptions into a result, deliberately and visibly.

    A task failing with one of ``kinds`` (after its retries) counts as a
    success: its result is ``fallback(args, error)`` (a value for ``map``;
    a task's ``fallback`` may send to ``args.drain``; it may be async), or
    ``None`` without a fallback. Nothing is caught unless named, each catch is logged at
    ``WARNING`` on ``logger`` (``go_async.errors`` by default; pass
    ``log=False`` to stay quiet) and counted in ``caught``.

    Example::

        not_found = CatchErrors(FileNotFoundError, fallback=lambda args, error: b"")
        sizes = Pool(limit=8, middleware=[not_found]).map(read_file, paths)
    """

    __slots__ = ("_fallback", "_kinds", "_log", "_logger", "caught")

    def __init__(
        self,
        *kinds: type[Exception],
        fallback: Callable[[Args[Any], Exception], Any] | None = None,
        log: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        if not kinds:
            msg = "CatchErrors(*kinds): name at least one exception type to catch; none is caught by default"
            raise TypeError(msg)
        for kind in cast("tuple[object, ...]", kinds):
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                msg = f"CatchErrors(*kinds): each kind must be an Exception subclass, got {kind!r}"
                raise TypeError(msg)
        if fallback is not None and not callable(fallback):
            kind = type(fallback).__name__
            msg = f"CatchErrors(fallback): fallback must be callable, got {fallback!r} ({kind})"
            raise TypeError(msg)
        self._kinds = kinds
        self._fallback = fallback
        self._log = log
        self._logger = logger or logging.getLogger("go_async.errors")
        self.caught: int = 0

    async def __call__(self, args: Args[Any], call_next: CallNext[R]) -> R:
        try:
            return await call_next()
        except self._kinds as error:
            self.caught += 1
            if self._log:
                self._logger.warning("task %s: caught %r, as CatchErrors was told to", _describe(args), error)
            result: Any = None if self._fallback is None else self._fallback(args, error)
            if inspect.isawaitable(result):
                result = await result
            return cast("R", result)  # the fallback stands in for the task's result

    def __repr__(self) -> str:
        kinds = ", ".join(kind.__name__ for kind in self._kinds)
        return f"CatchErrors({kinds}, caught={self.caught})"
