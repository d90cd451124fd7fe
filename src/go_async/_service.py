"""A running pool: it takes tasks while it runs, with handles, priorities, a bounded queue and shutdown.

``async with Pool(...) as pool`` opens one on a ``TaskGroup``. Each submitted
task runs as its own asyncio task, so that it can be cancelled alone and its
handle tells how it ended; a task waits in a priority queue while the pool
(or a sub-pool, or any pool above it) is at its limit.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import heapq
import itertools
import time
from collections import Counter, deque
from collections.abc import Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._checks import positive_int, timeout_seconds
from ._checks import seconds as checked_seconds
from ._clock import SYSTEM_CLOCK, Clock
from ._run import Run
from ._schedule import Overlap, Schedule, check_schedule, cron_times, every_interval
from ._task import Origin, Task, make_args, run_numbers
from ._topic import Topic, WhenFull

if TYPE_CHECKING:
    from ._pool import Pool
    from ._retry import RetryPolicy

T = TypeVar("T")

# How many of the latest durations stats() keeps for its mean and p95.
_DURATIONS_KEPT = 10_000


class QueueFull(Exception):
    """``submit_nowait`` found the pool's queue full (``submit`` would have waited).

    Example::

        try:
            pool.submit_nowait(task)
        except QueueFull:
            reply_busy()
    """


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a running pool (sub-pools included), from ``pool.stats()``.

    Durations are in seconds, over the latest ended tasks; ``throughput`` is
    tasks ended per second since the pool opened; ``per_tag`` counts the
    submitted tasks that carry each tag.

    Example::

        stats = pool.stats()
        log.info("%d running, %d queued, p95 %.3fs", stats.running, stats.queued, stats.p95_duration or 0)
    """

    running: int
    queued: int
    completed: int
    failed: int
    retried: int
    cancelled: int
    throughput: float
    mean_duration: float | None
    p95_duration: float | None
    per_tag: Mapping[str, int]


class Handle(Generic[T]):
    """One submitted task: await it for its outcome, or cancel it.

    ``await handle`` returns once the task has ended and raises its final
    error, or ``CancelledError`` if it was cancelled. Awaiting never cancels
    the task itself; ``wait(timeout)`` gives up waiting without stopping it.

    Example::

        handle = await pool.submit(Task(fetch).with_input(url))
        await handle.wait(timeout=5)
    """

    __slots__ = (
        "_args",
        "_context",
        "_ended",
        "_pool",
        "_retrieved",
        "_runner",
        "_seq",
        "_started",
        "_state",
        "_task",
        "_value",
    )

    def __init__(self, pool: RunningPool, task: Task[T], seq: int) -> None:
        self._pool = pool
        self._task = task
        self._seq = seq
        self._args = make_args(task, pool._origin, seq)
        # Context variables set around `submit` reach the task, whichever
        # task's end happens to start it.
        self._context = contextvars.copy_context()
        self._state = _State.QUEUED
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner: asyncio.Task[None] | None = None
        self._retrieved = False
        self._started = 0.0
        # What the task's function returned (a flow's step reads it).
        self._value: Any = None

    @property
    def id(self) -> str:
        """The id that ``args.id`` gives inside the task."""
        return self._args.id

    @property
    def task(self) -> Task[T]:
        """The task submitted."""
        return self._task

    def done(self) -> bool:
        """Whether the task has ended: completed, failed or cancelled."""
        return self._ended.done()

    def cancelled(self) -> bool:
        """Whether the task was cancelled before it ended on its own."""
        return self._state is _State.CANCELLED

    def cancel(self) -> bool:
        """Cancel the task, queued or running; False if it had already ended."""
        if self._state is _State.QUEUED:
            self._pool._unqueue(self)
            self._end(_State.CANCELLED, None)
            return True
        if self._state is _State.RUNNING and self._runner is not None:
            return self._runner.cancel()
        return False

    def exception(self) -> BaseException | None:
        """The task's final error, ``None`` if it completed; it must have ended.

        Raises ``CancelledError`` if it was cancelled, as ``asyncio.Future`` does.
        """
        if not self.done():
            msg = f"{self!r} has not ended yet: await it first"
            raise asyncio.InvalidStateError(msg)
        self._retrieved = True
        return self._ended.exception()  # raises CancelledError if it was cancelled

    async def wait(self, timeout: float | timedelta | None = None) -> None:  # noqa: ASYNC109 - a timeout for the wait only
        """Wait for the task's outcome, as ``await handle``, for at most ``timeout`` seconds.

        Raises ``TimeoutError`` if the task has not ended by then; it goes on.
        """
        seconds = timeout_seconds("Handle.wait", timeout)
        async with asyncio.timeout(seconds):
            await self

    def __await__(self) -> Generator[Any, None, None]:
        self._retrieved = True
        # shield: a waiter that is cancelled must not cancel the task.
        return asyncio.shield(self._ended).__await__()

    def __repr__(self) -> str:
        return f"<Handle {self.id} {self._state.value}: {self._task!r}>"

    def _end(self, state: _State, error: BaseException | None) -> None:
        hooks = self._pool._hooks
        if hooks is not None and self._state is _State.QUEUED:
            hooks.emit(hooks.task_cancelled, self._args)  # a running task's run tells its own end
        self._state = state
        if state is _State.CANCELLED:
            self._ended.cancel()
        elif error is not None:
            self._ended.set_exception(error)
        else:
            self._ended.set_result(None)
        self._pool._ended(self)


class RunningPool:
    """A pool that is open: ``async with Pool(limit=...) as pool`` gives one.

    It takes tasks until the block ends, and the block's end waits for every
    task submitted. Failures nobody retrieved (by awaiting a handle or
    calling its ``exception()``) are raised there as one ``ExceptionGroup``.

    Example::

        async with Pool(limit=8).with_queue_size(100) as pool:
            handle = await pool.submit(Task(fetch).with_input(url).with_priority(5))
            await handle
    """

    def __init__(self, config: Pool, parent: RunningPool | None = None, limit: int | None = None) -> None:
        self._number = next(run_numbers)
        self._origin = Origin(self._number, self)
        self._config = config
        self._middleware = config._middleware
        self._hooks = config._hooks
        self._parent = parent
        self._root: RunningPool = self if parent is None else parent._root
        self._retry: RetryPolicy | None = config._retry
        self._timeout: float | None = config._timeout
        self._limit = limit
        self._queue_size: int | None = config._queue_size
        self._heap: list[tuple[int, int, Handle[Any]]] = []
        self._running: set[Handle[Any]] = set()
        self._busy = 0  # running tasks here and in every sub-pool below
        self._children: list[RunningPool] = []
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._accepting = parent is not None
        self._group: asyncio.TaskGroup | None = None if parent is None else parent._group
        self._unretrieved: list[Handle[Any]] = []
        self._seq: itertools.count[int] = itertools.count() if parent is None else parent._seq
        self._counts: Counter[_State] = Counter()
        self._per_tag: Counter[str] = Counter()
        self._durations: deque[float] = deque(maxlen=_DURATIONS_KEPT)
        self._retried = 0
        self._opened = time.monotonic()
        # Only the root's: every pool of the family runs plain functions in it.
        self._executor: ThreadPoolExecutor | None = None
        self._fed: set[Any] = set()
        self._schedules: set[Schedule] = set()
        # Only the root's: the family's topics, the asyncio tasks that run its
        # tasks, how many of those wait on a subscription, and whether the
        # pool is closing (see `_until_idle`).
        self._topics: dict[str, Topic[Any]] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._listeners = 0
        self._closing = False
        self._failed_schedules: list[Schedule] = []

    # --- what users call ------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Whether the pool takes tasks: from its opening until its shutdown or its block's end."""
        return self._accepting

    @property
    def limit(self) -> int | None:
        """How many of this pool's tasks run at once at most (``None``: no limit of its own)."""
        return self._limit

    async def submit(self, task: Task[T]) -> Handle[T]:
        """Queue ``task`` to run; waits while the queue is full (backpressure)."""
        self._check_submit("submit", task)
        while self._queue_is_full():
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(room)
            try:
                await room
            finally:
                if room in self._room_waiters:
                    self._room_waiters.remove(room)
            self._check_submit("submit", task)
        return self._enqueue(task)

    def submit_nowait(self, task: Task[T]) -> Handle[T]:
        """Queue ``task`` to run, or raise ``QueueFull`` if the queue is full."""
        self._check_submit("submit_nowait", task)
        if self._queue_is_full():
            msg = f"the pool's queue is full ({len(self._heap)} tasks queued): await pool.submit(task) waits"
            raise QueueFull(msg)
        return self._enqueue(task)

    def sub(self, limit: int | None = None) -> RunningPool:
        """A sub-pool with a limit of its own, whose tasks count against this pool's limit too.

        It shares this pool's retry and timeout defaults and its queue size,
        is cancelled and shut down with it, and ends with it.
        """
        checked = None if limit is None else positive_int("RunningPool.sub", "limit", limit)
        self._check_open("sub")
        child = RunningPool(self._config, parent=self, limit=checked)
        self._children.append(child)
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
        root = self._root
        existing = root._topics.get(name)
        if existing is None:
            self._check_open("topic")
            topic: Topic[Any] = Topic(name, buffer=buffer, when_full=when_full)
            topic._owner = root
            root._topics[name] = topic
            return topic
        if (existing.buffer, existing.when_full) != (buffer, when_full):
            msg = (
                f"RunningPool.topic({name!r}): the topic exists with buffer={existing.buffer}, "
                f"when_full={existing.when_full!r}; got buffer={buffer}, when_full={when_full!r}"
            )
            raise ValueError(msg)
        return existing

    def schedule(
        self,
        task: Task[Any],
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
        clock = SYSTEM_CLOCK if clock is None else clock
        due = every_interval(clock, interval) if interval is not None else cron_times(where, clock, cron)
        schedule = Schedule(
            self, task, due, jitter=spread, times=ticks, per_tick=per, overlap=policy, clock=clock
        )
        group = self._root._group
        assert group is not None
        self._schedules.add(schedule)
        schedule._start(group)
        return schedule

    def cancel(self) -> list[Handle[Any]]:
        """Cancel every task queued or running, and every schedule, here and in sub-pools.

        The pool stays open. Returns the handles of the tasks cancelled, in
        submission order.
        """
        cancelled: list[Handle[Any]] = []
        for pool in self._family():
            for schedule in pool._schedules:
                schedule.cancel()
            queued, pool._heap = pool._heap, []
            for _, _, handle in queued:
                handle._end(_State.CANCELLED, None)
                cancelled.append(handle)
            pool._wake_submitters()
            cancelled.extend(handle for handle in list(pool._running) if handle.cancel())
        return sorted(cancelled, key=lambda handle: handle._seq)

    async def shutdown(self, timeout: float | timedelta | None = None) -> list[Handle[Any]]:  # noqa: ASYNC109
        """Take no more tasks, let queued and running ones end within ``timeout``, then cancel the rest.

        Returns the handles of the tasks that had to be cancelled (none if all
        ended in time), in submission order, once every task has ended.
        """
        seconds = None if timeout is None else checked_seconds("RunningPool.shutdown", "timeout", timeout)
        # Only the whole pool's shutdown may close its topics: a sub-pool's
        # leaves the others publishing.
        if self is self._root:
            self._closing = True
        for pool in self._family():
            pool._accepting = False
            pool._wake_submitters()
            for schedule in pool._schedules:
                schedule.cancel()
        try:
            async with asyncio.timeout(seconds):
                await self._until_idle()
        except TimeoutError:
            pass
        cancelled = self.cancel()
        await self._until_idle()
        return cancelled

    def stats(self) -> PoolStats:
        """Counts and timings of this pool and its sub-pools, now."""
        family = list(self._family())
        counts: Counter[_State] = Counter()
        per_tag: Counter[str] = Counter()
        durations: list[float] = []
        for pool in family:
            counts.update(pool._counts)
            per_tag.update(pool._per_tag)
            durations.extend(pool._durations)
        ended = counts[_State.COMPLETED] + counts[_State.FAILED]
        elapsed = max(time.monotonic() - self._opened, 1e-9)
        ordered = sorted(durations)
        return PoolStats(
            running=sum(len(pool._running) for pool in family),
            queued=sum(len(pool._heap) for pool in family),
            completed=counts[_State.COMPLETED],
            failed=counts[_State.FAILED],
            retried=sum(pool._retried for pool in family),
            cancelled=counts[_State.CANCELLED],
            throughput=ended / elapsed,
            mean_duration=sum(ordered) / len(ordered) if ordered else None,
            p95_duration=ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else None,
            per_tag=MappingProxyType(dict(per_tag)),
        )

    def __repr__(self) -> str:
        state = "running" if self._accepting else "closed"
        counts = f"{len(self._running)} running, {len(self._heap)} queued"
        return f"<RunningPool limit={self._limit} {state}: {counts}>"

    # --- opening and closing (Pool's async with) ---------------------------------

    async def _open(self) -> None:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._accepting = True
        self._opened = time.monotonic()
        if self._hooks is not None:
            self._hooks.emit(self._hooks.pool_started, self._config)

    async def _close(self, error: BaseException | None) -> None:
        # The block ended: wait for every task (running ones may still submit
        # more), or cancel them all if the block raised or is cancelled.
        group = self._group
        assert group is not None
        self._closing = True
        try:
            if error is not None:
                self.cancel()
            await self._until_idle()
        except BaseException:
            self.cancel()
            await self._until_idle()
            raise
        finally:
            for pool in self._family():
                pool._accepting = False
                pool._wake_submitters()
            for drain in self._fed:
                drain._end_feed()
            for topic in self._topics.values():
                topic.close()
            await group.__aexit__(None, None, None)  # every task has ended: it returns at once
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            if self._hooks is not None:
                self._hooks.emit(self._hooks.pool_closed, self._config)
        failures = self._unretrieved_failures()
        if failures and error is None:
            total = sum(pool._counts.total() for pool in self._family())
            msg = f"{len(failures)} of {total} tasks failed and nobody awaited their handles"
            raise ExceptionGroup(msg, failures)
        if failures and error is not None:
            error.add_note(f"{len(failures)} submitted tasks failed too, and nobody awaited their handles")

    def _unretrieved_failures(self) -> list[Exception]:
        failed = sorted(
            (h for pool in self._family() for h in pool._unretrieved if not h._retrieved),
            key=lambda h: h._seq,
        )
        for handle in failed:
            handle._retrieved = True
        errors = [error for h in failed if isinstance(error := h._ended.exception(), Exception)]
        stopped = [schedule for schedule in self._failed_schedules if not schedule._retrieved]
        return errors + [schedule._failure() for schedule in stopped]

    # --- the queue -----------------------------------------------------------------

    def _check_submit(self, call: str, task: object) -> None:
        if not isinstance(task, Task):
            msg = f"RunningPool.{call}(task): task must be a Task, got {task!r} ({type(task).__name__})"
            raise TypeError(msg)
        self._check_open(call)

    def _check_open(self, call: str) -> None:
        if not self._accepting:
            msg = f"RunningPool.{call}(): the pool is not running (it was shut down or its block ended)"
            raise RuntimeError(msg)

    def _queue_is_full(self) -> bool:
        return self._queue_size is not None and len(self._heap) >= self._queue_size

    def _enqueue(self, task: Task[T]) -> Handle[T]:
        handle = Handle(self, task, next(self._seq))
        self._per_tag.update(task._core.tags)
        drain = task._core.drain
        if drain is not None and drain not in self._root._fed:
            # Readers of the drain wait for the pool to close, not for each task.
            self._root._fed.add(drain)
            drain._begin_feed()
        heapq.heappush(self._heap, (-task._core.priority, handle._seq, handle))
        if self._hooks is not None:
            self._hooks.emit(self._hooks.task_queued, handle._args)
        self._root._dispatch()
        return handle

    def _unqueue(self, handle: Handle[Any]) -> None:
        self._heap = [entry for entry in self._heap if entry[2] is not handle]
        heapq.heapify(self._heap)
        self._wake_submitters()

    def _can_start(self) -> bool:
        pool: RunningPool | None = self
        while pool is not None:
            if pool._limit is not None and pool._busy >= pool._limit:
                return False
            pool = pool._parent
        return True

    def _dispatch(self) -> None:
        # Start the queued task with the highest priority (the oldest among
        # equals) of every pool in this family that has room, until none has.
        while True:
            ready = [pool for pool in self._family() if pool._heap and pool._can_start()]
            if not ready:
                return
            pool = min(ready, key=lambda p: p._heap[0][:2])
            _, _, handle = heapq.heappop(pool._heap)
            pool._start(handle)
            pool._wake_submitters()

    def _start(self, handle: Handle[Any]) -> None:
        handle._state = _State.RUNNING
        handle._started = time.monotonic()
        self._running.add(handle)
        pool: RunningPool | None = self
        while pool is not None:
            pool._busy += 1
            pool = pool._parent
        group = self._root._group
        assert group is not None
        name = f"{handle._task._core.label} {handle.id}"
        runner = group.create_task(self._execute(handle), name=name, context=handle._context)
        runner.add_done_callback(lambda _: self._cancelled_unstarted(handle))
        handle._runner = runner
        self._root._runners.add(runner)

    async def _execute(self, handle: Handle[Any]) -> None:
        root = self._root
        if root._executor is None and not handle._task._core.is_async:
            root._executor = ThreadPoolExecutor(root._limit, thread_name_prefix="go_async")
        run = Run(
            default_retry=self._retry,
            thread_limit=None,
            default_timeout=self._timeout,
            executor=root._executor,
            service=self,
            number=self._number,
            middleware=self._middleware,
            hooks=self._hooks,
            rate=self._config._rate,
            keep=lambda _, value: setattr(handle, "_value", value),
        )
        state, error = _State.COMPLETED, None
        try:
            await run.run_here(handle._args)
        except asyncio.CancelledError:
            state = _State.CANCELLED
        finally:
            run.close()
            self._retried += run._retried
            errors = run.errors()
            if errors and state is _State.COMPLETED:
                state, error = _State.FAILED, errors[0]
            self._finish(handle, state, error)

    def _cancelled_unstarted(self, handle: Handle[Any]) -> None:
        # A task cancelled before its first step never runs `_execute`, not
        # even its `finally`: its end is told here instead.
        if handle._state is _State.RUNNING:
            if self._hooks is not None:
                self._hooks.emit(self._hooks.task_cancelled, handle._args)
            self._finish(handle, _State.CANCELLED, None)

    def _finish(self, handle: Handle[Any], state: _State, error: BaseException | None) -> None:
        self._running.discard(handle)
        if handle._runner is not None:
            self._root._runners.discard(handle._runner)
        above: RunningPool | None = self
        while above is not None:
            above._busy -= 1
            above = above._parent
        if state is not _State.CANCELLED:
            self._durations.append(time.monotonic() - handle._started)
        handle._end(state, error)
        self._root._dispatch()

    def _ended(self, handle: Handle[Any]) -> None:
        self._counts[handle._state] += 1
        if handle._state is _State.FAILED:
            self._unretrieved.append(handle)
        self._root._wake_idle()

    def _schedule_ended(self, schedule: Schedule) -> None:
        self._schedules.discard(schedule)
        if schedule._error is not None:
            self._root._failed_schedules.append(schedule)
        self._root._wake_idle()

    def _listening(self, change: int) -> bool:
        # A subscription of one of the family's topics starts (+1) or stops
        # (-1) waiting; only the family's own tasks count. True if counted.
        root = self._root
        if change > 0 and asyncio.current_task() not in root._runners:
            return False
        root._listeners += change
        root._wake_idle()
        return True

    def _wake_idle(self) -> None:
        # Whoever waits for the pool to be idle checks again.
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _until_idle(self) -> None:
        root = self._root
        while any(pool._heap or pool._running or pool._schedules for pool in self._family()):
            if root._closing and root._busy == root._listeners and not root._has_work_ahead():
                # Every task left waits on a subscription and nothing else will
                # run: nobody can publish any more, so the topics close.
                for topic in root._topics.values():
                    topic.close()
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            root._idle_waiters.append(idle)
            await idle

    def _has_work_ahead(self) -> bool:
        return any(pool._heap or pool._schedules for pool in self._family())

    def _wake_submitters(self) -> None:
        while self._room_waiters and (not self._queue_is_full() or not self._accepting):
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _family(self) -> list[RunningPool]:
        pools: list[RunningPool] = [self]
        for child in self._children:
            pools.extend(child._family())
        return pools
