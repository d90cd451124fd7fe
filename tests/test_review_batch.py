"""Review: one run of go/ago, whose workers pull tasks from the iterable."""

import asyncio
from contextlib import suppress

from go_async import Args, Pool, Task
from looping import in_loop


@in_loop
async def test_a_task_raising_a_cancelled_error_of_its_own_does_not_drop_the_tasks_after_it() -> None:
    """Task 0 awaits a future someone else cancelled; tasks 1-4 still run, with one worker as with many."""
    ran: list[int] = []

    async def work(args: Args[int]) -> None:
        if args.input == 0:
            abandoned = asyncio.get_running_loop().create_future()
            abandoned.cancel()
            await abandoned  # raises CancelledError, though nobody cancelled this run
        ran.append(args.input)

    with suppress(Exception):  # how task 0 is reported is not the point here
        await Pool(limit=1).ago(Task(work).with_input(n) for n in range(5))
    assert ran == [1, 2, 3, 4]
