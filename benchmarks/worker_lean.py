"""The lean reference worker: about the least a Redis task queue with results can do.

A client XADDs its sends to one stream in one pipeline; a worker reads up to
``concurrency`` with XREADGROUP, runs them at once and, in one pipeline, LPUSHes
each result (JSON) to its client's reply list and then XACKs and XDELs the whole
read: a task is acknowledged only after its result is saved. The client takes
replies with BLMPOP (BLPOP with a count). No retries, timeouts or redelivery of
a dead worker's tasks: the floor the engines are measured against.

    python worker_lean.py --url redis://127.0.0.1:6379/0 --concurrency 10   # one worker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from worker_common import echo, spin

STREAM, GROUP = "lean:tasks", "lean"
TASKS: dict[str, Callable[[int], int]] = {"echo": echo, "spin": spin}


async def _run(message: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"id": message["id"], "ok": TASKS[message["task"]](*message["args"])}
    except Exception as error:  # a task's error travels back as its result
        return {"id": message["id"], "error": repr(error)}


async def work(url: str, concurrency: int, stop: asyncio.Event) -> None:
    """Run tasks from the stream until ``stop`` is set, finishing the read in hand."""
    client = aioredis.from_url(url)
    try:
        await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
    consumer = f"lean-{os.getpid()}"
    while not stop.is_set():
        read: Any = await client.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=concurrency, block=500)
        if not read:
            continue
        entries: list[tuple[bytes, dict[bytes, bytes]]] = read[0][1]
        messages = [json.loads(fields[b"m"]) for _, fields in entries]
        results = await asyncio.gather(*(_run(message) for message in messages))
        ids = [entry_id for entry_id, _ in entries]
        async with client.pipeline(transaction=False) as pipe:
            for message, result in zip(messages, results, strict=True):
                pipe.lpush(message["reply"], json.dumps(result))
            pipe.xack(STREAM, GROUP, *ids)
            pipe.xdel(STREAM, *ids)
            await pipe.execute()
    await client.aclose()


class Client:
    """Sends tasks and takes their results back through a reply list of its own."""

    def __init__(self, url: str, in_flight: int = 100) -> None:
        self.redis = aioredis.from_url(url)
        self.in_flight = in_flight
        self.reply = f"lean:reply:{uuid.uuid4().hex}"

    async def _send(self, task: str, items: list[tuple[int, int]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for index, value in items:
                message = {"id": index, "task": task, "args": [value], "reply": self.reply}
                pipe.xadd(STREAM, {"m": json.dumps(message)})
            await pipe.execute()

    async def map(self, task: str, values: list[int]) -> list[int]:
        """``task(value)`` for each value, ``in_flight`` at a time; results in input order."""
        results: list[int] = [0] * len(values)
        sent = min(self.in_flight, len(values))
        await self._send(task, list(enumerate(values[:sent])))
        done = 0
        while done < len(values):
            popped: Any = await self.redis.blmpop(60, 1, self.reply, direction="LEFT", count=self.in_flight)
            if popped is None:
                msg = "lean: no result in 60 s"
                raise TimeoutError(msg)
            replies: list[bytes] = popped[1]
            for raw in replies:
                reply = json.loads(raw)
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                results[reply["id"]] = reply["ok"]
            done += len(replies)
            more = min(len(replies), len(values) - sent)
            if more:
                await self._send(task, [(index, values[index]) for index in range(sent, sent + more)])
                sent += more
        return results

    async def close(self) -> None:
        await self.redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description="the lean reference worker")
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=10)
    options = parser.parse_args()

    async def serve() -> None:
        stop = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(number, stop.set)
        await work(options.url, options.concurrency, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
