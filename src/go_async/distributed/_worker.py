"""The worker: runs a registry's named tasks from a transport, with a limit, and refuses the rest."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from .._checks import label, positive_int, positive_seconds
from .._pool import Pool
from .._runner import Runner
from .._threads import Threads
from ._handling import COUNTS, Handling
from ._redis import RedisTransport
from ._registry import Registry
from ._transport import DEFAULT_MAX_DELIVERIES, DEFAULT_QUEUE, Delivery, Transport, logger, outlast

URL_VARIABLE = "GO_ASYNC_BROKER_URL"


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerStats:
    """What a worker has done so far: messages received, tasks running and ended, messages refused.

    ``retried`` counts the tries queued again after a failure (each one
    counted, the final failure in ``failed``); ``revoked`` the tasks dropped
    or cancelled because they were revoked.

    Example::

        stats = worker.stats()
        log.info("%d done, %d failed, %d rejected", stats.succeeded, stats.failed, stats.rejected)
    """

    received: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    revoked: int = 0
    rejected: int = 0


class Worker:
    """Runs the named tasks of ``registry`` that arrive on a queue, at most ``concurrency`` at once.

    With a Redis ``url`` (or ``GO_ASYNC_BROKER_URL``), ``run()`` takes
    messages from the queue until ``stop`` is set, then finishes the tasks
    it has started and returns. It reads only as many messages as it has
    free slots, so it never holds one it cannot start. A message is
    acknowledged only after its result is saved, so the tasks of a worker
    that dies are run by another one once they have been idle
    ``redeliver_after`` seconds: delivery is at least once, and a task may
    run twice. A message handed out ``max_deliveries`` times goes to the
    dead letters instead. A message that is not JSON, names a task not in
    the registry or carries arguments that do not fit is rejected: logged
    at ERROR, counted in ``stats().rejected``, kept in the dead letters,
    answered with an error when it has an id, and never run. While Redis
    cannot be reached, the worker waits for it, backing off, and goes on.
    It also queues delayed messages once due (a retry's next try is one),
    and hears of revocations: a revoked task is dropped when it arrives,
    or cancelled while it runs.

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
        "_handling",
        "concurrency",
        "max_deliveries",
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
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
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
        self.max_deliveries: int = positive_int("Worker", "max_deliveries", max_deliveries)
        self.ready: asyncio.Event = asyncio.Event()
        self._counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        if pool is not None and not isinstance(pool, Pool):
            msg = f"Worker: pool must be a Pool, got {pool!r} ({type(pool).__name__})"
            raise TypeError(msg)
        self.pool: Pool = Pool() if pool is None else pool
        self._handling: Handling | None = None

    def stats(self) -> WorkerStats:
        """A snapshot of the counts."""
        return WorkerStats(**self._counts)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run tasks from Redis until ``stop`` is set; then let the started ones finish."""
        if self.url is None:
            msg = f"Worker.run needs a broker: pass url= or set {URL_VARIABLE}"
            raise ValueError(msg)
        transport = RedisTransport(self.url, self.queue, redeliver_after=self.redeliver_after)
        try:
            await self.serve(transport, stop if stop is not None else asyncio.Event())
        finally:
            await transport.close()
        logger.info("go_async worker stopped: %s", self.stats())

    async def serve(self, transport: Transport, stop: asyncio.Event) -> None:
        """Take messages from ``transport`` until ``stop`` is set, then finish the started tasks."""
        consumer = f"{self.queue}-{uuid.uuid4().hex[:12]}"
        await transport.open_worker()
        settings = self.pool._settings
        runner = Runner(settings.layers, settings.events, Threads(self.concurrency))
        handling = Handling(self.registry, transport, runner, self.max_deliveries, self._counts)
        self._handling = handling
        # The revocations so far, before any message is read: a revoked one never starts.
        revoked, cursor = await outlast(
            "reading revocations", partial(transport.revocations, 0), transport.away
        )
        handling.revoke(revoked)
        running: dict[str, asyncio.Task[None]] = {}
        room = asyncio.Event()  # set when a slot frees up, or when it is time to stop
        # Short reads, so that a stop is heard soon; a send wakes a read at once anyway.
        wait = min(0.5, self.redeliver_after / 3)
        try:
            async with asyncio.TaskGroup() as group:

                def begin(delivery: Delivery) -> None:
                    started = handling.start(delivery)
                    if started is not None:
                        task = group.create_task(started, name=f"go_async worker {delivery.message_id}")
                        running[delivery.message_id] = task
                        task.add_done_callback(partial(_ended, running, delivery.message_id, room))

                watchers = [
                    group.create_task(_set_when(stop, room, transport)),
                    group.create_task(self._keep_up(transport, consumer, running, begin)),
                    group.create_task(_watch(transport, handling, cursor)),
                ]
                self.ready.set()
                logger.info(
                    "go_async worker ready: queue %r, %d tasks, concurrency %d",
                    self.queue,
                    len(self.registry),
                    self.concurrency,
                )
                while not stop.is_set():
                    free = self.concurrency - len(running)
                    if free <= 0:
                        room.clear()
                        # A slot freed, or a stop, since `free` was counted sets `room` again.
                        if not stop.is_set() and len(running) >= self.concurrency:
                            await room.wait()
                            # Tasks that end together free their slots in one read.
                            await asyncio.sleep(0)
                        continue
                    if transport.lost_replies:
                        # A read whose answer the connection lost still gave this
                        # consumer its messages: take up those it neither runs nor has
                        # finished (a rare moment when it may run more than its limit).
                        recover = partial(transport.recover, consumer, set(running))
                        deliveries = await outlast("recovering tasks", recover, transport.away)
                    else:
                        take = partial(transport.take, consumer, free, wait)
                        deliveries = await outlast("reading tasks", take, transport.away)
                    if stop.is_set():  # told to stop while it read: those go to another worker
                        await transport.give_back(deliveries)
                        break
                    for delivery in deliveries:
                        begin(delivery)
                for watcher in watchers:
                    watcher.cancel()
            await transport.settle()  # every result saved before the worker says it stopped
        finally:
            self.ready.clear()
            self._close()

    async def _keep_up(
        self, transport: Transport, consumer: str, running: dict[str, Any], begin: Any
    ) -> None:
        # Every third of `redeliver_after`: tell the group the running messages
        # are still being worked on, and take over those a dead worker left.
        beat, clock = self.redeliver_after / 3, transport.clock
        while True:
            await clock.sleep_until(clock.time() + beat)
            try:
                await transport.touch(consumer, list(running))
                free = self.concurrency - len(running)
                if free > 0:
                    for delivery in await transport.reclaim(consumer, free):
                        logger.warning(
                            "go_async worker: redelivering abandoned message %s", delivery.message_id
                        )
                        begin(delivery)
            except transport.away as error:
                logger.warning("go_async worker: could not reach the server for its heartbeat: %r", error)
            except Exception:  # e.g. a group lost with a server restarted empty: the reads remake it
                logger.exception("go_async worker: its heartbeat failed; the next one tries again")

    def _close(self) -> None:
        """Release the threads that plain ``def`` tasks ran in (every task has ended)."""
        if self._handling is not None:
            self._handling.runner.close()


def _ended(running: dict[str, Any], message_id: str, room: asyncio.Event, _: object) -> None:
    del running[message_id]
    room.set()


async def _set_when(stop: asyncio.Event, room: asyncio.Event, transport: Transport) -> None:
    await stop.wait()
    room.set()
    transport.wake()


async def _watch(transport: Transport, handling: Handling, cursor: int) -> None:
    # Queue delayed messages (retries' next tries too) once due; hear of revocations.
    clock = transport.clock
    while True:
        try:
            revoked, cursor = await transport.revocations(cursor)
            handling.revoke(revoked)
            due = await transport.move_due()
        except transport.away as error:
            logger.warning("go_async worker: could not reach the server to look for due tasks: %r", error)
            due = None
        except Exception:
            logger.exception("go_async worker: looking for due tasks and revocations failed; trying again")
            due = None
        until = None if due is None else clock.time() + max(0.0, due - clock.wall().timestamp())
        await transport.idle(until)
