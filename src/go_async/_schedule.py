"""Schedules: a task run by a running pool every interval, or at the times of a cron expression."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Generator, Iterator
from datetime import timedelta
from typing import Any, Literal, Protocol, get_args

from ._checks import positive_int, positive_seconds
from ._checks import seconds as checked_seconds
from ._clock import Clock
from ._handle import Handle
from ._task import Task
from ._testing import jitter_source

Overlap = Literal["skip", "queue", "allow"]
"""What a schedule does when a run is due while the previous one still goes on (see ``Schedule``)."""

_OVERLAPS: tuple[str, ...] = get_args(Overlap)


class _Host(Protocol):
    """The running pool a schedule submits its runs to."""

    @property
    def is_running(self) -> bool: ...
    async def submit(self, task: Task[Any, Any, Any]) -> Handle[Any]:
        """Queue a run of ``task``; waits while the pool's queue is full."""
        ...

    def _schedule_ended(self, schedule: Schedule) -> None: ...


class Schedule:
    """A task that a running pool runs again and again; from ``pool.schedule(...)``.

    Each time the schedule is due (a *tick*), it submits ``per_tick`` runs
    of its task to the pool, which start as the pool's limits allow. When a
    tick comes while the previous tick's runs still go on, ``overlap``
    decides: ``"skip"`` the tick (counted in ``skipped``), ``"queue"`` it
    until they end (late ticks then run back to back, in order), or
    ``"allow"`` it to run alongside. ``times`` is how many ticks run in all
    (skipped ones don't count); without it, the schedule goes on until
    cancelled, or until the pool is shut down or cancelled.

    ``await schedule`` waits until it has ended and its last runs have too.
    The runs are tasks of the pool like any other: their failures are raised
    when the pool closes, unless awaited.

    Example::

        async with Pool(limit=4) as pool:
            pool.schedule(Task(refresh), every=60, jitter=5, overlap="skip")
            pool.schedule(Task(report), cron="0 7 * * mon-fri")  # go-async[cron]
            await stop_requested.wait()
            await pool.shutdown()
    """

    __slots__ = (
        "_clock",
        "_driver",
        "_driving",
        "_due",
        "_ended",
        "_error",
        "_jitter",
        "_live",
        "_one_ended",
        "_overlap",
        "_per_tick",
        "_pool",
        "_retrieved",
        "_task",
        "_times",
        "skipped",
        "started",
    )

    def __init__(
        self,
        pool: _Host,
        task: Task[Any, Any, Any],
        due: Iterator[float],
        *,
        jitter: float,
        times: int | None,
        per_tick: int,
        overlap: Overlap,
        clock: Clock,
    ) -> None:
        self._pool = pool
        self._task = task
        self._due = due
        self._jitter = jitter
        self._times = times
        self._per_tick = per_tick
        self._overlap = overlap
        self._clock = clock
        self._live: set[Handle[Any]] = set()
        self._one_ended: asyncio.Future[None] | None = None
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._driver: asyncio.Task[None] | None = None
        self._driving = True
        self._error: Exception | None = None
        self._retrieved = False
        self.started: int = 0
        """Ticks that submitted their runs."""
        self.skipped: int = 0
        """Ticks skipped because the previous runs still went on (``overlap="skip"``)."""

    @property
    def task(self) -> Task[Any, Any, Any]:
        """The task the schedule runs."""
        return self._task

    def cancel(self) -> bool:
        """Run no more ticks (runs already submitted go on); False if it had ended."""
        if self._driver is None or not self._driving:
            return False
        return self._driver.cancel()

    def done(self) -> bool:
        """Whether the schedule has ended and its runs too."""
        return self._ended.done()

    def __await__(self) -> Generator[Any, None, None]:
        """Wait for the end; raises what stopped the schedule, if anything did (not its runs' errors)."""
        self._retrieved = True
        return asyncio.shield(self._ended).__await__()

    def __repr__(self) -> str:
        times = "" if self._times is None else f"/{self._times}"
        return (
            f"<Schedule {self._task._spec.title} {self._overlap}: "
            f"{self.started}{times} ticks, {self.skipped} skipped>"
        )

    def _start(self, group: asyncio.TaskGroup) -> None:
        self._driver = group.create_task(self._drive(), name=f"go_async schedule {self._task._spec.title}")
        # Not in `_drive`'s finally: a driver cancelled before its first step never runs it.
        self._driver.add_done_callback(self._driver_ended)

    async def _drive(self) -> None:
        try:
            while self._times is None or self.started < self._times:
                due = next(self._due, None)
                if due is None:
                    return  # a cron expression with no time left to come
                if self._jitter:
                    due += jitter_source().uniform(0, self._jitter)
                await self._clock.sleep_until(due)
                if self._live and self._overlap == "skip":
                    self.skipped += 1
                    continue
                if self._overlap == "queue":
                    await self._runs_ended()
                for _ in range(self._per_tick):
                    if not self._pool.is_running:
                        return  # shut down: its schedules are being cancelled
                    handle = await self._pool.submit(self._task)
                    self._live.add(handle)
                    handle._on_end(self._run_ended)
                self.started += 1
        except Exception as error:
            # Raised to the TaskGroup, it would cancel the whole pool: the
            # pool reports it when it closes, unless `await schedule` did.
            error.add_note(f"raised by the schedule of {self._task!r}, which runs no more ticks")
            self._error = error

    async def _runs_ended(self) -> None:
        # Wait without awaiting the runs' handles, which would count their
        # failures as retrieved: the pool must still report them.
        while self._live:
            self._one_ended = asyncio.get_running_loop().create_future()
            await self._one_ended

    def _driver_ended(self, _: object) -> None:
        self._driving = False
        self._check_ended()

    def _run_ended(self, run: Handle[Any]) -> None:
        self._live.discard(run)
        if self._one_ended is not None and not self._one_ended.done():
            self._one_ended.set_result(None)
        self._check_ended()

    def _check_ended(self) -> None:
        if not self._live and not self._driving and not self.done():
            if self._error is None:
                self._ended.set_result(None)
            else:
                self._ended.set_exception(self._error)
            self._pool._schedule_ended(self)

    def _failure(self) -> Exception:
        # The error that stopped it, for the pool to report, marked retrieved.
        self._ended.exception()
        assert self._error is not None
        return self._error


def every_interval(clock: Clock, interval: float) -> Iterator[float]:
    """The due times of a schedule every ``interval`` seconds, the first one interval from now."""
    start = clock.time()
    return (start + interval * n for n in itertools.count(1))


def cron_times(where: str, clock: Clock, expression: object) -> Iterator[float]:
    """The due times, on ``clock``, of a cron expression read against ``clock.wall()``."""
    try:
        from cronsim import CronSim, CronSimError  # noqa: PLC0415 - an optional extra
    except ImportError as error:
        msg = f"{where}: cron schedules need cronsim: pip install 'go-async[cron]'"
        raise ImportError(msg) from error
    if not isinstance(expression, str):
        msg = f"{where}: cron must be a str, got {expression!r} ({type(expression).__name__})"
        raise TypeError(msg)
    start, wall = clock.time(), clock.wall()
    try:
        moments = CronSim(expression, wall)
    except CronSimError as error:
        msg = f"{where}: cron {expression!r} is not a valid cron expression: {error}"
        raise ValueError(msg) from error
    return (start + (moment - wall).total_seconds() for moment in moments)


def check_schedule(
    where: str,
    task: object,
    every: float | timedelta | None,
    cron: str | None,
    jitter: float | timedelta,
    times: int | None,
    per_tick: int,
    overlap: object,
) -> tuple[float | None, float, int | None, int, Overlap]:
    """The checked arguments of ``RunningPool.schedule``: every, jitter, times, per_tick, overlap."""
    if not isinstance(task, Task):
        msg = f"{where}: task must be a Task, got {task!r} ({type(task).__name__})"
        raise TypeError(msg)
    if (every is None) == (cron is None):
        msg = f"{where}: give exactly one of every= or cron=, got every={every!r}, cron={cron!r}"
        raise ValueError(msg)
    interval = None if every is None else positive_seconds(where, "every", every)
    if overlap not in _OVERLAPS:
        msg = f"{where}: overlap must be one of {', '.join(map(repr, _OVERLAPS))}, got {overlap!r}"
        raise ValueError(msg)
    return (
        interval,
        checked_seconds(where, "jitter", jitter),
        None if times is None else positive_int(where, "times", times),
        positive_int(where, "per_tick", per_tick),
        overlap,  # type: ignore[return-value] # checked against _OVERLAPS just above
    )
