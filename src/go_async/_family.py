"""The workers of a running pool and its sub-pools: they pull queued tasks as ``go``'s pull from an iterable.

A running pool and its sub-pools form a family. Each pool has a ``Place``
(its queue, limit and counts); the family has up to ``limit`` workers, one
asyncio task each, that take the queued task of highest priority (the
oldest among equals) from any place whose limits, and every limit above
it, leave room. A handle is a small object, not an asyncio task: cancelling
a running one cancels its worker, which knows (``handle._stopping``) that
the cancellation is that task's alone, ends it, and goes on.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import threading
import time
from collections import deque
from functools import partial
from typing import Any, cast

from ._drain import Drain
from ._failures import Failures
from ._handle import Handle, State
from ._hookset import emit
from ._interrupts import Interrupts
from ._own_context import in_own_context
from ._place import Place
from ._runner import Runner
from ._settings import Settings
from ._supply import stray_cancel
from ._task import name_failure
from ._threads import Threads
from ._topic import Topic, WhenFull


class Family:
    """What a running pool shares with its sub-pools: workers, the task runner, topics, failures kept."""

    def __init__(self, settings: Settings, owner: object) -> None:
        self.settings = settings
        self.owner = owner  # the Pool, which pool hooks hear of
        self.limit = settings.run_limit
        self.root = Place(self.limit, None)
        self.threads = Threads(self.limit)
        self.runner = Runner(
            settings.layers, settings.events, self.threads, on_retry=self._retried, on_refused=self._refused
        )
        self.seq = itertools.count()
        self.group = asyncio.TaskGroup()
        # The asyncio tasks running the family's tasks (workers, and tasks run
        # in a context of their own), and how many workers there are,
        # counted from when they are made, before they first run.
        self.workers: set[asyncio.Task[Any]] = set()
        self.worker_count = 0
        # Idle workers, each waiting for `dispatch` to hand it a task.
        self.parked: deque[tuple[asyncio.Future[Any], asyncio.Task[Any]]] = deque()
        self.stopping = False
        self.base = contextvars.copy_context()
        self.interrupts = Interrupts()
        self.failures = Failures()
        self.idle_waiters: list[asyncio.Future[None]] = []
        self.topics: dict[str, Topic[Any]] = {}
        # Readers of a drain that the family's tasks feed wait for the pool to close.
        self.fed: set[Drain[Any]] = set()
        self.listeners = 0
        self.closing = False
        self.opened = time.monotonic()
        self.thread = threading.get_ident()  # the event loop's: only it may submit (see `_calling`)

    # --- the queue ---------------------------------------------------------------

    def enqueue(self, place: Place, handle: Handle[Any]) -> None:
        place.queue.push(handle)
        events = self.settings.events
        if events is not None and events.task_queued:
            emit(events.task_queued, handle._args)
        if self.parked or self.limit is None or self.worker_count < self.limit:
            self.dispatch()

    def dispatch(self) -> None:
        """Start queued tasks while one has room and a worker is idle or may be added.

        A task starts (counts as running, against every limit above it) the
        moment it is handed to a worker, as an asyncio task would when made.
        """
        parked = self.parked
        while True:
            while parked and parked[0][0].done():
                parked.popleft()  # a worker cancelled while it waited
            if not parked and self.limit is not None and self.worker_count >= self.limit:
                return
            picked = self.take()
            if picked is None:
                return
            if parked:
                waiter, worker = parked.popleft()
                self._start(*picked, worker)
                waiter.set_result(picked)
            else:
                self.worker_count += 1
                worker = self.group.create_task(self._work(picked), context=self.base.copy())
                self._start(*picked, worker)
                self.workers.add(worker)
                worker.add_done_callback(partial(self._worker_ended, picked[1]))

    def take(self) -> tuple[Place, Handle[Any]] | None:
        """The next task that has room to start, taken from its queue with its place; else ``None``."""
        root = self.root
        if not root.children:
            queue = root.queue
            if not queue.ranked:  # the common case, inlined: tasks of priority 0 only
                ready = queue.plain and (root.limit is None or root.busy < root.limit)
                return (root, queue.plain.popleft()) if ready else None
            return (root, queue.pop()) if root.has_room() else None
        best: Place | None = None
        best_key = (0, 0)
        for place in root.tree():
            if place.queue and place.has_room():
                key = place.queue.head()
                if best is None or key < best_key:
                    best, best_key = place, key
        return None if best is None else (best, best.queue.pop())

    # --- the workers -------------------------------------------------------------

    async def _work(self, picked: tuple[Place, Handle[Any]] | None) -> None:
        me: asyncio.Task[Any] | None = asyncio.current_task()
        assert me is not None
        runner, clock = self.runner, time.monotonic
        bare = runner.bare
        budgeted = runner.budgeted  # a task's own retry is counted: not bare
        last = clock()
        while True:
            if picked is None:
                picked = self.take()
                if picked is not None:
                    self._start(*picked, me)
                elif self.stopping:
                    return
                else:
                    picked = await self._park(me)
                    last = clock()
                    if picked is None:
                        continue
            place, handle = picked
            picked = None
            spec, args = handle._spec, handle._args
            me.set_name(f"{spec.label} {args._origin.number}.{handle._seq}")
            started = last
            state, value, error = State.COMPLETED, None, None
            failure = None
            try:
                if handle._context is not None:
                    value = await in_own_context(self.runner, self.workers, handle, me)
                elif bare and spec.plain and not (budgeted and spec.layers.retry is not None):
                    try:
                        value = await spec.fn(args)
                    except Exception as first:
                        failure = first
                    if failure is not None:  # out of the except block: later errors do not chain to it
                        value = await runner.after_failure(spec, args, failure)
                else:
                    value = await runner.run(spec, args)
            except Exception as final:
                state, error = State.FAILED, final
                name_failure(final, args)
            except asyncio.CancelledError as cancelled:
                if not handle._stopping and not me.cancelling():
                    # Raised by the task itself (it awaited what another task cancelled): a failure, as in go.
                    state, error = State.FAILED, stray_cancel(repr(args._task), cancelled)
                    name_failure(error, args)
                # Only this task's own cancel(), with nothing else pending, lets the worker go on.
                elif not handle._stopping or me.uncancel() > 0:
                    self.finish(place, handle, State.CANCELLED)
                    raise
                else:
                    state = State.CANCELLED
            except (KeyboardInterrupt, SystemExit) as interrupt:
                self.finish(place, handle, State.CANCELLED)
                self.interrupts.catch(interrupt)
            if handle._stopping and state is not State.CANCELLED:
                me.uncancel()  # cancelled, it caught that and ended on its own: its outcome stands
            last = clock()
            self.finish(place, handle, state, value, error, last - started)
            if contextvars.copy_context() != self.base:
                # The task set a context variable and left it set: this
                # worker's context is no longer the pool's, so it retires
                # and a fresh worker takes its place (see `_worker_ended`).
                return

    async def _park(self, me: asyncio.Task[Any]) -> tuple[Place, Handle[Any]] | None:
        # Wait idle until `dispatch` hands this worker a task (already started).
        waiter: asyncio.Future[tuple[Place, Handle[Any]] | None] = asyncio.get_running_loop().create_future()
        self.parked.append((waiter, me))
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.cancelled() or waiter.result() is None:
                raise
            # Handed a task, then cancelled before taking it up: by the task's
            # own cancel() (it ends, the worker goes on) or by the pool's.
            place, handle = cast("tuple[Place, Handle[Any]]", waiter.result())
            self.runner.cancelled(handle._args)
            self.finish(place, handle, State.CANCELLED)
            if not handle._stopping or me.uncancel() > 0:
                raise
            return None

    def _worker_ended(self, first: Handle[Any], worker: asyncio.Task[Any]) -> None:
        self.workers.discard(worker)
        self.worker_count -= 1
        if first._state is State.RUNNING and first._worker is worker:
            # Cancelled before its first step, the worker never ran: its first task ends here.
            self.runner.cancelled(first._args)
            self.finish(first._place, first, State.CANCELLED)
        if not self.stopping:
            self.dispatch()  # a worker that retired leaves room for a fresh one

    def _retried(self, args: Any) -> None:
        args._origin.pool._place.retried += 1

    def _refused(self, args: Any) -> None:
        args._origin.pool._place.refused += 1

    def _start(self, place: Place, handle: Handle[Any], worker: asyncio.Task[Any]) -> None:
        handle._state = State.RUNNING
        handle._worker = worker
        place.running.add(handle)
        above: Place | None = place
        while above is not None:
            above.busy += 1
            above = above.parent
        if place.room_waiters:
            place.wake_submitters(self.settings.queue_size)

    def finish(
        self,
        place: Place,
        handle: Handle[Any],
        state: State,
        value: Any = None,
        error: BaseException | None = None,
        seconds: float | None = None,
    ) -> None:
        """The running ``handle`` ended as ``state``."""
        place.running.discard(handle)
        handle._worker = None
        above: Place | None = place
        while above is not None:
            above.busy -= 1
            above = above.parent
        if state is State.CANCELLED:
            place.cancelled += 1
        elif seconds is not None:
            place.durations.append(seconds)
        handle._end(state, value, error)
        if state is State.COMPLETED:
            place.completed += 1
        elif state is State.FAILED:
            place.failed += 1
            self.failures.keep(handle)
        if self.idle_waiters:
            self.wake_idle()

    def _cancel(self, handle: Handle[Any]) -> bool:
        """``handle.cancel()``: end it if queued, stop its worker's try if running."""
        if handle._state is State.QUEUED:
            place = handle._place
            place.queue.remove(handle)
            self.end_queued(place, handle)
            place.wake_submitters(self.settings.queue_size)
            return True
        if handle._state is State.RUNNING and handle._worker is not None and not handle._stopping:
            handle._stopping = True
            return handle._worker.cancel()
        return False

    def end_queued(self, place: Place, handle: Handle[Any]) -> None:
        """A queued task is cancelled before it started."""
        self.runner.cancelled(handle._args)
        place.cancelled += 1
        handle._end(State.CANCELLED)
        if self.idle_waiters:
            self.wake_idle()

    # --- waiting for the end -------------------------------------------------------

    def wake_idle(self) -> None:
        """Whoever waits for the family to be idle checks again."""
        waiters, self.idle_waiters = self.idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def until_idle(self, top: Place) -> None:
        """Wait until nothing is queued, running or scheduled in ``top`` and below."""
        root = self.root
        while any(place.queue or place.running or place.schedules for place in top.tree()):
            if self.closing and root.busy == self.listeners and not self._work_ahead():
                # Every task left waits on a subscription and nothing else will
                # run: nobody can publish any more, so the topics close.
                for topic in self.topics.values():
                    topic.close()
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.idle_waiters.append(idle)
            await idle

    def _work_ahead(self) -> bool:
        return any(place.queue or place.schedules for place in self.root.tree())

    async def stop_workers(self) -> None:
        """Let the idle workers end, then wait for every worker (all are idle by now)."""
        self.stopping = True
        for waiter, _ in self.parked:
            if not waiter.done():
                waiter.set_result(None)
        self.parked.clear()
        await self.group.__aexit__(None, None, None)
        self.threads.close()
        for drain in self.fed:
            drain._end_feed()

    def feed(self, drain: Drain[Any]) -> None:
        if drain not in self.fed:
            self.fed.add(drain)
            drain._begin_feed()

    def topic(self, owner: Any, name: str, buffer: int, when_full: WhenFull) -> Topic[Any]:
        """The topic ``name``, made for ``owner`` if new, else checked against how it was made."""
        existing = self.topics.get(name)
        if existing is None:
            existing = self.topics[name] = Topic[Any](name, buffer=buffer, when_full=when_full)
            existing._owner = owner
        elif (existing.buffer, existing.when_full) != (buffer, when_full):
            msg = (
                f"RunningPool.topic({name!r}): the topic exists with buffer={existing.buffer}, "
                f"when_full={existing.when_full!r}; got buffer={buffer}, when_full={when_full!r}"
            )
            raise ValueError(msg)
        return existing
