"""The worker: runs a registry's named tasks from a transport, with a limit, and refuses the rest."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import traceback
import uuid
from datetime import timedelta
from functools import partial
from typing import Any, cast

from .._checks import label, positive_int, positive_seconds
from .._pool import Pool
from .._runner import Runner
from .._task import Args
from .._threads import Threads
from ._redis import RedisTransport
from ._registry import Named, Registry
from ._transport import (
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_QUEUE,
    Delivery,
    Transport,
    decode,
    encode,
    logger,
    outlast,
)

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
        self._counts = dict.fromkeys(("received", "running", "succeeded", "failed", "rejected"), 0)
        if pool is not None and not isinstance(pool, Pool):
            msg = f"Worker: pool must be a Pool, got {pool!r} ({type(pool).__name__})"
            raise TypeError(msg)
        self.pool: Pool = Pool() if pool is None else pool
        self._runner: Runner | None = None

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
        self._runner = Runner(settings.layers, settings.events, Threads(self.concurrency))
        running: dict[str, asyncio.Task[None]] = {}
        room = asyncio.Event()  # set when a slot frees up, or when it is time to stop
        # Short reads, so that a stop is heard soon; a send wakes a read at once anyway.
        wait = min(0.5, self.redeliver_after / 3)
        try:
            async with asyncio.TaskGroup() as group:

                def begin(delivery: Delivery) -> None:
                    started = self._start(transport, delivery)
                    if started is not None:
                        task = group.create_task(started, name=f"go_async worker {delivery.message_id}")
                        running[delivery.message_id] = task
                        task.add_done_callback(partial(_ended, running, delivery.message_id, room))

                watchers = [
                    group.create_task(_set_when(stop, room, transport)),
                    group.create_task(self._keep_up(transport, consumer, running, begin)),
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

    def _start(self, transport: Transport, delivery: Delivery) -> Any:
        """The run of ``delivery``'s task, or ``None`` if the message is refused here."""
        self._counts["received"] += 1
        try:
            data = decode(delivery.data)
        except ValueError as error:
            shown = delivery.data[:_SHOWN_BYTES]
            self._refuse(transport, delivery, f"malformed message {shown!r}: {error}", None)
            return None
        try:
            message = _message(data)
        except ValueError as error:
            # Its sender, if it names one, hears why.
            self._refuse(transport, delivery, f"malformed message: {error}", _sender(data))
            return None
        task_id, name = message["id"], message["task"]
        sender = (task_id, message["reply"])
        if delivery.deliveries > self.max_deliveries:
            times = delivery.deliveries - 1
            reason = f"task {name!r} ({task_id}) was handed out {times} times without an answer"
            self._refuse(transport, delivery, reason, sender)
            return None
        named = self.registry.get(name)
        if named is None:
            self._refuse(transport, delivery, f"unknown task {name!r} (id {task_id})", sender)
            return None
        try:
            positional, keywords = named.decode_arguments(message["args"])
        except ValueError as error:
            self._refuse(transport, delivery, str(error), sender)
            return None
        return self._run_one(transport, delivery, message, named, positional, keywords)

    async def _run_one(
        self,
        transport: Transport,
        delivery: Delivery,
        message: dict[str, Any],
        named: Named[..., Any],
        positional: list[Any],
        keywords: dict[str, Any],
    ) -> None:
        assert self._runner is not None  # serve() made it
        task = named.as_task(positional, keywords)
        self._counts["running"] += 1
        try:
            # Through the task runner, as a local pool runs a task: the
            # worker pool's middleware, hooks, retry and timeout apply.
            value = await self._runner.run(task._spec, Args(task))
        except Exception as error:
            self._counts["failed"] += 1
            # INFO: the sender gets the error; rejections, which no sender may see, are ERRORs.
            logger.info("go_async worker: task %r failed: %r", named.name, error)
            outcome: dict[str, Any] = {"id": message["id"], "error": describe_error(error)}
        else:
            self._counts["succeeded"] += 1
            outcome = {"id": message["id"], "ok": value}
        finally:
            self._counts["running"] -= 1
        try:
            reply = encode(outcome)
        except ValueError as error:  # inf or nan in the result: JSON cannot carry them
            reply = encode({"id": message["id"], "error": describe_error(error)})
        transport.finish(delivery.message_id, message["reply"], reply)

    def _refuse(
        self, transport: Transport, delivery: Delivery, reason: str, sender: tuple[str, str | None] | None
    ) -> None:
        # Kept in the dead letters; its sender, if known, gets the reason as its answer.
        self._counts["rejected"] += 1
        logger.error("go_async worker: rejected a message: %s", reason)
        if sender is None:
            transport.bury(delivery, reason)
        else:
            task_id, reply_key = sender
            transport.bury(delivery, reason, reply_key, encode({"id": task_id, "rejected": reason}))

    def _close(self) -> None:
        """Release the threads that plain ``def`` tasks ran in (every task has ended)."""
        if self._runner is not None:
            self._runner.close()


def describe_error(error: BaseException) -> dict[str, str]:
    """An exception as data: its type's qualified name, message and traceback text."""
    kind = type(error)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(error),
        "traceback": "".join(traceback.format_exception(error)),
    }


def _message(data: object) -> dict[str, Any]:
    """A message's fields, checked: ``ValueError`` names what is missing or wrong."""
    if not isinstance(data, dict):
        msg = "a message must be a JSON object"
        raise ValueError(msg)  # noqa: TRY004 - bad data in a message, not a caller's wrong type
    message = cast("dict[str, Any]", data)
    for field, kinds in (("id", str), ("task", str), ("args", dict), ("reply", (str, type(None)))):
        if not isinstance(message.get(field), kinds):
            msg = f"its {field!r} is missing or of the wrong type"
            raise ValueError(msg)  # noqa: TRY004 - bad data in a message, not a caller's wrong type
    return message


def _ended(running: dict[str, Any], message_id: str, room: asyncio.Event, _: object) -> None:
    del running[message_id]
    room.set()


def _sender(data: object) -> tuple[str, str | None] | None:
    """The id and reply key of a message that names them, though it is wrong otherwise."""
    if isinstance(data, dict):
        fields = cast("dict[str, Any]", data)
        task_id, reply_key = fields.get("id"), fields.get("reply")
        if isinstance(task_id, str) and isinstance(reply_key, str):
            return task_id, reply_key
    return None


async def _set_when(stop: asyncio.Event, room: asyncio.Event, transport: Transport) -> None:
    await stop.wait()
    room.set()
    transport.wake()
