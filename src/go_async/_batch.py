"""One run of ``go``/``ago``/``map``/``as_completed``: workers pull tasks lazily from the user's iterable.

Each worker is one coroutine for all its tasks, pulled straight from the
iterable (no queue between), so a run keeps at most ``limit`` tasks alive.
A bare task is awaited right in the worker; any other goes through the
task runner (``_runner``), whose outcome the run records by position.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from time import perf_counter
from typing import Any, cast

from ._breaker import CircuitBreaker
from ._calls import not_a_task
from ._clock import Clock
from ._deadlines import Slot
from ._drain import Drain
from ._hookset import caller, raised
from ._interrupts import Interrupts
from ._outcomes import Outcomes
from ._runner import Call, Inline, Runner
from ._settings import Settings
from ._spec import Spec
from ._supply import END, AsyncSupply, Pull, is_async_only, stray_cancel
from ._task import Args, Origin, Task, run_numbers
from ._threads import Threads

_new = object.__new__
# What a run pulls from once its supply has ended.
_NO_MORE: Iterator[Any] = iter(())
# The most workers a run adds in one loop iteration (see `_add_workers`).
_MAX_BATCH = 100
# What a run takes: its tasks, from an iterable or an async iterable.
Tasks = Iterable[Task[Any, Any, Any]] | AsyncIterable[Task[Any, Any, Any]]


class Batch(Outcomes):
    """The state of one run: its errors, the drains it feeds, its workers and threads.

    ``keep(index, value)``, if given, receives each task's value (``map``);
    ``await deliver(value)``, if given, too, and a worker takes no new task
    until it returns (``as_completed``, whose reader sets the pace).
    """

    __slots__ = (
        "_deliver",
        "_fed",
        "_interrupts",
        "_keep",
        "_number",
        "_runner",
        "_specs",
        "_threads",
    )

    def __init__(
        self,
        settings: Settings,
        keep: Callable[[int, Any], object] | None = None,
        deliver: Callable[[Any], Awaitable[object]] | None = None,
    ) -> None:
        super().__init__()
        self._number = next(run_numbers)
        self._threads = Threads(settings.run_limit)
        self._runner = Runner(settings.layers, settings.events, self._threads)
        self._keep = keep
        self._deliver = deliver
        self._fed: set[Drain[Any]] = set()
        self._interrupts: Interrupts | None = None
        self._specs: Iterator[Task[Any, Any, Any]] = _NO_MORE

    async def drive(self, tasks: Tasks, limit: int | None) -> None:
        """Run every task of ``tasks`` (iterable, or async iterable) to its end, ``limit`` at a time."""
        # Chosen once per run: an async iterable's workers pull through `AsyncSupply`.
        supply = AsyncSupply(cast("AsyncIterable[Any]", tasks)) if is_async_only(tasks) else None
        self._specs = iter(cast("Iterable[Task[Any, Any, Any]]", tasks)) if supply is None else supply
        self._interrupts = interrupts = Interrupts()
        try:
            async with asyncio.TaskGroup() as group:
                await self._add_workers(group, limit)
        except asyncio.CancelledError:
            interrupts.reraise()  # the cancellation was ours: every task has unwound
            raise
        finally:
            self.close()
            if supply is not None:
                await supply.aclose()  # no worker pulls now; a generator left early runs its finally

    async def _pull(self) -> Task[Any, Any, Any] | None:
        # A worker's turn at an async supply; `None` once it has no more.
        supply = cast("AsyncSupply[Task[Any, Any, Any]]", self._specs)
        try:
            task = await supply.pull()
        except BaseException as error:
            self._source_raised(error)
            return None
        if task is END:
            self._specs = _NO_MORE
            return None
        return task

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
            specs = self._specs
            if isinstance(specs, AsyncSupply):
                # While workers wait on the source, more would only wait too (without a
                # limit, they would pile up for as long as the source is slow).
                await specs.until_quiet()
                specs = self._specs
            if specs is _NO_MORE:
                return
            batch = min(2 * batch, _MAX_BATCH)

    async def _work(self) -> None:
        """Pull the run's next task and run it, until there are none left.

        This is the hot path of every pool, so it stays flat: a bare task's
        first try is awaited right here, retry or not (unless a retry budget
        must count it); only a failure takes the slower path.
        """
        me = cast("asyncio.Task[None]", asyncio.current_task())
        origin = Origin(self._number, None)
        runner = self._runner
        # A task's value is wanted (map, as_completed) or not (go).
        bare_out = self._keep is None and self._deliver is None
        bare = runner.bare and bare_out  # nothing around a plain task but to await it
        hooks = runner.hooks
        timed = hooks is not None and hooks.times_tasks
        # The hooks of a task's start and success, called inline (see `caller`).
        on_start = None if hooks is None else caller(hooks.task_started)
        on_success = None if hooks is None else caller(hooks.task_succeeded)
        # A task whose only layers are a breaker, rate limits and a time limit
        # (and a retry) has its first try run here (see `Runner.inline`), timed
        # on this worker's own slot (see `Deadlines`).
        deadlines, clock = runner.deadlines, asyncio.get_running_loop().time
        inline: Inline | None = None
        slot: Slot | None = None
        guard: CircuitBreaker | None = None
        probe = False
        limit: float | None = None
        turns: tuple[tuple[Callable[[], float | None], Clock], ...] = ()
        # What depends only on the task's spec (shared by every input of one
        # task) is settled when the spec changes, not for each task: whether
        # it is bare, else its layers composed once (see `Runner.plan`).
        named: Spec | None = None
        fast = False
        call: Call | None = None
        while True:
            try:
                task = next(self._specs)
            except StopIteration:
                self._specs = _NO_MORE
                return
            except Pull:
                if (pulled := await self._pull()) is None:
                    return
                task = pulled
            except BaseException as error:
                self._source_raised(error)
                return
            if not isinstance(task, Task):
                self._source_error, self._specs = not_a_task(self._total, task), _NO_MORE
                return
            index = self._total
            self._total = index + 1
            spec = task._spec
            if spec is not named:
                named = spec
                # Name the worker after its task, for debuggers and asyncio's introspection.
                me.set_name(spec.label)
                if spec.drain is not None and spec.drain not in self._fed:
                    self._feed(spec.drain)
                fast = spec.plain and bare and not (runner.budgeted and spec.layers.retry is not None)
                # Inline only where the value is not wanted (map and as_completed keep it).
                inline = None if fast or not bare_out else runner.inline(spec)
                if inline is None:
                    if not fast:
                        call = runner.plan(spec)
                else:
                    guard, limit = inline.breaker, inline.seconds
                    turns = tuple((rate.reserve, rate.clock) for rate in inline.rates)
                    if limit is not None and slot is None:
                        slot = deadlines.slot(me)

            args: Args[Any] = _new(Args)  # pyright: ignore[reportUnknownVariableType]
            args._task, args._origin, args._index = task, origin, index
            failure = None
            admitted = False
            try:
                if fast:
                    await spec.fn(args)
                elif inline is not None:
                    # The first try through the task's layers, run here as
                    # `plan` would (see `Runner.inline`), without a coroutine each.
                    if guard is not None:
                        probe = guard.admit(None)  # a refusal is the task's error, never retried
                        admitted = True
                    if inline.first_try is not None:  # a retry budget's count
                        inline.first_try()
                    for reserve, rate_clock in turns:
                        if (turn := reserve()) is not None:
                            await rate_clock.sleep_until(turn)
                    if limit is None:
                        await spec.fn(args)
                    else:
                        # Timed on this worker's own slot: `Deadlines.limit`'s work.
                        assert slot is not None
                        slot.deadline = deadline = clock() + limit
                        if deadline < deadlines.armed_at:
                            deadlines.watch(deadline)
                        try:
                            await spec.fn(args)
                        except BaseException as error:
                            slot.deadline = math.inf
                            if slot.expired and slot.take_back(error):
                                raise runner.timed_out(limit, args) from None
                            raise
                        slot.deadline = math.inf
                        if slot.expired:
                            slot.take_back(None)  # out of time, it swallowed that: its value stands
                    if guard is not None:
                        guard.succeeded(probe, None)
                else:
                    # `Runner.run`, inlined: a coroutine less per task.
                    assert call is not None
                    if hooks is None:
                        value = await call(args)
                    else:
                        if on_start is not None:
                            try:
                                on_start(args)
                            except Exception:
                                raised(on_start)
                        started = perf_counter() if timed else 0.0
                        try:
                            value = await call(args)
                        except Exception as error:
                            runner.failed(args, error, started)
                            raise
                        except BaseException:
                            runner.cancelled(args)
                            raise
                        if on_success is not None:
                            try:
                                on_success(args, perf_counter() - started)
                            except Exception:
                                raised(on_success)
                    if self._keep is not None:
                        self._keep(index, value)
                    elif self._deliver is not None:
                        await self._deliver(value)
            except Exception as error:
                failure = error
            except asyncio.CancelledError as cancelled:
                if admitted and guard is not None:
                    guard.abandoned(probe)
                if me.cancelling():
                    raise
                # Raised by the task itself (it awaited something that another
                # task cancelled), not by a cancellation of this run: a failure
                # of that task, and the worker goes on.
                self._failed(index, args, stray_cancel(repr(task), cancelled))
            except (KeyboardInterrupt, SystemExit) as interrupt:
                if admitted and guard is not None:
                    guard.abandoned(probe)
                assert self._interrupts is not None
                self._interrupts.catch(interrupt)
            if failure is not None:
                if fast or (inline is not None and (admitted or guard is None)):
                    await self._settle(index, spec, args, failure, guard if admitted else None, probe)
                else:
                    self._failed(index, args, failure)
            # A task that swallowed its CancelledError must not make a
            # cancelled worker pull and start the next one.
            if me.cancelling():
                raise asyncio.CancelledError

    async def _settle(
        self,
        index: int,
        spec: Spec,
        args: Args[Any],
        failure: Exception,
        breaker: CircuitBreaker | None = None,
        probe: bool = False,
    ) -> None:
        # A first try run inline failed: retry it if its policy (or the
        # pool's) says so, and record its final error otherwise; the task's
        # breaker, which admitted it, hears how it ended.
        try:
            await self._runner.after_failure(spec, args, failure)
        except Exception as error:
            self._failed(index, args, error)
            if breaker is not None:
                breaker.failed(probe, error, None)
        except BaseException as stopped:
            if breaker is not None:
                breaker.abandoned(probe)
            if not isinstance(stopped, KeyboardInterrupt | SystemExit):
                raise
            assert self._interrupts is not None
            self._interrupts.catch(stopped)
        else:
            if breaker is not None:
                breaker.succeeded(probe, None)

    def _source_raised(self, error: BaseException) -> None:
        # The user's iterable failed: no new task starts, the running ones end, then
        # `raise_failures` reports it (raised here, it would abort the TaskGroup).
        self._specs = _NO_MORE
        if isinstance(error, KeyboardInterrupt | SystemExit):
            assert self._interrupts is not None
            self._interrupts.catch(error)  # it cancels the run, as a task's interrupt does
        self._source_failed(error)

    def _feed(self, drain: Drain[Any]) -> None:
        # Readers of a drain wait until every run feeding it has ended.
        self._fed.add(drain)
        drain._begin_feed()

    def close(self) -> None:
        """End the run's feeds and threads (every thread call is done by now)."""
        for drain in self._fed:
            drain._end_feed()
        self._fed.clear()
        self._threads.close()
