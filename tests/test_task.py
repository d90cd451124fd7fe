import asyncio
import contextvars
import threading
from collections.abc import Awaitable
from datetime import timedelta

import pytest

from go_async import Args, Drain, Pool, Task, WaitLog


async def send_input(args: Args[int]) -> None:
    args.drain.send(args.input)


def test_fluent_calls_return_new_tasks_and_leave_the_original_alone() -> None:
    """with_input/drain_to/with_retry copy; the base task is reusable."""
    out: Drain[int] = Drain()
    base = Task(send_input).drain_to(out)
    one, two = base.with_input(1), base.with_input(2)
    assert one is not base
    assert repr(base) == "Task(send_input, drain=<Drain of 0 values>)"
    assert repr(one) == "Task(send_input, input=1, drain=<Drain of 0 values>)"
    assert (
        repr(two.with_retry(3, 0.5)) == "Task(send_input, input=2, drain=<Drain of 0 values>, retry=3x0.5s)"
    )
    asyncio.run(two.execute())
    asyncio.run(one.execute())
    assert out.drain() == [2, 1]


def test_task_refuses_a_non_callable() -> None:
    """Task(fn) names fn and the value."""
    with pytest.raises(TypeError, match=r"Task\(fn\): fn must be a function taking Args, got 42 \(int\)"):
        Task(42)  # type: ignore[call-overload]


def test_drain_to_refuses_a_non_drain() -> None:
    """drain_to names the parameter and the value."""
    with pytest.raises(TypeError, match=r"drain must be a Drain, got \[\] \(list\)"):
        Task(send_input).drain_to([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"attempts": 0}, ValueError, r"attempts must be an int >= 1, got 0"),
        ({"attempts": -3}, ValueError, r"attempts must be an int >= 1, got -3"),
        ({"attempts": True}, TypeError, r"attempts must be an int >= 1, got True \(bool\)"),
        ({"attempts": 2.5}, TypeError, r"attempts must be an int >= 1, got 2.5 \(float\)"),
        ({"attempts": 3, "sleep": -0.1}, ValueError, r"sleep must be finite and >= 0 seconds, got -0.1"),
        (
            {"attempts": 3, "sleep": float("nan")},
            ValueError,
            r"sleep must be finite and >= 0 seconds, got nan",
        ),
        (
            {"attempts": 3, "sleep": "1"},
            TypeError,
            r"sleep must be seconds as a float or a timedelta, got '1'",
        ),
        ({"attempts": 3, "max_wait": -1}, ValueError, r"max_wait must be finite and >= 0 seconds, got -1"),
    ],
)
def test_with_retry_rejects_bad_values(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Each bad retry argument is named with its value."""
    with pytest.raises(error, match=r"Task\.with_retry: " + message):
        Task(send_input).with_retry(**kwargs)  # type: ignore[arg-type]


def test_with_retry_accepts_timedelta() -> None:
    """Times may be given as timedelta."""
    task = Task(send_input).with_retry(2, timedelta(milliseconds=250), max_wait=timedelta(seconds=2))
    assert repr(task) == "Task(send_input, retry=2x0.25s)"


def test_args_without_input_names_the_task() -> None:
    """Reading an input the task was not given says which task and how to fix it."""
    task = Task(send_input).drain_to(Drain())
    with pytest.raises(LookupError, match=r"Task\(send_input, drain=.*\) has no input: .*with_input"):
        asyncio.run(task.execute())


def test_args_without_drain_names_the_task() -> None:
    """Reading a drain the task was not given says which task and how to fix it."""
    with pytest.raises(LookupError, match=r"Task\(send_input, input=7\) has no drain: .*drain_to"):
        asyncio.run(Task(send_input).with_input(7).execute())


def test_args_exposes_the_task() -> None:
    """Args carries the task that is running."""
    seen: list[Task[int]] = []

    async def remember(args: Args[int]) -> None:
        seen.append(args.task)

    task = Task(remember).with_input(1)
    asyncio.run(task.execute())
    assert seen == [task]
    assert repr(Args(task)) == "Args(Task(test_args_exposes_the_task.<locals>.remember, input=1))"


def test_execute_raises_the_final_error_after_retries(waits: WaitLog) -> None:
    """execute() retries, then raises the last error itself, not a group."""
    calls: list[int] = []

    async def fail(args: Args[None]) -> None:
        calls.append(len(calls))
        raise ValueError(f"try {len(calls)}")

    with pytest.raises(ValueError, match="try 3"):
        asyncio.run(Task(fail).with_retry(3, 1.0).execute())
    assert calls == [0, 1, 2]
    assert len(waits.waits) == 2


def test_a_plain_function_runs_in_a_worker_thread() -> None:
    """A sync fn must not block the event loop's thread."""
    threads: Drain[str] = Drain()

    def where(args: Args[str]) -> None:
        args.drain.send(threading.current_thread().name)

    asyncio.run(Task(where).drain_to(threads).execute())
    [name] = threads.drain()
    assert name != threading.current_thread().name
    assert name.startswith("go_async")


def test_a_plain_function_returning_an_awaitable_is_awaited() -> None:
    """A lambda that calls a coroutine function is run, not dropped."""
    out: Drain[int] = Drain()

    def call_later(args: Args[int]) -> Awaitable[None]:
        return send_input(args)

    asyncio.run(Task(call_later).with_input(5).drain_to(out).execute())
    assert out.drain() == [5]


def test_an_object_with_async_call_runs_on_the_loop() -> None:
    """Callable objects whose __call__ is async are treated as coroutine functions."""
    out: Drain[str] = Drain()

    class Sender:
        async def __call__(self, args: Args[str]) -> None:
            args.drain.send(threading.current_thread().name)

    asyncio.run(Task(Sender()).drain_to(out).execute())
    assert out.drain() == [threading.current_thread().name]


def test_context_variables_reach_sync_and_async_functions() -> None:
    """What the caller set in a ContextVar is visible inside tasks, in threads too."""
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    seen: Drain[str] = Drain()

    async def on_loop(args: Args[str]) -> None:
        args.drain.send(f"async {request_id.get()}")

    def in_thread(args: Args[str]) -> None:
        args.drain.send(f"sync {request_id.get()}")

    request_id.set("r-42")
    Pool(limit=2).go([Task(on_loop).drain_to(seen), Task(in_thread).drain_to(seen)])
    assert sorted(seen.drain()) == ["async r-42", "sync r-42"]
