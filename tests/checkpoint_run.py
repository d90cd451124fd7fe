"""A resumable run for tests/test_checkpoint.py, in a process of its own that the test may SIGKILL.

    python tests/checkpoint_run.py CHECKPOINT RUNS N LIMIT BLOCK_FROM [--ready-on-wait]

Each task appends its input to the file RUNS as it starts. With BLOCK_FROM >= 0,
every task from that position on waits forever; once the saved progress shows
every task before it ended and every worker waiting, the script prints
"ready" on stdout (the test then kills it). With BLOCK_FROM < 0 it runs to the end.
With --ready-on-wait it prints "ready" as soon as every worker waits, whatever was
saved, and a SIGTERM raises KeyboardInterrupt (as a program that wants its progress
saved on a deploy's SIGTERM would have it).
"""

import asyncio
import os
import signal
import sys

from go_async import Args, Pool, RunProgress, SqliteCheckpoint, Task


def main(path: str, runs: str, n: int, limit: int, block_from: int, on_wait: bool) -> None:
    if on_wait:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    log = os.open(runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    kept = SqliteCheckpoint(path)
    waiting = frozenset(range(block_from, min(block_from + limit, n)) if block_from >= 0 else ())

    class Watched:
        """The file's checkpoint; it tells the test once the progress saved is where the run stands still."""

        def load(self) -> RunProgress | None:
            return kept.load()

        def save(self, progress: RunProgress) -> None:
            kept.save(progress)
            ready = progress.unfinished == waiting and progress.started == max(waiting, default=-1) + 1
            if waiting and ready and not on_wait:
                print("ready", flush=True)

    waiters: list[int] = []

    async def work(args: Args[int]) -> None:
        os.write(log, f"{args.input}\n".encode())
        if 0 <= block_from <= args.input:
            waiters.append(args.input)
            if on_wait and len(waiters) == len(waiting):
                print("ready", flush=True)
            await asyncio.Event().wait()

    Pool(limit=limit).go((Task(work).with_input(i) for i in range(n)), checkpoint=Watched())


if __name__ == "__main__":
    on_wait = sys.argv[6:] == ["--ready-on-wait"]
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), on_wait)
