"""Named tasks keep their types across the wire: arguments, results, handles, stubs and flows."""

import asyncio
from dataclasses import dataclass

from go_async import call, prepend
from go_async.distributed import Call, Named, Registry, Remote, RemoteHandle, Worker, WorkerStats

registry = Registry()


@dataclass(frozen=True)
class Order:
    item: str
    count: int


@registry.task("total")
async def total(order: Order, price: float = 1.0) -> float:
    return order.count * price


@registry.task("label")
def label(order: Order) -> str:
    return f"{order.count} x {order.item}"


@registry.task("add")
async def add(*numbers: int) -> int:
    return sum(numbers)


async def main() -> None:
    named: Named[[Order, float], float] = total
    plain: Named[[Order], str] = label
    async with Remote(registry) as remote:
        handle: RemoteHandle[float] = await remote.send(named, Order("tea", 3), 2.0)
        cost: float = await handle
        text: str = await (await remote.send(plain, Order("tea", 1))).result(timeout=5)
        labels: list[str] = await remote.amap(label, [Order("a", 1)])
        one: Call[int] = remote.call(add, 1, 2)
        sums: list[int] = await remote.ago([one, remote.call(add)])
        chained: int = await call(remote.stub(add), 1, 1).then(prepend(remote.stub(add), 5, 6)).arun(None)
        assert (cost, text, labels, sums, chained) == (6.0, "1 x tea", ["1 x a"], [3, 0], 13)
    assert remote.worker is not None
    stats: WorkerStats = remote.worker.stats()
    assert stats.succeeded == 7
    assert Worker(registry).concurrency == 10


asyncio.run(main())
