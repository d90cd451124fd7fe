"""What a worker does with one message: check it, run its task, and leave behind what follows.

A message that cannot run is refused (kept in the dead letters, its sender
told). A task that fails with retries left is queued again for later; a
step of a flow queues the next step; a revoked task is dropped, or
cancelled if it runs. Whatever the outcome, the message is acknowledged
only in the batch that saves it.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any, cast

from .._runner import Runner
from .._task import Args
from ._plan import advance
from ._registry import Named, Registry
from ._transport import REVOCATIONS_KEPT, Delivery, Finished, Transport, decode, encode, logger

# Keeps a malformed message's log line short whatever was sent.
_SHOWN_BYTES = 200
# A plain task's message: id, task, args, reply.
_PLAIN_FIELDS = 4
COUNTS = ("received", "running", "succeeded", "failed", "retried", "revoked", "rejected")


class Handling:
    """One worker's handling of its messages, on one transport.

    Example::

        handling = Handling(registry, transport, runner, max_deliveries=5, counts=dict.fromkeys(COUNTS, 0))
        run = handling.start(delivery)  # None if refused; else await it
    """

    __slots__ = (
        "_revoking",
        "_running",
        "counts",
        "max_deliveries",
        "registry",
        "revoked",
        "runner",
        "transport",
    )

    def __init__(
        self,
        registry: Registry,
        transport: Transport,
        runner: Runner,
        max_deliveries: int,
        counts: dict[str, int],
    ) -> None:
        self.registry = registry
        self.transport = transport
        self.runner = runner
        self.max_deliveries = max_deliveries
        self.counts = counts  # the worker's, kept from one serve to the next
        # Revoked task ids, newest last (a dict keeps their order); the task id each run runs.
        self.revoked: dict[str, None] = {}
        self._running: dict[asyncio.Task[Any], str] = {}
        self._revoking: set[asyncio.Task[Any]] = set()

    def revoke(self, task_ids: list[str]) -> None:
        """Drop these tasks when they arrive; cancel those running now."""
        for task_id in task_ids:
            self.revoked[task_id] = None
        if task_ids:  # rare: a look at every run (a few dozen at most) costs nothing per message
            revoked = set(task_ids)
            for running, task_id in self._running.items():
                if task_id in revoked and running not in self._revoking:  # cancelled once only
                    self._revoking.add(running)
                    running.cancel()
        for old in list(self.revoked)[: max(0, len(self.revoked) - REVOCATIONS_KEPT)]:
            del self.revoked[old]

    def start(self, delivery: Delivery) -> Any:
        """The run of ``delivery``'s task, or ``None`` if the message ends here."""
        self.counts["received"] += 1
        try:
            data = decode(delivery.data)
        except ValueError as error:
            shown = delivery.data[:_SHOWN_BYTES]
            self._refuse(delivery, f"malformed message {shown!r}: {error}", None)
            return None
        try:
            message = _message(data)
        except ValueError as error:
            # Its sender, if it names one, hears why.
            self._refuse(delivery, f"malformed message: {error}", _sender(data))
            return None
        task_id, name = message["id"], message["task"]
        if task_id in self.revoked:
            self.counts["revoked"] += 1
            self._reply(delivery, message, {"revoked": True})
            return None
        if delivery.deliveries > self.max_deliveries:
            times = delivery.deliveries - 1
            reason = f"task {name!r} ({task_id}) was handed out {times} times without an answer"
            self._refuse(delivery, reason, message)
            return None
        named = self.registry.get(name)
        if named is None:
            self._refuse(delivery, f"unknown task {name!r} (id {task_id})", message)
            return None
        try:
            arguments: object = message["args"]
            if isinstance(arguments, list):  # a flow's step: by position, the previous result first
                arguments = named.by_name(arguments)  # pyright: ignore[reportUnknownArgumentType]  # JSON
            positional, keywords = named.decode_arguments(arguments)
        except ValueError as error:
            self._refuse(delivery, str(error), message)
            return None
        return self._run(delivery, message, named, positional, keywords)

    async def _run(
        self,
        delivery: Delivery,
        message: dict[str, Any],
        named: Named[..., Any],
        positional: list[Any],
        keywords: dict[str, Any],
    ) -> None:
        task = named.as_task(positional, keywords)
        me = asyncio.current_task()
        assert me is not None
        self._running[me] = message["id"]
        self.counts["running"] += 1
        try:
            # Through the task runner, as a local pool runs a task: the
            # worker pool's middleware, hooks, retry and timeout apply.
            value = await self.runner.run(task._spec, Args(task))
        except asyncio.CancelledError:
            if me not in self._revoking or me.uncancel() > 0:
                raise  # the worker itself is being cancelled
            self.counts["revoked"] += 1
            self._reply(delivery, message, {"revoked": True})
        except Exception as error:
            self._failed(delivery, message, named, error)
        else:
            self.counts["succeeded"] += 1
            await self._succeeded(delivery, message, value)
        finally:
            self.counts["running"] -= 1
            self._revoking.discard(me)
            del self._running[me]

    def _failed(
        self, delivery: Delivery, message: dict[str, Any], named: Named[..., Any], error: Exception
    ) -> None:
        attempt: int = message.get("attempt", 1)
        retry = named.retry
        if retry is not None and attempt < retry.policy.attempts and retry.policy.covers(error):
            # Queued again for later, in the batch that acknowledges this try.
            self.counts["retried"] += 1
            due = self.transport.clock.wall().timestamp() + retry.policy.wait(attempt)
            again = encode(message | {"attempt": attempt + 1})
            logger.info(
                "go_async worker: task %r failed (%r); try %d at %.3f", named.name, error, attempt + 1, due
            )
            self.transport.finish(Finished(delivery.message_id, follow=((again, due),)))
            return
        self.counts["failed"] += 1
        # INFO: the sender gets the error; rejections, which no sender may see, are ERRORs.
        logger.info("go_async worker: task %r failed: %r", named.name, error)
        self._reply(delivery, message, {"error": describe_error(error)})

    async def _succeeded(self, delivery: Delivery, message: dict[str, Any], value: Any) -> None:
        if "frames" not in message:
            self._reply(delivery, message, {"ok": value})
            return
        after = await advance(self.transport, message, value)
        if not after.done:
            self.transport.finish(Finished(delivery.message_id, follow=after.follow, joined=after.joined))
            return
        self._reply(delivery, message, {"ok": after.value}, after.joined)

    def _reply(
        self, delivery: Delivery, message: dict[str, Any], outcome: dict[str, Any], joined: str | None = None
    ) -> None:
        body = {"id": message["id"], **outcome}
        attempts = message.get("attempt", 1)
        if attempts > 1:
            body["attempts"] = attempts
        if "ok" not in outcome:
            body |= _step_of(message)  # which step of a flow ended it
        try:
            reply = encode(body)
        except ValueError as error:  # inf or nan in the result: JSON cannot carry them
            reply = encode({"id": message["id"], "error": describe_error(error)})
        keep = message.get("keep")
        kept = (message["id"], float(keep)) if isinstance(keep, int | float) and keep > 0 else None
        self.transport.finish(
            Finished(delivery.message_id, message["reply"], reply, keep=kept, joined=joined)
        )

    def _refuse(self, delivery: Delivery, reason: str, message: dict[str, Any] | None) -> None:
        # Kept in the dead letters; its sender, if known, gets the reason as its answer.
        self.counts["rejected"] += 1
        logger.error("go_async worker: rejected a message: %s", reason)
        if message is None:
            self.transport.bury(delivery, reason)
            return
        body = {"id": message["id"], "rejected": reason}
        body |= _step_of(message)
        self.transport.bury(delivery, reason, message["reply"], encode(body))


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
    fields = (("id", str), ("task", str), ("args", (dict, list)), ("reply", (str, type(None))))
    for field, kinds in fields:
        if not isinstance(message.get(field), kinds):
            msg = f"its {field!r} is missing or of the wrong type"
            raise ValueError(msg)  # noqa: TRY004 - bad data in a message, not a caller's wrong type
    if len(message) > _PLAIN_FIELDS and (  # a plain task's message has nothing more to check
        not isinstance(message.get("attempt", 1), int) or not isinstance(message.get("frames", []), list)
    ):
        msg = "its 'attempt' or 'frames' is of the wrong type"
        raise ValueError(msg)
    return message


def _step_of(message: dict[str, Any]) -> dict[str, Any]:
    """Where a message stands in its flow (its place and step), for a reply; nothing if not in one."""
    if "at" not in message:
        return {}
    return {"at": message["at"], "step": message.get("step", message.get("task"))}


def _sender(data: object) -> dict[str, Any] | None:
    """A message that names its id and reply key, though it is wrong otherwise."""
    if isinstance(data, dict):
        fields = cast("dict[str, Any]", data)
        if isinstance(fields.get("id"), str) and isinstance(fields.get("reply"), str):
            return {"id": fields["id"], "reply": fields["reply"]}
    return None
