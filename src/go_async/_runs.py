"""``go``, ``ago``, ``map``, ``amap`` and ``as_completed``: the runs a ``Pool`` makes, one ``Batch`` each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial
from typing import Any, Literal, TypeVar, overload

from ._batch import Batch, Tasks
from ._calls import calls, check_mapping, check_tasks, refuse_to_block, size_of, stream
from ._checkpoint import CheckpointChoice, MapCheckpointChoice
from ._hookset import emit
from ._progress import ProgressChoice, progress_hooks
from ._resume import Resume
from ._resume_map import ResumeMap
from ._settings import Settings
from ._spec import describe
from ._supply import Inputs

X = TypeVar("X")
R = TypeVar("R")


class Runs:
    """The runs of a ``Pool`` over many tasks or inputs; ``Pool`` documents them."""

    __slots__ = ()
    _settings: Settings
    _errors: list[Exception]

    def _plus_hooks(self, settings: Settings, added: tuple[object, ...]) -> Settings:
        raise NotImplementedError  # the pool's own: it knows the Hooks class

    def go(
        self,
        tasks: Tasks,
        *,
        progress: ProgressChoice = False,
        checkpoint: CheckpointChoice | None = None,
        run_id: str | None = None,
    ) -> None:
        """Run every task to its end, blocking until done; for scripts.

        Raises ``RuntimeError`` inside a running event loop: use
        ``await pool.ago(tasks)`` there. ``tasks`` may be an iterable or an
        async iterable (see ``ago``). ``progress=True`` draws a progress
        bar with tqdm, or rich if tqdm is not installed (``"tqdm"`` or
        ``"rich"`` picks one): install ``go-async[tqdm]`` or ``go-async[rich]``.
        ``checkpoint`` and ``run_id`` make the run resumable (see ``ago``).
        """
        refuse_to_block("Pool.go()", "await pool.ago(tasks)")
        check_tasks(tasks)
        bar = progress_hooks("Pool.go", progress, size_of(tasks), "go")
        asyncio.run(self._resumable("Pool.go", tasks, bar, checkpoint, run_id))

    async def ago(
        self,
        tasks: Tasks,
        *,
        progress: ProgressChoice = False,
        checkpoint: CheckpointChoice | None = None,
        run_id: str | None = None,
    ) -> None:
        """Run every task to its end; the async twin of ``go``.

        ``tasks`` may be any iterable or async iterable (an ``async for``
        over a cursor, pages of an API, a queue); either is consumed lazily,
        so with a limit only ``limit`` tasks exist at once. An async iterable
        is pulled by one worker at a time, and closed (``aclose``) when the
        run ends. A list or tuple is checked whole before anything starts.

        With ``checkpoint`` (a file path for a ``SqliteCheckpoint``, or any
        ``Checkpoint``), the run saves its progress as it goes, and a later
        run of the same tasks with the same checkpoint skips every task that
        ended (succeeded or failed) and runs the rest: the ones that were
        running when the first run died, and those it never reached. The
        inputs are known by a fingerprint of the first tasks (each one's
        function and its input's repr), or by ``run_id``; progress saved for
        other inputs is refused with a ``ValueError``.

        Example::

            async def rows() -> AsyncIterator[int]:
                async for row in cursor:
                    yield row

            await Pool(limit=8).ago(
                (Task(store).with_input(row) async for row in rows()), checkpoint="store.sqlite"
            )
        """
        check_tasks(tasks)
        bar = progress_hooks("Pool.ago", progress, size_of(tasks), "go")
        await self._resumable("Pool.ago", tasks, bar, checkpoint, run_id)

    async def _resumable(
        self, where: str, tasks: Tasks, bar: object | None, checkpoint: object, run_id: str | None
    ) -> None:
        if checkpoint is None:
            if run_id is not None:
                msg = f"{where}: run_id names the inputs of a checkpoint: pass checkpoint= too"
                raise TypeError(msg)
            await self._drive(tasks, bar)
            return
        resume = Resume(where, checkpoint, run_id, getattr(bar, "skipped", None))
        try:
            todo = await resume.opened(tasks)
            await self._drive(todo, bar, resume.succeeded, ended=resume.ended)
        except BaseException as ending:
            resume.close(ending)  # the run's own error (or cancellation) goes on
            raise
        resume.close()

    async def _drive(
        self,
        tasks: Tasks,
        bar: object | None,
        keep: Callable[[int, Any], object] | None = None,
        deliver: Callable[[Any], Awaitable[object]] | None = None,
        *,
        settle: bool = False,
        ended: Callable[[int], object] | None = None,
        items: str = "tasks",
    ) -> list[tuple[int, Exception]]:
        # With `settle`, the tasks' failures are returned by position, not raised; `ended` hears
        # of each failure's position, as `keep` of each success's. `items` names what `tasks`
        # was made of in the note on its error: "inputs" for a map.
        settings = self._settings if bar is None else self._plus_hooks(self._settings, (bar,))
        run = Batch(settings, keep, deliver)
        run._on_failed, run._items = ended, items
        events = settings.events
        if events is not None:
            emit(events.pool_started, self)
        try:
            await run.drive(tasks, settings.run_limit)
        finally:
            self._errors[:] = run.errors()
            if events is not None:
                emit(events.pool_closed, self)
        return run.raise_failures(settle=settle)

    @overload
    def map(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Inputs[X],
        *,
        progress: ProgressChoice = ...,
        return_exceptions: Literal[False] = ...,
        checkpoint: MapCheckpointChoice | None = ...,
        run_id: str | None = ...,
    ) -> list[R]: ...
    @overload
    def map(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Inputs[X],
        *,
        progress: ProgressChoice = ...,
        return_exceptions: bool,
        checkpoint: MapCheckpointChoice | None = ...,
        run_id: str | None = ...,
    ) -> list[R | Exception]: ...
    def map(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Inputs[X],
        *,
        progress: ProgressChoice = False,
        return_exceptions: bool = False,
        checkpoint: MapCheckpointChoice | None = None,
        run_id: str | None = None,
    ) -> list[R] | list[R | Exception]:
        """``fn(x)`` for each of ``inputs``, run as tasks of this pool, in input order; blocks.

        For scripts; ``await pool.amap(fn, inputs)`` is its async twin.
        ``inputs`` may be an iterable or an async iterable, pulled lazily. Every
        call runs to its end; if any failed, the failures are raised together
        as ``go`` raises them, and no partial list is returned, unless
        ``return_exceptions=True``: then each failed call's place in the list
        holds its final error. ``progress`` is as in ``go``. With
        ``checkpoint`` (a file path: SQLite) and ``run_id`` it is resumable as
        ``go`` is, but it keeps every value in the file (pickled), so that a
        resumed map returns them all, and a failed call runs again.

        Example::

            async def size(url: str) -> int: ...

            sizes: list[int] = Pool(limit=8).map(size, urls)
            either: list[int | Exception] = Pool(limit=8).map(size, urls, return_exceptions=True)
        """
        refuse_to_block("Pool.map()", "await pool.amap(fn, inputs)")
        check_mapping("Pool.map", fn, inputs)
        bar = progress_hooks("Pool.map", progress, size_of(inputs), describe(fn))
        return asyncio.run(self._map("Pool.map", fn, inputs, bar, return_exceptions, checkpoint, run_id))

    @overload
    async def amap(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Inputs[X],
        *,
        progress: ProgressChoice = ...,
        return_exceptions: Literal[False] = ...,
        checkpoint: MapCheckpointChoice | None = ...,
        run_id: str | None = ...,
    ) -> list[R]: ...
    @overload
    async def amap(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Inputs[X],
        *,
        progress: ProgressChoice = ...,
        return_exceptions: bool,
        checkpoint: MapCheckpointChoice | None = ...,
        run_id: str | None = ...,
    ) -> list[R | Exception]: ...
    async def amap(
        self,
        fn: Callable[[X], Awaitable[R]],
        inputs: Inputs[X],
        *,
        progress: ProgressChoice = False,
        return_exceptions: bool = False,
        checkpoint: MapCheckpointChoice | None = None,
        run_id: str | None = None,
    ) -> list[R] | list[R | Exception]:
        """``fn(x)`` for each of ``inputs`` (iterable or async iterable), in order: ``map``'s async twin.

        Example::

            async def rows() -> AsyncIterator[int]:
                for page in range(3):
                    for row in await fetch_page(page):
                        yield row

            doubled: list[int] = await Pool(limit=8).amap(double, rows())
        """
        check_mapping("Pool.amap", fn, inputs)
        bar = progress_hooks("Pool.amap", progress, size_of(inputs), describe(fn))
        return await self._map("Pool.amap", fn, inputs, bar, return_exceptions, checkpoint, run_id)

    async def _map(
        self,
        where: str,
        fn: Callable[[X], Awaitable[R]],
        inputs: Inputs[X],
        bar: object | None,
        settle: bool,
        checkpoint: object = None,
        run_id: str | None = None,
    ) -> list[R | Exception]:
        if checkpoint is not None:
            resume = ResumeMap(where, checkpoint, run_id, getattr(bar, "skipped", None))
            try:
                todo = await resume.opened(calls(fn, inputs))
                failures = await self._drive(todo, bar, resume.succeeded, settle=settle, items="inputs")
                values = resume.listed(failures)  # read before the file closes
            except BaseException as ending:
                resume.close(ending)
                raise
            resume.close()
            return values
        if run_id is not None:
            msg = f"{where}: run_id names the inputs of a checkpoint: pass checkpoint= too"
            raise TypeError(msg)
        results: dict[int, R | Exception] = {}
        failures = await self._drive(
            calls(fn, inputs), bar, results.__setitem__, settle=settle, items="inputs"
        )
        results.update(failures)
        return [results[index] for index in range(len(results))]

    def as_completed(
        self, fn: Callable[[X], Awaitable[R]], inputs: Inputs[X], *, progress: ProgressChoice = False
    ) -> AsyncGenerator[R, None]:
        """``fn(x)`` for each of ``inputs``, yielded as each one ends, run as tasks of this pool.

        ``inputs`` may be an iterable or an async iterable, pulled lazily.
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
        drive = partial(self._drive, calls(fn, inputs), bar, None, items="inputs")
        return stream(drive, self._settings.run_limit)
