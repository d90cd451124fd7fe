"""Fetch many pages from a flaky service: a limit, retries with backoff, a drain read live.

The "service" is simulated so the script runs anywhere: every page fails on its
first try and about one in five fails a second time, so retries do real work.
Run it with STAGE=test to see the same output order every time.
"""

import asyncio
import random
from dataclasses import dataclass

from go_async import Args, Drain, Pool, Task


@dataclass(frozen=True)
class Page:
    url: str
    size: int
    tries: int


class FlakyService:
    """Fails each URL's first request, and sometimes its second."""

    def __init__(self, seed: int) -> None:
        self.tries: dict[str, int] = {}
        self.random = random.Random(seed)
        self.in_flight = 0
        self.peak = 0

    async def get(self, url: str) -> Page:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.002)  # a network round trip
            tries = self.tries[url] = self.tries.get(url, 0) + 1
            if tries == 1 or (tries == 2 and self.random.random() < 0.2):
                raise ConnectionError(f"{url}: try {tries} failed")
            return Page(url, size=len(url) * 100, tries=tries)
        finally:
            self.in_flight -= 1


async def main() -> None:
    service = FlakyService(seed=42)
    pages: Drain[Page] = Drain()

    # A str in (the URL), Pages out: Args[str, Page] types both.
    async def fetch(args: Args[str, Page]) -> None:
        args.drain.send(await service.get(args.input))

    urls = [f"https://example.org/item/{n}" for n in range(40)]
    base = Task(fetch).drain_to(pages).with_retry(4, 0.01, max_wait=0.1, on=ConnectionError)
    pool = Pool(limit=5)

    async def report() -> int:
        total = 0
        async for page in pages:  # reads pages as they arrive, until the drain is closed
            total += page.size
        return total

    async with asyncio.TaskGroup() as group:
        total = group.create_task(report())
        await pool.ago(base.with_input(url) for url in urls)
        pages.close()  # no run feeds this drain itself, so we say when it is complete

    tries = sorted(page.tries for page in pages.drain())
    print(f"fetched {len(pages)} pages, {total.result()} bytes, at most {service.peak} at once")
    print(f"pages that needed 2 tries: {tries.count(2)}, 3 tries: {tries.count(3)}")


if __name__ == "__main__":
    asyncio.run(main())
