"""Review: the bound on the failures a running pool keeps counts only those nobody has retrieved."""

import asyncio
import logging

import pytest

from go_async import Args, Pool, Task
from looping import in_loop


@in_loop
async def test_failures_retrieved_after_they_failed_free_their_place_in_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """101 failures, each awaited once it has failed: none is dropped, none is logged as unretrieved."""
    caplog.set_level(logging.ERROR, logger="go_async")
    failing = asyncio.Event()

    async def fail(args: Args[int]) -> None:
        failing.set()
        raise ValueError(args.input)

    async with Pool() as pool:
        for number in range(101):
            failing.clear()
            handle = await pool.submit(Task(fail).with_input(number))
            await failing.wait()  # it has failed, and nobody has retrieved it yet
            with pytest.raises(ValueError, match=str(number)):
                await handle  # now somebody has
        dropped = pool.stats().dropped_failures
    logged = [record for record in caplog.records if record.name == "go_async"]
    assert (dropped, logged) == (0, [])
