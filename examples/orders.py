"""Named tasks on workers: price orders one by one, in a chain, and see a failure come back.

Without a URL the tasks run on an embedded worker, through an in-memory queue;
with one, on the workers listening on that Redis server:

    python examples/orders.py
    cd examples && python -m go_async.worker orders:registry --url redis://localhost:6379/0
    python examples/orders.py --url redis://localhost:6379/0

Needs the ``redis`` extra: ``pip install -e '.[redis]'``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from go_async import prepend, step
from go_async.distributed import Registry, Remote, RemoteError

registry = Registry()
PRICES = {"tea": 4.0, "cake": 3.5}


@dataclass(frozen=True)
class Order:
    item: str
    count: int


@registry.task("price")
async def price(order: Order) -> float:
    if order.item not in PRICES:
        raise LookupError(f"no price for {order.item!r}")
    return PRICES[order.item] * order.count


@registry.task("discount")
async def discount(total: float, percent: int) -> float:
    return round(total * (100 - percent) / 100, 2)


@registry.task("receipt")
def receipt(total: float) -> str:
    """A plain def: a worker runs it in a thread."""
    return f"total {total:.2f}"


def main(url: str | None) -> None:
    remote = Remote(registry, url=url)
    print("prices:", remote.map(price, [Order("tea", 2), Order("cake", 4)]))
    priced_and_discounted = step(remote.stub(price)).then(prepend(remote.stub(discount), 10))
    print("receipt:", priced_and_discounted.then(step(remote.stub(receipt))).run(Order("tea", 5)))
    try:
        remote.map(price, [Order("tea", 1), Order("coffee", 1)])
    except* RemoteError as failed:
        errors = [error for error in failed.exceptions if isinstance(error, RemoteError)]
        print("failed:", [f"{error.kind}: {error.message}" for error in errors])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="a Redis URL; without it, an embedded worker runs the tasks")
    main(parser.parse_args().url)
