"""What a run of ``go``/``ago``/``map``/``as_completed`` records of its failures, and raises at its end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from ._supply import being_cancelled, stray_cancel
from ._task import Args, name_failure


class Outcomes:
    """A run's failures by position, and its tasks iterable's own error; ``Batch`` is one."""

    __slots__ = ("_errors", "_items", "_on_failed", "_source_error", "_total")

    def __init__(self) -> None:
        self._errors: list[tuple[int, Exception]] = []
        self._source_error: Exception | None = None
        self._total = 0
        # What the run's iterable holds, as its error's note names them: "tasks", or "inputs" (map).
        self._items = "tasks"
        # Told the position of each task that failed (a resumable run's `Resume`).
        self._on_failed: Callable[[int], object] | None = None

    def _failed(self, index: int, args: Args[Any], error: Exception) -> None:
        name_failure(error, args)
        self._errors.append((index, error))
        me = asyncio.current_task()
        if self._on_failed is not None and (me is None or not me.cancelling()):
            # A task that failed while its run was being cancelled has not finished: it runs again.
            self._on_failed(index)

    def _source_failed(self, error: BaseException) -> None:
        """The run's iterable raised ``error``: keep it, to be raised once the running tasks end."""
        if isinstance(error, asyncio.CancelledError):
            if being_cancelled():
                raise error  # the run is being cancelled: it goes on unwinding
            error = stray_cancel(f"the {self._items} iterable", error)
        elif not isinstance(error, Exception):
            raise error
        items = self._items if self._total != 1 else self._items[:-1]  # "1 input", "2 inputs"
        error.add_note(f"raised by the {self._items} iterable after {self._total} {items}")
        self._source_error = error

    def errors(self) -> list[Exception]:
        """The final error of each failed task, in submission order."""
        return [error for _, error in sorted(self._errors, key=itemgetter(0))]

    def raise_failures(self, *, settle: bool = False) -> list[tuple[int, Exception]]:
        """Raise what went wrong: the tasks iterable's error, else all task errors.

        With ``settle`` the task errors are returned instead, with their positions.
        """
        errors = self.errors()
        if self._source_error is not None:
            if errors:
                tasks = "task" if len(errors) == 1 else "tasks"
                self._source_error.add_note(f"{len(errors)} {tasks} failed too: see pool.errors()")
            raise self._source_error
        if errors and not settle:
            msg = f"{len(errors)} of {self._total} tasks failed"
            raise ExceptionGroup(msg, errors)
        return self._errors
