"""Per-task timeouts, the pool's default timeout, and a task's id, name and tags."""

import asyncio
import re
import time
from datetime import timedelta

import pytest

from go_async import Args, Drain, Pool, Task, WaitLog


async def never_ends(args: Args[int]) -> None:
    await asyncio.Event().wait()


async def quick(args: Args[int]) -> None:
    args.drain.send(args.input)


def test_a_task_that_overruns_its_timeout_fails_with_timeout_error() -> None:
    """The error is a TimeoutError whose notes say the timeout, then name the task."""
    with pytest.raises(TimeoutError) as caught:
        asyncio.run(Task(never_ends).with_input(1).with_timeout(0.01).execute())
    timed_out, named = caught.value.__notes__
    assert timed_out == "timed out after 0.01s"
    assert re.fullmatch(r"in task never_ends \(id \d+\.0, input 1\)", named)


def test_every_try_has_the_timeout_and_retries_count_timeouts(waits: WaitLog) -> None:
    """A timed-out try is a failure: the retry tries again, each try with the full timeout."""
    tries: list[int] = []

    async def slow_twice(args: Args[int]) -> None:
        tries.append(len(tries) + 1)
        if len(tries) < 3:
            await asyncio.Event().wait()
        args.drain.send(args.input)

    out: Drain[int] = Drain()
    asyncio.run(Task(slow_twice).with_input(7).drain_to(out).with_timeout(0.01).with_retry(3, 0.1).execute())
    assert tries == [1, 2, 3]
    assert out.drain() == [7]
    assert len(waits.waits) == 2


def test_the_pool_timeout_applies_to_tasks_without_their_own() -> None:
    """Pool.with_timeout is the default; a task's own timeout wins over it."""
    out: Drain[int] = Drain()

    async def waits_for_input(args: Args[int]) -> None:
        if args.input == 0:
            await asyncio.Event().wait()
        args.drain.send(args.input)

    pool = Pool(limit=4).with_timeout(0.01)
    tasks = [
        Task(waits_for_input).with_input(0).drain_to(out),
        Task(waits_for_input).with_input(1).drain_to(out),
        Task(quick).with_input(2).drain_to(out).with_timeout(60),
    ]
    with pytest.raises(ExceptionGroup) as caught:
        pool.go(tasks)
    [timed_out] = caught.value.exceptions
    assert isinstance(timed_out, TimeoutError)
    assert sorted(out.drain()) == [1, 2]
    assert repr(pool) == "Pool(limit=4, timeout=0.01s)"
    assert repr(pool.with_timeout(None)) == "Pool(limit=4)"


def test_a_plain_function_times_out_once_it_returns() -> None:
    """A thread cannot be interrupted: the try fails after the function has returned."""
    returned: list[bool] = []

    def overruns(args: Args[int]) -> None:
        time.sleep(0.05)  # the work that overruns, not a wait for an event
        returned.append(True)

    with pytest.raises(TimeoutError):
        asyncio.run(Task(overruns).with_timeout(timedelta(milliseconds=10)).execute())
    assert returned == [True]


def test_a_timeout_error_of_the_task_itself_is_left_as_it_is() -> None:
    """Only the pool's own deadline says it timed out; a TimeoutError the task raised is only named."""

    async def raises_timeout(args: Args[int]) -> None:
        raise TimeoutError("the service timed out")

    with pytest.raises(TimeoutError, match="the service timed out") as caught:
        asyncio.run(Task(raises_timeout).with_timeout(60).execute())
    [named] = caught.value.__notes__
    assert named.startswith("in task ")


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (
            0,
            ValueError,
            r"Task.with_timeout: seconds must be finite and > 0 seconds \(or None for no timeout\), got 0",
        ),
        (
            -1,
            ValueError,
            r"Task.with_timeout: seconds must be finite and > 0 seconds \(or None for no timeout\), got -1",
        ),
        (float("nan"), ValueError, r"seconds must be finite"),
        ("1", TypeError, r"Task.with_timeout: seconds must be seconds as a float or a timedelta, got '1'"),
    ],
)
def test_bad_timeouts_are_refused(value: object, error: type[Exception], message: str) -> None:
    """The call, the parameter and the value are named."""
    with pytest.raises(error, match=message):
        Task(quick).with_timeout(value)  # type: ignore[arg-type]
    with pytest.raises(error, match=message.replace("Task", "Pool")):
        Pool().with_timeout(value)  # type: ignore[arg-type]


def test_a_task_knows_its_id_name_and_tags() -> None:
    """Inside a task, args gives its name and tags and an id unique to that run of it."""
    seen: list[tuple[str, str | None, tuple[str, ...]]] = []

    async def remember(args: Args[int]) -> None:
        seen.append((args.id, args.name, args.tags))

    base = Task(remember).with_name("fetch").with_tags("io", "api", "io")
    Pool(limit=2).go(base.with_input(n) for n in range(3))
    Pool(limit=2).go([base.with_input(9), Task(remember)])
    ids = [id_ for id_, _, _ in seen]
    assert len(set(ids)) == 5
    assert all(re.fullmatch(r"\d+\.\d+", id_) for id_ in ids)
    first_run = {id_.split(".")[0] for id_ in ids[:3]}
    assert len(first_run) == 1
    assert sorted(int(id_.split(".")[1]) for id_ in ids[:3]) == [0, 1, 2]
    assert seen[0][1:] == ("fetch", ("io", "api"))
    assert seen[-1][1:] == (None, ())
    assert repr(base).endswith("remember, name='fetch', tags=('io', 'api'))")


def test_args_made_by_hand_have_an_id_too() -> None:
    """Calling a task's function in a test needs an Args; it gets a fresh id."""
    task = Task(quick).with_input(1).with_name("q")
    one, two = Args(task), Args(task)
    assert one.id != two.id
    assert one.name == "q"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: Task(quick).with_name(""), ValueError, r"Task.with_name: name must not be empty"),
        (
            lambda: Task(quick).with_name(3),  # type: ignore[arg-type]
            TypeError,
            r"Task.with_name: name must be a str, got 3 \(int\)",
        ),
        (
            lambda: Task(quick).with_tags("a", None),  # type: ignore[arg-type]
            TypeError,
            r"Task.with_tags: tag must be a str, got None",
        ),
    ],
)
def test_bad_names_and_tags_are_refused(call: object, error: type[Exception], message: str) -> None:
    """The call, the parameter and the value are named."""
    assert callable(call)
    with pytest.raises(error, match=message):
        call()
