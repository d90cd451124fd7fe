"""``go-async-worker module:registry`` (or ``python -m go_async.worker``): a worker process for named tasks.

It imports ``registry`` from ``module`` (the current directory is on the
path), takes tasks from the Redis queue at ``--url`` (or
``GO_ASYNC_BROKER_URL``) and runs at most ``--concurrency`` at once. On
SIGTERM or SIGINT it stops taking tasks, finishes the ones it has started
and exits 0; a second signal exits at once (1), and the tasks it had
started are run again by another worker after ``--redeliver-after``
seconds. Needs the ``redis`` extra.

Example::

    python -m go_async.worker tasks:registry --url redis://localhost:6379/0 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported in main(): without the redis extra, --help still works
    from .distributed import Worker

logger: logging.Logger = logging.getLogger("go_async.distributed")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker until it is told to stop; the process's exit status."""
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="go-async-worker", description=summary)
    parser.add_argument("target", help="where the Registry is, as module:attribute")
    parser.add_argument("--url", help="the Redis URL (default: $GO_ASYNC_BROKER_URL)")
    parser.add_argument("--queue", default="go_async", help="the queue of tasks (default: go_async)")
    parser.add_argument("--concurrency", type=int, default=10, help="tasks run at once (default: 10)")
    parser.add_argument(
        "--redeliver-after",
        type=float,
        default=30.0,
        help="seconds after which a dead worker's tasks run elsewhere (default: 30)",
    )
    parser.add_argument(
        "--max-deliveries",
        type=int,
        default=5,
        help="hand-outs of a message before it goes to the dead letters (default: 5)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    options = parser.parse_args(argv)
    level = logging.getLevelNamesMapping().get(options.log_level.upper())
    if level is None:
        parser.error(f"--log-level must be a logging level such as INFO, got {options.log_level!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from .distributed import Registry, Worker  # noqa: PLC0415 - needs the redis extra
    except ImportError as missing:
        parser.exit(2, f"go-async-worker: {missing}\n")

    module_name, _, attribute = options.target.partition(":")
    if not module_name or not attribute:
        parser.error(f"target must be module:attribute, got {options.target!r}")
    sys.path.insert(0, os.getcwd())
    registry = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(registry, Registry):
        parser.error(f"{options.target} must be a go_async.distributed.Registry, got {registry!r}")
    try:
        worker = Worker(
            registry,
            url=options.url,
            queue=options.queue,
            concurrency=options.concurrency,
            redeliver_after=options.redeliver_after,
            max_deliveries=options.max_deliveries,
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if worker.url is None:
        parser.error("a broker is needed: pass --url or set GO_ASYNC_BROKER_URL")
    return asyncio.run(_serve(worker))


async def _serve(worker: Worker) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(number: signal.Signals) -> None:
        if stop.is_set():
            logger.error(
                "go_async worker: %s again, exiting now; started tasks will be redelivered", number.name
            )
            os._exit(1)
        logger.info("go_async worker: %s, finishing the tasks started, taking no more", number.name)
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, on_signal, number)
    await worker.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
