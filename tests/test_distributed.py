"""Named tasks through the in-memory transport: the same JSON messages as on Redis, in one process."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from go_async import Args, CallNext, FlowError, Hooks, ManualClock, Pool, WaitLog, call, group, prepend, step
from go_async.distributed import (
    MessageRejected,
    Named,
    Registry,
    Remote,
    RemoteError,
    RemoteHandle,
    Worker,
    WorkerStats,
)
from go_async.distributed._connection import Connection
from go_async.distributed._memory import MemoryTransport
from looping import in_loop, settle
from remote_tasks import Point, add, fail, multiply, registry, scale, thread

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _no_broker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GO_ASYNC_BROKER_URL", raising=False)


# Registration


def test_registry_names_tasks_and_keeps_the_function() -> None:
    assert add.name == "add"
    assert isinstance(add, Named)
    assert registry.get("add") is add
    assert registry.get("nope") is None
    assert add in registry
    assert len(registry) == len(list(registry))
    assert repr(add) == "<Named 'add'>"


def test_registration_refuses_what_cannot_travel_as_typed_json() -> None:
    local = Registry()

    async def untyped(a, b: int) -> int:  # type: ignore[no-untyped-def]
        return b

    async def no_result(a: int):  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(TypeError, match=r"Registry.task\('u'\): parameter 'a' needs a type annotation"):
        local.task("u", untyped)
    with pytest.raises(TypeError, match=r"Registry.task\('r'\): the function needs a return annotation"):
        local.task("r", no_result)
    with pytest.raises(TypeError, match=r"Registry.task: fn must be a function, got 3 \(int\)"):
        local.task("n", 3)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"Registry.task: name must not be empty"):
        local.task("")
    local.task("x", add.fn)
    with pytest.raises(ValueError, match=r"Registry.task: the name 'x' is already registered"):
        local.task("x", add.fn)
    with pytest.raises(TypeError, match=r"Remote: registry must be a Registry, got 3 \(int\)"):
        Remote(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Worker: registry must be a Registry, got None"):
        Worker(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"limit": 0}, ValueError, r"Remote: limit must be an int >= 1, got 0"),
        ({"queue": ""}, ValueError, r"Remote: queue must not be empty"),
        ({"redeliver_after": -1}, ValueError, r"Remote: redeliver_after must be finite and > 0 seconds"),
        ({"concurrency": 1.5}, TypeError, r"Worker: concurrency must be an int >= 1, got 1.5 \(float\)"),
    ],
)
def test_bad_options_name_the_parameter(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Remote(registry, **options)


# One task at a time


@in_loop
async def test_send_returns_a_handle_with_the_typed_result() -> None:
    async with Remote(registry) as remote:
        handle = await remote.send(add, 1, 2, 3)
        assert isinstance(handle, RemoteHandle)
        assert handle.name == "add"
        assert len(handle.task_id) == 32
        assert repr(handle) == f"<RemoteHandle 'add' {handle.task_id}>"
        assert await handle == 6
        moved = await (await remote.send(scale, Point(1, -2)))
        assert moved == Point(2.0, -4.0)
        assert isinstance(moved, Point)
        assert await (await remote.send(scale, Point(1, 1), factor=0.5)).result(timeout=10) == Point(0.5, 0.5)
        assert await (await remote.send(thread, "t")) == "t in a thread"
    assert remote.worker is not None
    assert remote.worker.stats() == WorkerStats(received=4, succeeded=4)


def test_arguments_left_to_their_defaults_leave_the_others_in_place() -> None:
    local = Registry()

    @local.task("span")
    async def span(start: int = 0, stop: int = 3, *, step: int = 1) -> list[int]:
        return list(range(start, stop, step))

    remote = Remote(local)
    calls = [remote.call(span, stop=2), remote.call(span, 1), remote.call(span, step=2), remote.call(span)]
    assert remote.go(calls) == [[0, 1], [1, 2], [0, 2], [0, 1, 2]]


def _shape(a: int, b: str = "b", *rest: float, flag: bool = False, **extra: int) -> tuple[object, ...]:
    return (a, b, rest, flag, extra)


SHAPE = Registry().task("shape", _shape)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(),
    st.one_of(st.none(), st.text()),
    st.lists(st.floats(allow_nan=False, allow_infinity=False)),
    st.one_of(st.none(), st.booleans()),
    st.dictionaries(st.text(min_size=1).filter(lambda k: k not in {"a", "b", "rest", "flag"}), st.integers()),
)
def test_any_call_arrives_as_it_was_made(
    a: int, b: str | None, rest: list[float], flag: bool | None, extra: dict[str, int]
) -> None:
    """Encoded, through JSON text, decoded: the function sees the same arguments."""
    args: tuple[Any, ...] = (a,) if b is None else (a, b, *rest)
    kwargs: dict[str, Any] = {**extra, **({} if flag is None else {"flag": flag})}
    wire = json.loads(json.dumps(SHAPE.encode_arguments(args, kwargs)))
    positional, keywords = SHAPE.decode_arguments(wire)
    assert _shape(*positional, **keywords) == _shape(*args, **kwargs)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_inf_and_nan_are_refused_at_the_call_that_would_send_them(value: float) -> None:
    """JSON has no inf or nan: they are refused at the call instead of arriving as null."""
    with pytest.raises(TypeError, match=r"shape: argument 'rest' holds inf or nan, which JSON cannot carry"):
        SHAPE.encode_arguments((1, "b", 2.0, value), {})
    with pytest.raises(TypeError, match=r"argument 'a' holds inf or nan"):
        Registry().task("half", _half).encode_arguments((value,), {})


def _half(a: float | None) -> float:
    return (a or 0.0) / 2


@in_loop
async def test_a_failure_on_the_worker_arrives_as_data() -> None:
    async with Remote(registry) as remote:
        handle = await remote.send(fail, "no stock")
        with pytest.raises(RemoteError) as caught:
            await handle
    error = caught.value
    assert (error.task, error.task_id, error.kind, error.message) == (
        "fail",
        handle.task_id,
        "builtins.ValueError",
        "no stock",
    )
    assert "raise ValueError(message)" in error.remote_traceback
    assert str(error) == f"task 'fail' ({handle.task_id}) failed on a worker: builtins.ValueError: no stock"
    assert remote.worker is not None
    assert remote.worker.stats().failed == 1


@in_loop
async def test_wrong_arguments_are_refused_at_the_call_that_made_them() -> None:
    other = Registry()
    stranger = other.task("add", add.fn)
    async with Remote(registry) as remote:
        with pytest.raises(TypeError, match=r"multiply: argument 'b' cannot be sent as int: got 'x'"):
            await remote.send(multiply, 2, "x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"multiply: missing a required argument: 'b'"):
            await remote.send(multiply, 2)  # type: ignore[call-arg]
        with pytest.raises(
            ValueError, match=r"Remote: <Named 'add'> is not a task of this remote's registry"
        ):
            await remote.send(stranger, 1)
        with pytest.raises(TypeError, match=r"Remote.stub: <function .*> is not a task of this remote"):
            remote.stub(add.fn)  # type: ignore[arg-type]
        with pytest.raises(
            TypeError, match=r"Remote: expected a Call from remote.call\(...\), got 3 \(int\)"
        ):
            await remote.ago([3])  # type: ignore[arg-type]
        assert await remote.amap(add, [4]) == [4]  # nothing sent before still runs
    assert remote.worker is not None
    assert remote.worker.stats().received == 1


@in_loop
async def test_send_needs_a_held_connection_and_blocking_calls_refuse_a_running_loop() -> None:
    remote = Remote(registry)
    with pytest.raises(RuntimeError, match=r"Remote.send needs a connection: call it inside `async with"):
        await remote.send(add, 1)
    with pytest.raises(RuntimeError, match=r"Remote.map blocks.*use `await remote.amap\(...\)`"):
        remote.map(add, [1])
    with pytest.raises(RuntimeError, match=r"Remote.go blocks.*use `await remote.ago\(...\)`"):
        remote.go([])


@in_loop
async def test_a_result_waits_for_its_timeout_only() -> None:
    gate = asyncio.Event()
    local = Registry()

    @local.task("wait")
    async def wait(value: int) -> int:
        await gate.wait()
        return value

    async with Remote(local) as remote:
        handle = await remote.send(wait, 7)
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.001)
        gate.set()
        assert await handle == 7


# Many at a time


def test_map_and_go_block_in_scripts_and_keep_input_order() -> None:
    remote = Remote(registry)
    assert remote.map(add, range(5)) == [0, 1, 2, 3, 4]
    assert remote.go([remote.call(multiply, 3, 4), remote.call(add, 1, 1, 1)]) == [12, 3]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-1000, 1000), max_size=40), st.integers(1, 8))
def test_every_value_comes_back_once_in_order_and_every_failure_is_raised(
    values: list[int], limit: int
) -> None:
    remote = Remote(registry, limit=limit)
    calls = [remote.call(fail, str(v)) if v % 7 == 0 else remote.call(multiply, v, 2) for v in values]
    failing = [str(v) for v in values if v % 7 == 0]
    if not failing:
        assert remote.go(calls) == [v * 2 for v in values]
        return
    with pytest.raises(ExceptionGroup) as caught:
        remote.go(calls)
    errors = caught.value.exceptions
    assert all(isinstance(error, RemoteError) for error in errors)
    assert [error.message for error in errors if isinstance(error, RemoteError)] == failing
    assert remote.worker is not None
    assert remote.worker.stats().received == len(values)


@in_loop
async def test_at_most_limit_in_flight_and_at_most_concurrency_running() -> None:
    started: list[int] = []
    release = asyncio.Event()
    local = Registry()

    @local.task("gate")
    async def gate(value: int) -> int:
        started.append(value)
        await release.wait()
        return value

    remote = Remote(local, limit=3, concurrency=2)
    async with remote:
        run = asyncio.create_task(remote.amap(gate, range(6)))
        await settle()
        assert remote.worker is not None
        assert started == [0, 1]  # two run; the third waits in the queue, not on the worker
        assert remote.worker.stats() == WorkerStats(received=2, running=2)
        release.set()
        assert await run == [0, 1, 2, 3, 4, 5]
    assert remote.worker.stats() == WorkerStats(received=6, succeeded=6)


@in_loop
async def test_leaving_the_block_waits_for_the_embedded_workers_tasks() -> None:
    done: list[int] = []
    local = Registry()

    @local.task("slow")
    async def slow(value: int) -> None:
        await asyncio.sleep(0)
        done.append(value)

    async with Remote(local) as remote:
        await remote.send(slow, 1)
        await remote.send(slow, 2)
    assert done == [1, 2]


def test_one_connection_serves_a_whole_map_and_side_by_side_stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[object] = []
    start = Connection.start

    async def counted(connection: Connection) -> Any:
        starts.append(connection)
        return await start(connection)

    monkeypatch.setattr(Connection, "start", counted)
    remote = Remote(registry, limit=1)
    assert remote.map(add, range(4)) == [0, 1, 2, 3]
    assert len(starts) == 1
    fan_out = group(step(remote.stub(add)), step(remote.stub(add)), step(remote.stub(add)))
    assert fan_out.run(5) == [5, 5, 5]
    assert len(starts) == 2  # one more for the flow's run, shared by its three steps


def test_an_unreachable_server_is_an_error_at_the_call() -> None:
    remote = Remote(registry, url="redis://127.0.0.1:1/0")
    with pytest.raises(RedisConnectionError, match=r"Error 111 connecting to 127\.0\.0\.1:1"):
        remote.map(add, [1])
    assert remote._transport is None


# Workflows across workers


def test_machinery_chain_runs_each_step_on_a_worker() -> None:
    remote = Remote(registry)
    flow = (
        call(remote.stub(add), 1, 1)
        .then(prepend(remote.stub(add), 5, 6))
        .then(prepend(remote.stub(multiply), 4))
    )
    assert flow.run(None) == 52
    assert remote.worker is not None
    assert remote.worker.stats().succeeded == 3


@in_loop
async def test_callbacks_run_on_workers_and_a_failure_names_its_step() -> None:
    local = Registry()
    seen: list[str] = []

    @local.task("double")
    async def double(value: int) -> int:
        return value * 2

    @local.task("refuse")
    async def refuse(value: int) -> int:
        raise LookupError(f"no {value}")

    @local.task("record")
    async def record(note: str) -> None:
        seen.append(note)

    async with Remote(local) as remote:

        async def on_error(error: FlowError) -> None:
            await remote.stub(record)(f"{error.position} {error.step}: {error.__cause__}")

        ok = step(remote.stub(double)).on_success(step(lambda v: remote.stub(record)(f"got {v}")))
        assert await ok.arun(4) == 8
        broken = step(remote.stub(double)).then(step(remote.stub(refuse))).on_error(step(on_error))
        with pytest.raises(FlowError) as caught:
            await broken.arun(5)
    assert isinstance(caught.value.__cause__, RemoteError)
    assert caught.value.__cause__.kind == "builtins.LookupError"
    assert seen == [
        "got 8",
        f"2 refuse: task 'refuse' ({caught.value.__cause__.task_id}) failed on a worker: "
        "builtins.LookupError: no 10",
    ]


# Messages the worker refuses

RAN: list[str] = []


class _Exploit:
    """A pickle of this calls ``mark`` when loaded: what a pickle-based worker would run."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (RAN.append, ("pickle ran",))


@in_loop
async def test_malformed_and_pickled_messages_are_rejected_logged_counted_and_never_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="go_async.distributed")
    remote = Remote(registry)
    async with remote:
        transport = remote._transport
        assert transport is not None
        for payload in (b"not json", pickle.dumps(_Exploit()), b'{"task_id": 1}'):
            await transport.send(payload)
        await settle()
        assert await (await remote.send(add, 2, 2)) == 4  # the worker goes on
    assert RAN == []
    assert remote.worker is not None
    assert remote.worker.stats() == WorkerStats(received=4, succeeded=1, rejected=3)
    rejections = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(rejections) == 3
    assert rejections[0].startswith("go_async worker: rejected a message: malformed message b'not json'")


@in_loop
async def test_arguments_that_do_not_fit_are_rejected_and_the_sender_told() -> None:
    remote = Remote(registry)
    async with remote:
        cases: list[tuple[object, str]] = [
            ({"a": 1, "b": "two"}, "multiply: argument 'b' is not valid"),
            ({"a": 1}, "multiply: missing a required argument: 'b'"),
            ({"a": 1, "b": 2, "c": 3}, "multiply: unknown arguments ['c']"),
            ("1, 2", "malformed message: its 'args' is missing or of the wrong type"),
        ]
        for arguments, reason in cases:
            with pytest.raises(MessageRejected) as caught:
                await (await raw_send(remote, {"task": "multiply", "args": arguments}))
            assert caught.value.kind == "rejected"
            assert caught.value.message.startswith(reason)
    assert remote.worker is not None
    assert remote.worker.stats().rejected == 4


async def raw_send(remote: Remote, fields: dict[str, object]) -> RemoteHandle[int]:
    """A message of ``fields`` sent as it is, with an id and this client's reply key; its handle."""
    transport = remote._transport
    assert transport is not None
    task_id = uuid.uuid4().hex
    reply = remote._connection.expect(task_id)
    await transport.send(json.dumps({**fields, "id": task_id, "reply": transport.reply_key}).encode())
    return RemoteHandle(multiply.name, task_id, reply, 5.0, multiply.decode_result)


def test_a_value_the_result_type_cannot_hold_is_a_failure_not_a_wrong_answer() -> None:
    local = Registry()

    @local.task("liar")
    async def liar(value: int) -> int:
        return "not an int"  # type: ignore[return-value]

    with pytest.raises(ExceptionGroup) as caught:
        Remote(local).map(liar, [1])
    [error] = caught.value.exceptions
    assert isinstance(error, RemoteError)
    assert error.kind.startswith("pydantic")


# The extra and the command line


def _python(*args: str, cwd: Path = TESTS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False, cwd=cwd)


def test_the_core_never_imports_redis_and_a_missing_extra_is_named() -> None:
    core = _python("-c", "import sys, go_async; assert 'redis' not in sys.modules, 'imported'")
    assert core.returncode == 0, core.stderr
    missing = _python("-c", "import sys; sys.modules['redis'] = None; import go_async.distributed")
    assert missing.returncode == 1
    expected = (
        "ImportError: go_async.distributed needs Redis's client and pydantic: pip install 'go-async[redis]'"
    )
    assert expected in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["remote_tasks"], "target must be module:attribute, got 'remote_tasks'"),
        (
            ["remote_tasks:add", "--url", "redis://x"],
            "remote_tasks:add must be a go_async.distributed.Registry",
        ),
        (["remote_tasks:registry"], "a broker is needed: pass --url or set GO_ASYNC_BROKER_URL"),
        (["remote_tasks:registry", "--log-level", "LOUD"], "--log-level must be a logging level such as"),
        (
            ["remote_tasks:registry", "--url", "redis://x", "--concurrency", "0"],
            "concurrency must be an int >= 1",
        ),
    ],
)
def test_the_worker_command_explains_bad_arguments(args: list[str], message: str) -> None:
    result = _python("-m", "go_async.worker", *args)
    assert result.returncode == 2
    assert message in result.stderr


# The embedded worker's pool

R = TypeVar("R")


@in_loop
async def test_the_embedded_worker_runs_tasks_through_its_pools_middleware_hooks_and_retry(
    waits: WaitLog,
) -> None:
    """Remote(pool=...): each task on the worker passes the pool's middleware and hooks, and is retried."""
    local = Registry()
    tries: list[int] = []
    wrapped: list[str | None] = []
    succeeded: list[str | None] = []

    @local.task("double")
    async def double(value: int) -> int:
        return value * 2

    @local.task("flaky")
    async def flaky(value: int) -> int:
        tries.append(value)
        if len(tries) < 3:
            raise ConnectionError(f"try {len(tries)}")
        return value

    async def names(args: Args[Any], call_next: CallNext[R]) -> R:
        wrapped.append(args.name)
        return await call_next()

    class Successes(Hooks):
        def task_succeeded(self, args: Args[Any], seconds: float) -> None:
            succeeded.append(args.name)

    pool = Pool(middleware=[names], hooks=[Successes()]).with_retry(3, 0)
    async with Remote(local, pool=pool) as remote:
        assert await remote.amap(double, [1, 2]) == [2, 4]
        assert await (await remote.send(flaky, 7)) == 7
    assert tries == [7, 7, 7]
    assert waits.waits == [0.0, 0.0]
    assert sorted(map(str, wrapped)) == ["double", "double", "flaky"]
    assert sorted(map(str, succeeded)) == ["double", "double", "flaky"]
    assert remote.worker is not None
    assert remote.worker.stats() == WorkerStats(received=3, succeeded=3)


@in_loop
async def test_a_killed_workers_task_runs_again_after_redeliver_after_on_a_manual_clock() -> None:
    """In memory, no waiting: a worker killed mid-task leaves it pending; the next takes it at 30 s."""
    clock = ManualClock()
    transport = MemoryTransport(redeliver_after=30.0, clock=clock)
    answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    await transport.open_client(answered.set_result)
    runs: list[int] = []
    started, finish = asyncio.Event(), asyncio.Event()
    local = Registry()

    @local.task("slow")
    async def slow(value: int) -> int:
        runs.append(value)
        started.set()
        await finish.wait()
        return value * 10

    killed = asyncio.create_task(Worker(local, redeliver_after=30.0).serve(transport, asyncio.Event()))
    message = {"id": "a", "task": "slow", "args": {"value": 4}, "reply": transport.reply_key}
    await transport.send(json.dumps(message).encode())
    await started.wait()
    killed.cancel()  # killed: its task is cancelled, nothing is acknowledged
    with pytest.raises(asyncio.CancelledError):
        await killed
    survivor = Worker(local, redeliver_after=30.0)
    stop = asyncio.Event()
    serving = asyncio.create_task(survivor.serve(transport, stop))
    await survivor.ready.wait()
    finish.set()
    await clock.advance(29)
    assert (runs, answered.done()) == ([4], False)  # not idle long enough yet
    await clock.advance(1)
    assert json.loads(await asyncio.wait_for(answered, 5)) == {"id": "a", "ok": 40}
    assert runs == [4, 4]
    assert survivor.stats() == WorkerStats(received=1, succeeded=1)
    stop.set()
    await serving
