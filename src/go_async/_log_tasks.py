"""``LogTasks``: every task event as a log record, a fixed message per event, the details as fields."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar

from ._checks import integer
from ._pool import Hooks
from ._task import Args, CallNext

R = TypeVar("R")


class LogTasks(Hooks):
    """Logs what happens to each task: one fixed message per event, the details as fields.

    The messages are ``"task started"`` (DEBUG), ``"task retried"`` and
    ``"task retry refused"`` (by the pool's retry budget; WARNING),
    ``"task succeeded"`` (at ``level``), ``"task failed"``
    (ERROR, with the traceback) and ``"task cancelled"`` (WARNING), so that
    a log search or structlog's event name stays the same from task to
    task. Each record carries ``task_id``, ``task_name`` (its function's
    name if it has none) and ``task_tags``;
    an end, its ``duration`` in seconds; a retry, the failed ``attempt``,
    the ``wait`` before the next and the ``error``.

    Give it as hooks to hear every event. Given as middleware (as it could
    be before), it wraps the task from outside its retries, so it logs the
    ends and cancellations only.

    Example::

        pool = Pool(limit=8, hooks=[LogTasks(logging.getLogger("crawler"))]).with_retry(3)
    """

    __slots__ = ("_level", "_logger")

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        if logger is not None and not isinstance(logger, logging.Logger):
            msg = (
                f"LogTasks(logger): logger must be a logging.Logger, got {logger!r} ({type(logger).__name__})"
            )
            raise TypeError(msg)
        self._logger = logger or logging.getLogger("go_async.tasks")
        self._level = integer("LogTasks", "level", level)

    # As hooks: every event, as it happens.

    def task_started(self, args: Args[Any]) -> None:
        self._log(logging.DEBUG, "task started", args)

    def task_retried(self, args: Args[Any], error: Exception, attempt: int, wait: float) -> None:
        self._log(logging.WARNING, "task retried", args, attempt=attempt, wait=wait, error=repr(error))

    def retry_refused(self, args: Args[Any], error: Exception, attempt: int) -> None:
        self._log(logging.WARNING, "task retry refused", args, attempt=attempt, error=repr(error))

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        self._log(self._level, "task succeeded", args, duration=seconds)

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        self._log(logging.ERROR, "task failed", args, error, duration=seconds, error=repr(error))

    def task_cancelled(self, args: Args[Any]) -> None:
        self._log(logging.WARNING, "task cancelled", args)

    # As middleware: the ends, timed around the retries.

    async def __call__(self, args: Args[Any], call_next: CallNext[R]) -> R:
        started = time.perf_counter()
        try:
            result = await call_next()
        except asyncio.CancelledError:
            self.task_cancelled(args)
            raise
        except Exception as error:
            self.task_failed(args, error, time.perf_counter() - started)
            raise
        self.task_succeeded(args, time.perf_counter() - started)
        return result

    def _log(
        self, level: int, event: str, args: Args[Any], exc_info: BaseException | None = None, **fields: Any
    ) -> None:
        if self._logger.isEnabledFor(level):
            # The task's name, else its function's: a log line always says which.
            name = args.task._spec.title
            extra = {"task_id": args.id, "task_name": name, "task_tags": args.tags, **fields}
            self._logger.log(level, event, extra=extra, exc_info=exc_info)

    def __repr__(self) -> str:
        return f"LogTasks({self._logger.name!r}, {logging.getLevelName(self._level)})"
