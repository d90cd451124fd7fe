"""Review: a sub-pool's stats() count only its own tasks and those of the pools below it."""

from go_async import Args, Pool, Task
from looping import in_loop


@in_loop
async def test_a_sub_pools_stats_do_not_count_the_retries_of_its_parent() -> None:
    """A task of the parent is tried again: the sub-pool, whose one task never failed, counts no retry."""
    tries: list[int] = []

    async def flaky(args: Args[None]) -> None:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("first try")

    async def fine(args: Args[None]) -> None:
        pass

    async with Pool().with_retry(2, 0) as pool:
        sub = pool.sub(limit=1)
        await (await sub.submit(Task(fine)))
        await (await pool.submit(Task(flaky)))
        parent, child = pool.stats().retried, sub.stats().retried
    assert (parent, child) == (1, 0)
