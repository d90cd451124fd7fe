"""Tracing context: context variables reach the tasks, and asyncio task names carry the task's name."""

import asyncio
import contextvars
from typing import Any

from go_async import Args, Drain, Pool, Task

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def read_var(args: Args[str]) -> None:
    args.drain.send(f"{args.input}:{request_id.get()}")


def read_var_in_thread(args: Args[str]) -> None:
    args.drain.send(f"{args.input}:{request_id.get()}")


def test_variables_set_around_a_run_are_seen_by_every_task() -> None:
    """Async tasks and plain ones in threads, with and without a limit."""

    async def main(limit: int | None, out: Drain[str]) -> None:
        request_id.set(f"req-{limit}")
        tasks = [Task(read_var).drain_to(out).with_input(str(n)) for n in range(3)]
        tasks += [Task(read_var_in_thread).drain_to(out).with_input(str(n)) for n in range(3, 5)]
        await Pool(limit=limit).ago(tasks)

    for limit in (None, 2):
        out: Drain[str] = Drain()
        asyncio.run(main(limit, out))
        assert sorted(out.drain()) == [f"{n}:req-{limit}" for n in range(5)]
    assert request_id.get() == "unset"


def test_variables_set_around_submit_reach_the_task_whoever_starts_it() -> None:
    """A queued task keeps the context of its submit, even when another task's end starts it."""
    out: Drain[str] = Drain()
    release = asyncio.Event()

    async def hold(args: Args[str]) -> None:
        await release.wait()

    async def main() -> None:
        async with Pool(limit=1) as pool:
            request_id.set("blocker")
            await pool.submit(Task(hold).with_input("0"))
            handles = []
            for n in (1, 2):
                request_id.set(f"req-{n}")
                handles.append(await pool.submit(Task(read_var).drain_to(out).with_input(str(n))))
            request_id.set("after")
            release.set()
            for handle in handles:
                await handle

    asyncio.run(main())
    assert sorted(out.drain()) == ["1:req-1", "2:req-2"]


def test_workers_carry_the_name_of_the_task_they_run() -> None:
    """One worker, tasks with different names: asyncio sees each task's name while it runs."""
    seen: list[tuple[int, str]] = []

    async def report(args: Args[int]) -> None:
        task = asyncio.current_task()
        assert task is not None
        seen.append((args.input, task.get_name()))

    base = Task(report)
    tasks = [base.with_name("fetch").with_input(0), base.with_input(1), base.with_name("parse").with_input(2)]
    Pool(limit=1).go(tasks)
    assert seen == [
        (0, "go_async fetch"),
        (1, f"go_async {report.__qualname__}"),
        (2, "go_async parse"),
    ]


def test_running_pool_tasks_are_named_with_their_id() -> None:
    names: list[str] = []

    async def report(args: Args[Any]) -> None:
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_name())
        names.append(f"go_async fetch {args.id}")

    async def main() -> None:
        async with Pool() as pool:
            await (await pool.submit(Task(report).with_name("fetch")))

    asyncio.run(main())
    assert names[0] == names[1]
