"""Flows run on workers: a ``Flow`` of stubs as data, carried from step to step in its messages.

A flow becomes a plan, a list of stages: a step (``{"task", "fixed",
"input", "at", "step"}``), a group (``{"group": [plan, ...]}``) or a side
plan whose result is dropped (an ``on_success`` callback: ``{"side":
plan}``). A message of a flow carries ``frames``, a stack of what remains
at each level: the stages left (``rest``), and either the group member it
belongs to (``join``) or the value a callback passes on (``restore``).
When a step succeeds, its worker queues the next step with the same
frames, in the same batch that acknowledges the step, so a flow goes on
with no client connected; the last step's result is the flow's reply.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable
from typing import Any, cast

from pydantic_core import to_jsonable_python

from .._flow import Flow, Step, _Group
from .._spec import NO_LAYERS
from .._step_fn import StepFn
from ._registry import Named
from ._transport import Follow, Transport, decode, encode, outlast

# Each stub that `Remote.stub` made, and the named task it sends.
STUBS: weakref.WeakKeyDictionary[Callable[..., Any], Named[..., Any]] = weakref.WeakKeyDictionary()

# A decoder of a flow's final value from its JSON data.
Decoder = Callable[[object], Any]


def compile_flow(flow: Flow[Any, Any], where: str = "") -> tuple[list[dict[str, Any]], Decoder]:
    """``flow`` as a plan, and the decoder of its result; ``TypeError`` for what cannot run on workers."""
    if not isinstance(flow, Flow):
        msg = f"Remote.start: flow must be a Flow, got {flow!r} ({type(flow).__name__})"
        raise TypeError(msg)
    if flow._on_error:
        msg = (
            "Remote.start: on_error callbacks take a FlowError, which cannot travel as JSON; "
            "catch the FlowError where you await the flow instead"
        )
        raise TypeError(msg)
    plan: list[dict[str, Any]] = []
    decoder: Decoder = _identity
    for place, stage in enumerate(flow._stages, 1):
        at = f"{where}{place}"
        if isinstance(stage, Step):
            step, decoder = _step(stage, at)
            plan.append(step)
        elif isinstance(stage, _Group):
            members = [
                compile_flow(member, f"{at}.{index}.") for index, member in enumerate(stage.members, 1)
            ]
            plan.append({"group": [member for member, _ in members], "at": at})
            decoder = _list_of([each for _, each in members])
        else:
            nested, decoder = compile_flow(stage, f"{at}.")
            plan.extend(nested)
    for number, callback in enumerate(flow._on_success, 1):
        side, _ = compile_flow(callback, f"{where}on_success{'' if number == 1 else number}.")
        plan.append({"side": side})
    return plan, decoder


def _step(step: Step[Any, Any], at: str) -> tuple[dict[str, Any], Decoder]:
    spec = step._task._spec
    fn = spec.fn
    named = STUBS.get(fn.fn) if isinstance(fn, StepFn) else None
    if named is None or not isinstance(fn, StepFn):
        msg = f"Remote.start: step {at} ({spec.title}) must call a stub from remote.stub(task)"
        raise TypeError(msg)
    if spec.layers != NO_LAYERS:
        msg = (
            f"Remote.start: step {at} ({spec.title}) has a retry or timeout of its own; on workers, "
            "give its task a retry (registry.task(..., retry=Retry(...))) and the worker's pool a timeout"
        )
        raise TypeError(msg)
    fixed = [to_json(value, f"step {at} ({spec.title})") for value in fn.fixed]
    stage = {"task": named.name, "fixed": fixed, "input": fn.takes_input, "at": at, "step": spec.title}
    return stage, named.decode_result


def to_json(value: object, what: str) -> Any:
    """``value`` as JSON data (pydantic's JSON mode); ``TypeError`` naming ``what`` if it cannot be."""
    try:
        data = to_jsonable_python(value)
        encode(data)
    except ValueError as error:
        msg = f"Remote.start: an argument of {what} cannot travel as JSON: {value!r} ({error})"
        raise TypeError(msg) from None
    return data


def begin(plan: list[dict[str, Any]], value: object, base: dict[str, Any]) -> list[bytes]:
    """The first messages of a flow: its first stage, on ``value``."""
    return _start(plan[0], value, [{"rest": plan[1:]}], base)


def _start(
    stage: dict[str, Any], value: object, frames: list[dict[str, Any]], base: dict[str, Any]
) -> list[bytes]:
    if "task" in stage:
        args = ([value] if stage["input"] else []) + stage["fixed"]
        message = base | {"task": stage["task"], "args": args, "frames": frames}
        message |= {"at": stage["at"], "step": stage["step"]}
        message.pop("attempt", None)
        return [encode(message)]
    if "side" in stage:
        side: list[dict[str, Any]] = stage["side"]
        return _start(side[0], value, [*frames, {"rest": side[1:], "restore": value}], base)
    key, members = uuid.uuid4().hex, cast("list[list[dict[str, Any]]]", stage["group"])
    messages: list[bytes] = []
    for index, member in enumerate(members):
        frame = {"rest": member[1:], "join": {"key": key, "index": index, "size": len(members)}}
        messages += _start(member[0], value, [*frames, frame], base)
    return messages


class Advanced:
    """What follows a flow's step: messages to queue, a group to clear, and the flow's result if it ended."""

    __slots__ = ("done", "follow", "joined", "value")

    def __init__(self) -> None:
        self.follow: tuple[Follow, ...] = ()
        self.joined: str | None = None
        self.done = False
        self.value: Any = None


async def advance(transport: Transport, message: dict[str, Any], value: Any) -> Advanced:
    """After a step of a flow gave ``value``: the next steps, or the flow's end."""
    after = Advanced()
    frames: list[dict[str, Any]] = list(message["frames"])
    while frames:
        frame = frames.pop()
        rest: list[dict[str, Any]] = frame["rest"]
        if rest:
            frames.append(frame | {"rest": rest[1:]})
            after.follow = tuple((data, None) for data in _start(rest[0], value, frames, message))
            return after
        if "restore" in frame:  # a callback ended: the flow goes on with what it was given
            value = frame["restore"]
        join = frame.get("join")
        if join is not None:
            done = encode(value)

            async def record(join: dict[str, Any] = join, done: bytes = done) -> list[bytes] | None:
                return await transport.join(join["key"], join["index"], done, join["size"])

            results = await outlast("joining a group", record, transport.away)
            if results is None:
                return after  # the other members are not all done
            value, after.joined = [decode(result) for result in results], join["key"]
    after.done, after.value = True, value
    return after


def _identity(value: object) -> Any:
    return value


def _list_of(decoders: list[Decoder]) -> Decoder:
    def decode_all(value: object) -> list[Any]:
        values = cast("list[object]", value)
        return [each(item) for each, item in zip(decoders, values, strict=True)]

    return decode_all
