"""The worker: runs a registry's named tasks from a broker, with a limit, and rejects the rest."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import traceback
from datetime import timedelta
from typing import Any

from taskiq import AckableMessage, InMemoryBroker
from taskiq.abc.broker import AsyncBroker
from taskiq.receiver import Receiver
from taskiq.result import TaskiqResult

from .._checks import label, positive_int, positive_seconds
from .._pool import Pool
from .._runner import Runner
from .._task import Args
from .._threads import Threads
from ._brokers import DEFAULT_QUEUE, redis_broker
from ._registry import Named, Registry

logger = logging.getLogger("go_async.distributed")

URL_VARIABLE = "GO_ASYNC_BROKER_URL"
# Keeps a malformed message's log line short whatever was sent.
_SHOWN_BYTES = 200


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerStats:
    """What a worker has done so far: messages received, tasks running and ended, messages refused.

    Example::

        stats = worker.stats()
        log.info("%d done, %d failed, %d rejected", stats.succeeded, stats.failed, stats.rejected)
    """

    received: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    rejected: int = 0


class Worker:
    """Runs the named tasks of ``registry`` that arrive on a broker, at most ``concurrency`` at once.

    With a Redis ``url`` (or ``GO_ASYNC_BROKER_URL``), ``run()`` takes
    messages from the queue until ``stop`` is set, then finishes the tasks
    it has started and returns. A message is acknowledged only after its
    result is saved, so the tasks of a worker that dies are run by another
    one once they have been idle ``redeliver_after`` seconds: delivery is at
    least once, and a task may run twice. A message that is not JSON, names
    a task not in the registry or carries arguments that do not fit is
    rejected: logged at ERROR, counted in ``stats().rejected``, answered
    with an error when it has an id, and never run.

    Each task runs through the task runner as a task of ``pool`` would:
    its middleware (OpenTelemetry spans too), hooks, retry and timeout
    apply; the worker's ``concurrency`` is its limit. ``ready`` is set while
    it takes messages. ``python -m go_async.worker module:registry`` runs
    one from a shell.

    Example::

        worker = Worker(registry, url="redis://localhost:6379/0", concurrency=8)
        await worker.run(stop)  # until stop.set(), e.g. on SIGTERM
    """

    __slots__ = (
        "_counts",
        "_runner",
        "_slots",
        "concurrency",
        "pool",
        "queue",
        "ready",
        "redeliver_after",
        "registry",
        "url",
    )

    def __init__(
        self,
        registry: Registry,
        *,
        url: str | None = None,
        queue: str = DEFAULT_QUEUE,
        concurrency: int = 10,
        redeliver_after: float | timedelta = 30.0,
        pool: Pool | None = None,
    ) -> None:
        if not isinstance(registry, Registry):
            msg = f"Worker: registry must be a Registry, got {registry!r} ({type(registry).__name__})"
            raise TypeError(msg)
        self.registry: Registry = registry
        self.url: str | None = url if url is not None else os.environ.get(URL_VARIABLE)
        if self.url is not None:
            label("Worker", "url", self.url)
        self.queue: str = label("Worker", "queue", queue)
        self.concurrency: int = positive_int("Worker", "concurrency", concurrency)
        self.redeliver_after: float = positive_seconds("Worker", "redeliver_after", redeliver_after)
        self.ready: asyncio.Event = asyncio.Event()
        self._counts = dict.fromkeys(("received", "running", "succeeded", "failed", "rejected"), 0)
        if pool is not None and not isinstance(pool, Pool):
            msg = f"Worker: pool must be a Pool, got {pool!r} ({type(pool).__name__})"
            raise TypeError(msg)
        self.pool: Pool = Pool() if pool is None else pool
        self._runner: Runner | None = None
        self._slots: asyncio.Semaphore | None = None

    def stats(self) -> WorkerStats:
        """A snapshot of the counts."""
        return WorkerStats(**self._counts)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run tasks from the broker until ``stop`` is set; then let the started ones finish."""
        if self.url is None:
            msg = f"Worker.run needs a broker: pass url= or set {URL_VARIABLE}"
            raise ValueError(msg)
        broker = redis_broker(self.url, self.queue, self.redeliver_after, fetch=self.concurrency)
        broker.is_worker_process = True
        self._attach(broker)
        receiver = _Receiver(
            broker,
            self,
            max_async_tasks=self.concurrency,
            max_prefetch=0,
            validate_params=False,
            run_startup=False,
        )
        await broker.startup()
        try:
            self.ready.set()
            logger.info(
                "go_async worker ready: queue %r, %d tasks, concurrency %d",
                self.queue,
                len(self.registry),
                self.concurrency,
            )
            await receiver.listen(stop if stop is not None else asyncio.Event())
        finally:
            await broker.shutdown()
            self._close()
            self.ready.clear()
        logger.info("go_async worker stopped: %s", self.stats())

    def _attach(self, broker: AsyncBroker) -> None:
        """Register the registry's tasks on ``broker``, run by this worker (with its limit)."""
        self._slots = asyncio.Semaphore(self.concurrency)
        settings = self.pool._settings
        self._runner = Runner(settings.layers, settings.events, Threads(self.concurrency))
        for named in self.registry:
            broker.register_task(self._handler(named), task_name=named.name)
        if isinstance(broker, InMemoryBroker):
            broker.receiver = _Receiver(
                broker,
                self,
                executor=broker.executor,
                validate_params=False,
                max_async_tasks=self.concurrency,
            )

    def _close(self) -> None:
        """Release the threads that plain ``def`` tasks ran in (every task has ended)."""
        if self._runner is not None:
            self._runner.close()

    def _handler(self, named: Named[..., Any]) -> Any:
        async def handle(*args: object, **kwargs: object) -> dict[str, Any]:
            if args:
                return self._reject(f"task {named.name!r}: arguments must be sent by name, got {args!r}")
            try:
                positional, keywords = named.decode_arguments(kwargs)
            except ValueError as error:
                return self._reject(str(error))
            assert self._runner is not None  # attach() made it
            task = named.as_task(positional, keywords)
            assert self._slots is not None  # attach() made it
            # The broker hands over messages as they come (the in-memory one
            # with no limit of its own): the worker's concurrency holds here.
            async with self._slots:
                self._counts["running"] += 1
                try:
                    # Through the task runner, as a local pool runs a task: the
                    # worker pool's middleware, hooks, retry and timeout apply.
                    value = await self._runner.run(task._spec, Args(task))
                except Exception as error:
                    self._counts["failed"] += 1
                    # INFO: the sender gets the error; rejections, which no sender may see, are ERRORs.
                    logger.info("go_async worker: task %r failed: %r", named.name, error)
                    return {"error": describe_error(error)}
                finally:
                    self._counts["running"] -= 1
            self._counts["succeeded"] += 1
            return {"ok": value}

        handle.__name__ = handle.__qualname__ = f"go_async_{named.name}"
        return handle

    def _reject(self, reason: str) -> dict[str, Any]:
        self._counts["rejected"] += 1
        logger.error("go_async worker: rejected a message: %s", reason)
        return {"rejected": reason}


def describe_error(error: BaseException) -> dict[str, str]:
    """An exception as data: its type's qualified name, message and traceback text."""
    kind = type(error)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(error),
        "traceback": "".join(traceback.format_exception(error)),
    }


class _Receiver(Receiver):
    """taskiq's receiver, refusing what the registry does not name before it runs anything."""

    def __init__(self, broker: AsyncBroker, worker: Worker, **options: Any) -> None:
        super().__init__(broker, **options)
        self._worker = worker

    async def callback(self, message: bytes | AckableMessage, raise_err: bool = False) -> None:
        counts = self._worker._counts
        counts["received"] += 1
        data = message.data if isinstance(message, AckableMessage) else message
        try:
            parsed = self.broker.formatter.loads(message=data)
            parsed.parse_labels()
            self._get_ack_time(parsed)
        except Exception as error:
            self._worker._reject(f"malformed message {data[:_SHOWN_BYTES]!r}: {error}")
            await _acknowledge(message)
            return
        if self._worker.registry.get(parsed.task_name) is None:
            reason = f"unknown task {parsed.task_name!r} (id {parsed.task_id})"
            answer: TaskiqResult[Any] = TaskiqResult(
                is_err=False, return_value=self._worker._reject(reason), execution_time=0.0
            )
            try:
                await self.broker.result_backend.set_result(parsed.task_id, answer)
            finally:
                await _acknowledge(message)
            return
        await super().callback(message, raise_err)


async def _acknowledge(message: bytes | AckableMessage) -> None:
    if isinstance(message, AckableMessage):
        result = message.ack()
        if result is not None:
            await result
