"""One resumable run: it names its inputs, skips what an earlier run finished, and saves as it goes.

The first inputs are read, and the checkpoint checked against them, before
the run starts (``opened``), so progress saved for other inputs is refused
before any hook hears of a run or anything runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from functools import partial
from itertools import chain, islice
from typing import Any, Generic, TypeVar, cast

from ._calls import _Call
from ._checkpoint import (
    FINGERPRINT_INPUTS,
    SAVE_EVERY,
    Checkpoint,
    RunProgress,
    SqliteCheckpoint,
    checkpoint_of,
)
from ._checks import label
from ._supply import being_cancelled, is_async_only
from ._task import _MISSING, Task

T = TypeVar("T")

logger = logging.getLogger("go_async")


class Resume:
    """One run's progress: it skips what an earlier run finished, and hears of each task that ends.

    The run tells it of each task that ended (``succeeded``, ``ended``), by
    the task's index in the run's own order, its index among the tasks it was
    handed; ``_positions`` maps each running one's to its position in the inputs.

    Example (what ``Pool.ago(tasks, checkpoint=path)`` does)::

        resume = Resume("Pool.ago", "run.sqlite", None)
        await pool._drive(await resume.opened(tasks), None, resume.succeeded, ended=resume.ended)
        resume.close()
    """

    # What kind of run saved the progress, before its inputs' name: a map's progress (with its
    # values) and a go's over the same calls are not each other's.
    KIND = ""

    def __init__(
        self, where: str, checkpoint: object, run_id: str | None, skipped: Callable[[], object] | None = None
    ) -> None:
        self._checkpoint = checkpoint_of(where, checkpoint)
        self._skipped = skipped  # told of each task skipped (a progress bar counts it done)
        kept = self._checkpoint
        self._opened = kept if isinstance(kept, SqliteCheckpoint) and kept is not checkpoint else None
        self._where = where
        self._given = None if run_id is None else label(where, "run_id", run_id)
        try:
            self._before = _loaded(where, self._checkpoint)
            if isinstance(kept, SqliteCheckpoint):
                kept.writable()
        except BaseException:
            if self._opened is not None:  # a file it cannot read: closed before the error goes up
                self._opened.close()
            raise
        self._run_id = ""
        self._next = 0  # the position the inputs are at
        self._handed = 0  # the tasks handed to the run so far
        self._positions: dict[int, int] = {}  # a running task's index in the run -> its position
        self._timer: asyncio.TimerHandle | None = None

    async def opened(self, tasks: Iterable[T] | AsyncIterable[T]) -> Iterable[T] | AsyncIterable[T]:
        """``tasks`` without those an earlier run finished, once the checkpoint is checked against them.

        An error the iterable raises among the first inputs is raised by the
        returned iterable after those inputs, as any later error would be, so
        the run reports it the same way: after the tasks before it ran.
        """
        if is_async_only(tasks):
            return await self._checked_async(cast("AsyncIterable[T]", tasks))
        items = iter(cast("Iterable[T]", tasks))
        firsts, failure = _first_inputs(items)
        self._check(firsts)
        return self._sync_tasks(firsts, failure, items)

    async def _checked_async(self, tasks: AsyncIterable[T]) -> AsyncIterator[T]:
        rest = aiter(tasks)
        firsts: list[T] = []
        failure: BaseException | None = None
        try:
            try:
                async for item in rest:
                    firsts.append(item)
                    if len(firsts) == FINGERPRINT_INPUTS:
                        break
            except Exception as error:
                failure = error
            except asyncio.CancelledError as cancelled:
                if being_cancelled():
                    raise
                failure = cancelled  # the iterable's own failure: the run reports it as any
            self._check(firsts)
        except BaseException:
            await _close(rest)  # refused, or interrupted: the run that would have closed it never starts
            raise
        return _Rest(self._async_tasks(firsts, failure, rest), rest)

    def _check(self, firsts: list[Any]) -> None:
        # Name the inputs, and refuse progress saved for others (before anything is
        # saved: a refused run leaves the checkpoint as it was).
        if self._given is not None:
            run_id = self.KIND + self._given
        else:
            digest = hashlib.sha256("\n".join(map(_named, firsts)).encode()).hexdigest()
            run_id = f"{self.KIND}fingerprint:{digest[:32]}"
        before = self._before
        if before is not None and before.run_id != run_id:
            kept = self._checkpoint
            name = str(kept.path) if isinstance(kept, SqliteCheckpoint) else kept
            msg = (
                f"{self._where}: checkpoint {name!r} holds the progress of other inputs"
                f" ({before.run_id!r}, not {run_id!r}):"
                " use a new checkpoint, or pass the run_id= of the run it was made for"
            )
            raise ValueError(msg)
        self._run_id = run_id

    def _hand(self, position: int) -> bool:
        # Whether the task at `position` runs now (else an earlier run finished it).
        before = self._before
        if before is not None and position < before.started and position not in before.unfinished:
            if self._skipped is not None:
                self._skipped()
            return False
        self._positions[self._handed] = position
        self._handed += 1
        if self._timer is None:
            self._changed()
        return True

    def _sync_tasks(self, firsts: list[T], failure: BaseException | None, rest: Iterator[T]) -> Iterator[T]:
        items: Iterable[T] = firsts if failure is not None else chain(firsts, rest)
        if self._before is None:  # nothing to skip: hand every task
            positions = self._positions
            for item in items:
                positions[self._handed] = self._handed
                self._handed = self._next = self._handed + 1
                if self._timer is None:
                    self._changed()
                yield item
        else:
            for item in items:
                position = self._next
                self._next += 1
                if self._hand(position):
                    yield item
        if failure is not None:
            raise failure

    async def _async_tasks(
        self, firsts: list[T], failure: BaseException | None, rest: AsyncIterator[T]
    ) -> AsyncGenerator[T, None]:
        for item in firsts:
            self._next += 1
            if self._hand(self._next - 1):
                yield item
        if failure is not None:
            raise failure
        async for item in rest:
            self._next += 1
            if self._hand(self._next - 1):
                yield item

    def succeeded(self, index: int, value: object) -> None:
        """The task at ``index`` in the run's order ended well (the run's ``keep``)."""
        self._positions.pop(index, None)
        if self._timer is None:
            self._changed()

    def ended(self, index: int) -> None:
        """The task at ``index`` in the run's order ended: it will not run again."""
        self._positions.pop(index, None)
        if self._timer is None:
            self._changed()

    def _changed(self) -> None:
        # Saved within SAVE_EVERY of a change, in one write for every change until then.
        self._timer = asyncio.get_running_loop().call_later(SAVE_EVERY, self._save_soon)

    def _save_soon(self) -> None:
        # A failed save is tried again by the next; the caller hears of the last one's (`close`).
        try:
            self.save()
        except Exception:
            logger.warning("go_async: saving the checkpoint failed; the next save tries again", exc_info=True)

    def progress(self) -> RunProgress:
        """Where the run is now: positions passed, and those not ended (running, or not reached yet)."""
        before = self._before
        unfinished = set(self._positions.values())
        started = self._next
        if before is not None:
            unfinished.update(p for p in before.unfinished if p >= self._next)
            started = max(started, before.started)
        return RunProgress(self._run_id, started, frozenset(unfinished))

    def save(self) -> None:
        """Save the progress now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._run_id:  # named once the first inputs were read
            self._write(self.progress())

    def _write(self, progress: RunProgress) -> None:
        self._checkpoint.save(progress)

    def close(self, ending: BaseException | None = None) -> None:
        """Save, and close a file the run opened; a failed save is a note on ``ending``, if given."""
        try:
            self.save()
        except Exception as failed:
            if ending is None:
                raise
            ending.add_note(f"go_async: saving the checkpoint failed too: {failed!r}")
        finally:
            if self._opened is not None:
                self._opened.close()


class _Rest(Generic[T]):
    """A resumed run's tasks from an async source: closing them closes the source, pulled or not.

    (An async generator closed before its first pull never runs its body, so it could not.)
    """

    __slots__ = ("_source", "_tasks")

    def __init__(self, tasks: AsyncGenerator[T, None], source: AsyncIterator[T]) -> None:
        self._tasks, self._source = tasks, source

    def __aiter__(self) -> _Rest[T]:
        return self

    def __anext__(self) -> Awaitable[T]:
        return self._tasks.__anext__()

    async def aclose(self) -> None:
        try:
            await self._tasks.aclose()
        finally:
            await _close(self._source)


def _first_inputs(items: Iterator[T]) -> tuple[list[T], BaseException | None]:
    # The inputs the fingerprint is made of, and the error that cut them short, if one did:
    # a CancelledError too, as reading a sync iterable awaits nothing that a cancellation stops.
    firsts: list[T] = []
    try:
        firsts.extend(islice(items, FINGERPRINT_INPUTS))  # keeps those read before an error
    except (Exception, asyncio.CancelledError) as error:
        return firsts, error
    return firsts, None


async def _close(items: AsyncIterator[Any]) -> None:
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


def _loaded(where: str, checkpoint: Checkpoint) -> RunProgress | None:
    progress: object = checkpoint.load()
    if progress is None or isinstance(progress, RunProgress):
        return progress
    msg = f"{where}: {checkpoint!r}.load() must return a RunProgress or None, got {progress!r}"
    raise TypeError(msg)


def _named(item: object) -> str:
    # What the fingerprint knows an input by: a task's function and its whole input, not the
    # task's repr, which cuts long values short and shows its drain's state.
    if not isinstance(item, Task):
        return repr(item)
    task: Task[Any, Any, Any] = item  # pyright: ignore[reportUnknownVariableType]
    given = task._input
    return f"{_identity(task._spec.fn)}({'' if given is _MISSING else repr(given)})"


def _identity(fn: object) -> str:
    # A function by its place in the code, the same in every process, not by its repr, which
    # shows an address. Whatever a call holds besides (a partial's arguments, a method's object,
    # a callable object's state) counts by its repr: with a repr of its own it is the same in
    # every process; with the default one, the address makes a later process's run another's,
    # which is refused (name it with run_id=), never taken for this one.
    if isinstance(fn, _Call):
        return _identity(fn._fn)
    if isinstance(fn, partial):
        bound: partial[Any] = fn  # pyright: ignore[reportUnknownVariableType]
        return f"{_identity(bound.func)}{bound.args!r}{sorted(bound.keywords.items())!r}"
    if inspect.ismethod(fn):
        return f"{_identity(fn.__func__)}[{fn.__self__!r}]"
    if inspect.isfunction(fn) and fn.__name__ == "<lambda>":  # one scope's lambdas share a name
        return f"{fn.__module__}.{fn.__qualname__}:{fn.__code__.co_firstlineno}"
    if inspect.isfunction(fn) or inspect.isbuiltin(fn) or isinstance(fn, type):
        return f"{getattr(fn, '__module__', '')}.{fn.__qualname__}"
    return f"{_identity(type(fn))}[{fn!r}]"  # a callable object
