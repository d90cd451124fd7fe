"""A running pool: it takes tasks while it runs, with handles, priorities, a bounded queue and shutdown.

``async with Pool(...) as pool`` opens one on a ``TaskGroup``. Its workers
(see ``_family``) run the submitted tasks; a task waits in a priority queue
while the pool (or a sub-pool, or any pool above it) is at its limit.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar, overload

from ._calling import check_not_within, check_open, check_task
from ._checks import positive_int
from ._checks import seconds as checked_seconds
from ._clock import Clock, clock_of
from ._family import Family
from ._handle import Handle
from ._hookset import emit
from ._place import Place, stats_of
from ._running_map import RunningMap
from ._schedule import Overlap, Schedule, check_schedule, cron_times, every_interval
from ._settings import Settings
from ._stats import PoolStats
from ._task import Origin, Task, make_args, run_numbers
from ._topic import Topic, WhenFull

T = TypeVar("T")


class QueueFull(Exception):
    """``submit_nowait`` found the pool's queue full (``submit`` would have waited).

    Example::

        try:
            pool.submit_nowait(task)
        except QueueFull:
            reply_busy()
    """


class RunningPool(RunningMap):
    """A pool that is open: ``async with Pool(limit=...) as pool`` gives one.

    It takes tasks until the block ends, and the block's end waits for every
    task submitted. Failures nobody retrieved (by awaiting a handle or
    calling its ``exception()``) are raised there as one ``ExceptionGroup``:
    the first 100 of them; any further one is logged at ERROR on the
    ``go_async`` logger when it fails and counted in
    ``stats().dropped_failures``, so that a pool that runs for days keeps
    bounded memory. A ``KeyboardInterrupt`` or ``SystemExit`` raised by a
    task cancels the pool: every task unwinds, then the block raises it.

    Example::

        async with Pool(limit=8).with_queue_size(100) as pool:
            handle = await pool.submit(Task(fetch).with_input(url).with_priority(5))
            await handle
    """

    def __init__(self, settings: Settings, owner: object, parent: RunningPool | None = None) -> None:
        self._family: Family = Family(settings, owner) if parent is None else parent._family
        self._place: Place = self._family.root if parent is None else Place(None, parent._place)
        self._origin = Origin(next(run_numbers), self)
        self._children: list[RunningPool] = []
        self._parent = parent

    # --- what users call ------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Whether the pool takes tasks: from its opening until its shutdown or its block's end."""
        return self._place.accepting

    @property
    def limit(self) -> int | None:
        """How many of this pool's tasks run at once at most (``None``: no limit of its own)."""
        return self._place.limit

    async def submit(self, task: Task[Any, Any, T]) -> Handle[T]:
        """Queue ``task`` to run; waits while the queue is full (backpressure)."""
        place = self._place
        if place.accepting and type(task) is Task and not self._queue_is_full():
            return self._enqueue(task)  # the common case, with its checks in one line
        self._check_submit("submit", task)
        while self._queue_is_full():
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            place.room_waiters.append(room)
            try:
                await room
            finally:
                if room in place.room_waiters:
                    place.room_waiters.remove(room)
            self._check_submit("submit", task)
        return self._enqueue(task)

    def submit_nowait(self, task: Task[Any, Any, T]) -> Handle[T]:
        """Queue ``task`` to run, or raise ``QueueFull`` if the queue is full."""
        self._check_submit("submit_nowait", task)
        if self._queue_is_full():
            queued = len(self._place.queue)
            msg = f"the pool's queue is full ({queued} tasks queued): await pool.submit(task) waits"
            raise QueueFull(msg)
        return self._enqueue(task)

    def sub(self, limit: int | None = None) -> RunningPool:
        """A sub-pool with a limit of its own, whose tasks count against this pool's limit too.

        It shares this pool's retry and timeout defaults and its queue size,
        is cancelled and shut down with it, and ends with it.
        """
        checked = None if limit is None else positive_int("RunningPool.sub", "limit", limit)
        self._check_open("sub")
        child = RunningPool(self._family.settings, self._family.owner, parent=self)
        child._place.limit = checked
        self._children.append(child)
        self._place.children.append(child._place)
        return child

    @overload
    def topic(
        self, name: str, kind: type[T], *, buffer: int = ..., when_full: WhenFull = ...
    ) -> Topic[T]: ...
    @overload
    def topic(self, name: str, *, buffer: int = ..., when_full: WhenFull = ...) -> Topic[Any]: ...
    def topic(
        self, name: str, kind: type[Any] | None = None, *, buffer: int = 100, when_full: WhenFull = "wait"
    ) -> Topic[Any]:
        """The pool's topic called ``name``, made on first use; tasks find it by name.

        ``kind`` types the messages for the type checker (it is not checked at
        run time); ``buffer`` and ``when_full`` are as in ``Topic`` and must
        match the topic's if it exists. The pool's topics close when the pool
        does: once its block has ended (or ``shutdown()`` began) and every task
        still running waits on a subscription, so nobody is left to publish.

        Example::

            async def watch(args: Args[None]) -> None:
                with args.pool.topic("prices", float).subscribe() as prices:
                    async for price in prices:
                        ...

            async def quote(args: Args[float]) -> None:
                await args.pool.topic("prices", float).publish(args.input)
        """
        if name not in self._family.topics:
            self._check_open("topic")
        return self._family.topic(self, name, buffer, when_full)

    def schedule(
        self,
        task: Task[Any, Any, Any],
        *,
        every: float | timedelta | None = None,
        cron: str | None = None,
        jitter: float | timedelta = 0.0,
        times: int | None = None,
        per_tick: int = 1,
        overlap: Overlap = "skip",
        clock: Clock | None = None,
    ) -> Schedule:
        """Run ``task`` in this pool ``every`` seconds, or at the times of a ``cron`` expression.

        Each tick submits ``per_tick`` runs of the task, after a random delay
        of up to ``jitter`` seconds; ``times`` caps the ticks run; ``overlap``
        says what a tick does while the previous runs go on (see
        ``Schedule``). The first tick comes one interval from now. ``cron``
        takes five fields, read against the local time, and needs
        ``go-async[cron]``. The pool's block end waits for its schedules:
        one without ``times`` runs until cancelled or the pool is shut down.
        ``clock`` is for tests (see ``ManualClock``).

        Example::

            pool.schedule(Task(poll), every=timedelta(seconds=10), jitter=1, per_tick=3)
        """
        where = "RunningPool.schedule"
        interval, spread, ticks, per, policy = check_schedule(
            where, task, every, cron, jitter, times, per_tick, overlap
        )
        self._check_open("schedule")
        clock = clock_of(where, clock)
        due = every_interval(clock, interval) if interval is not None else cron_times(where, clock, cron)
        schedule = Schedule(
            self, task, due, jitter=spread, times=ticks, per_tick=per, overlap=policy, clock=clock
        )
        schedule._start(self._family.group)
        self._place.schedules.add(schedule)
        return schedule

    def cancel(self) -> list[Handle[Any]]:
        """Cancel every task queued or running, and every schedule, here and in sub-pools.

        The pool stays open. Returns the handles of the tasks cancelled, in
        submission order.
        """
        cancelled: list[Handle[Any]] = []
        queue_size = self._family.settings.queue_size
        for place in self._place.tree():
            for schedule in place.schedules:
                schedule.cancel()
            for handle in place.queue.clear():
                self._family.end_queued(place, handle)
                cancelled.append(handle)
            place.wake_submitters(queue_size)
            cancelled.extend(handle for handle in list(place.running) if self._family._cancel(handle))
        return sorted(cancelled, key=lambda handle: handle._seq)

    async def shutdown(self, timeout: float | timedelta | None = None) -> list[Handle[Any]]:  # noqa: ASYNC109
        """Take no more tasks, let queued and running ones end within ``timeout``, then cancel the rest.

        Returns the handles of the tasks that had to be cancelled (none if all
        ended in time), in submission order, once every task has ended. A task
        of the pool (or of a sub-pool) may not call it, as it would wait for
        itself: it raises ``RuntimeError``; ``cancel()`` does not wait.
        """
        seconds = None if timeout is None else checked_seconds("RunningPool.shutdown", "timeout", timeout)
        check_not_within("RunningPool.shutdown()", self._place)
        # Only the whole pool's shutdown closes its topics: a sub-pool's leaves the others publishing.
        if self._parent is None:
            self._family.closing = True
        self._stop_accepting()
        for place in self._place.tree():
            for schedule in place.schedules:
                schedule.cancel()
        try:
            async with asyncio.timeout(seconds):
                await self._family.until_idle(self._place)
        except TimeoutError:
            pass
        cancelled = self.cancel()
        await self._family.until_idle(self._place)
        return cancelled

    def stats(self) -> PoolStats:
        """Counts and timings of this pool and its sub-pools, now."""
        family = self._family
        elapsed = time.monotonic() - family.opened
        counted = stats_of(
            self._place.tree(),
            dropped=family.failures.dropped,
            elapsed=elapsed,
        )
        adaptive = family.settings.layers.adaptive
        return replace(counted, concurrency_limit=family.limit if adaptive is None else adaptive.limit)

    def __repr__(self) -> str:
        state = "running" if self._place.accepting else "closed"
        counts = f"{len(self._place.running)} running, {len(self._place.queue)} queued"
        return f"<RunningPool limit={self._place.limit} {state}: {counts}>"

    # --- opening and closing (Pool's async with) ---------------------------------

    async def _open(self) -> None:
        family = self._family
        await family.group.__aenter__()
        self._place.accepting = True
        family.opened = time.monotonic()
        if family.settings.events is not None:
            emit(family.settings.events.pool_started, family.owner)

    async def _close(self, error: BaseException | None) -> None:
        # The block ended: wait for every task (running ones may still submit
        # more), or cancel them all if the block raised or is cancelled.
        family = self._family
        family.closing = True
        try:
            try:
                if error is not None:
                    self.cancel()
                await family.until_idle(self._place)
            except BaseException:
                self.cancel()
                await family.until_idle(self._place)
                raise
            finally:
                self._stop_accepting()
                for topic in family.topics.values():
                    topic.close()
                await family.stop_workers()  # every task has ended: it returns at once
                if family.settings.events is not None:
                    emit(family.settings.events.pool_closed, family.owner)
        except asyncio.CancelledError:
            family.interrupts.reraise()
            raise
        family.interrupts.reraise()  # a task's KeyboardInterrupt or SystemExit, once all unwound
        total = sum(place.completed + place.failed + place.cancelled for place in self._place.tree())
        family.failures.raise_at_end(total, error)

    # --- the queue -----------------------------------------------------------------

    def _check_submit(self, call: str, task: object) -> None:
        check_task(f"RunningPool.{call}(task)", task)
        self._check_open(call)

    def _check_open(self, call: str) -> None:
        check_open(f"RunningPool.{call}()", self._place, self._family.thread)

    def _queue_is_full(self) -> bool:
        size = self._family.settings.queue_size
        return size is not None and len(self._place.queue) >= size

    def _enqueue(self, task: Task[Any, Any, T]) -> Handle[T]:
        family, place = self._family, self._place
        seq = next(family.seq)
        context = contextvars.copy_context()
        # Run in the submitter's context only if it differs from the pool's.
        handle: Handle[T] = Handle(
            family,
            make_args(task, self._origin, seq),
            seq,
            None if context == family.base else context,
            place,
        )
        spec = task._spec
        if spec.tags:
            for tag in spec.tags:
                place.per_tag[tag] = place.per_tag.get(tag, 0) + 1
        if spec.drain is not None and spec.drain not in family.fed:
            family.feed(spec.drain)
        family.enqueue(place, handle)
        return handle

    def _stop_accepting(self) -> None:
        for place in self._place.tree():
            place.accepting = False
            place.wake_submitters(self._family.settings.queue_size)

    def _schedule_ended(self, schedule: Schedule) -> None:
        self._place.schedules.discard(schedule)
        if schedule._error is not None:
            self._family.failures.schedules.append(schedule)
        self._family.wake_idle()

    def _listening(self, change: int) -> bool:
        # A subscription of one of the family's topics starts (+1) or stops
        # (-1) waiting; only the family's own tasks count. True if counted.
        family = self._family
        if change > 0 and asyncio.current_task() not in family.workers:
            return False
        family.listeners += change
        family.wake_idle()
        return True
