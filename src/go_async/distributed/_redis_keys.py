"""A queue's keys on Redis, and the scripts that must act on several of them at once.

Besides the stream and its dead letters, a queue keeps delayed messages in
a sorted set by due time, revocations in a sorted set by a counter (so a
worker asks only for those it has not seen), stored results in a list per
task id, and a group's fan-in in a hash per group. The scripts run on the
server, so no two workers move the same delayed message or both see a
group complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from functools import partial
from typing import Any

from redis.asyncio import Redis

from ._transport import (
    RESULT_TTL_SECONDS,
    REVOCATIONS_KEPT,
    DeadLetter,
    Finished,
    Follow,
    outlast,
)

# How long a batch's mark that it was queued lasts: an outage longer than this may queue twice the
# batches whose answers it lost.
_SENT_MARKS_KEPT = 600
# The longest one blocking read for a kept result waits.
_KEPT_WAIT = 0.25
# The most delayed messages one move queues.
_MOVED_AT_ONCE = 500

# Queue the delayed messages due by ARGV[1]; return the next one's due time, if any.
_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, data in ipairs(due) do
  if ARGV[3] == '' then
    redis.call('XADD', KEYS[2], '*', 'data', data)
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], '*', 'data', data)
  end
end
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return head[2] or false
"""

# Queue the messages ARGV[3..] unless the mark KEYS[2] says they were: a batch retried after its
# answer was lost (the server went away meanwhile) is not queued twice. ARGV[1]: maxlen or ''.
_ADD_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[2])) then
  for i = 3, #ARGV do
    if ARGV[1] == '' then
      redis.call('XADD', KEYS[1], '*', 'data', ARGV[i])
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'data', ARGV[i])
    end
  end
end
return 0
"""

# Mark ARGV[1] revoked under the next count; keep only the newest ARGV[2].
_REVOKE = """
local count = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], count, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[2]) - 1)
return count
"""

# Record member ARGV[1]'s result ARGV[2]; every member's, once ARGV[3] of them are in.
_JOIN = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return redis.call('HGETALL', KEYS[1]) end
return false
"""


class Keys:
    """The keys of one queue, and the scripts over them.

    Example::

        keys = Keys(redis, "orders", maxlen=None)
        next_due = await keys.move_due(time.time())
    """

    __slots__ = (
        "_join",
        "_maxlen",
        "_move",
        "_redis",
        "_revoke",
        "dead",
        "delayed",
        "queue",
        "revoked",
        "revoked_count",
    )

    def __init__(self, redis: Redis, queue: str, maxlen: int | None) -> None:
        self._redis = redis
        self._maxlen = maxlen
        self.queue = queue
        self.dead = f"{queue}:dead"
        self.delayed = f"{queue}:delayed"
        self.revoked = f"{queue}:revoked"
        self.revoked_count = f"{queue}:revoked:count"
        self._move: Any = redis.register_script(_MOVE_DUE)
        self._revoke: Any = redis.register_script(_REVOKE)
        self._join: Any = redis.register_script(_JOIN)

    def result(self, task_id: str) -> str:
        """Where a kept result waits."""
        return f"{self.queue}:result:{task_id}"

    def group(self, key: str) -> str:
        """Where a group's members leave their results."""
        return f"{self.queue}:join:{key}"

    def add(self, pipe: Any, once: str, messages: Iterable[Follow]) -> None:
        """Queue ``messages`` in ``pipe``, on the stream or among the delayed ones, at most once.

        ``once`` names the batch: the same batch sent again (its pipeline
        retried after a lost answer) queues nothing more. A delayed message
        is a member of a sorted set, which adding again does not repeat.
        """
        now: list[bytes] = []
        for data, due in messages:
            if due is None:
                now.append(data)
            else:
                pipe.zadd(self.delayed, {data: due})
        if now:
            maxlen = "" if self._maxlen is None else self._maxlen
            mark = f"{self.queue}:sent:{once}"
            # EVAL with the text, not EVALSHA: a server restarted empty has lost its scripts,
            # and a pipeline that must load one first leaks a connection when it fails.
            pipe.eval(_ADD_ONCE, 2, self.queue, mark, maxlen, _SENT_MARKS_KEPT, *now)

    def leave(self, pipe: Any, done: Finished) -> None:
        """In ``pipe``, before the ack: queue what follows a message, keep its result, end its group."""
        self.add(pipe, done.message_id, done.follow)
        if done.keep is not None and done.reply is not None:
            task_id, seconds = done.keep
            key = self.result(task_id)
            pipe.delete(key)  # a result saved again (the task ran twice) stays one
            pipe.rpush(key, done.reply)
            pipe.pexpire(key, max(1, int(seconds * 1000)))
        if done.joined is not None:
            pipe.delete(self.group(done.joined))

    async def move_due(self, now: float) -> float | None:
        """Queue the delayed messages due by ``now``; the next one's due time, if any."""
        maxlen = "" if self._maxlen is None else self._maxlen
        head = await self._move(keys=[self.delayed, self.queue], args=[now, _MOVED_AT_ONCE, maxlen])
        return None if head is None else float(head)

    async def revoke(self, task_id: str) -> None:
        """Mark ``task_id`` revoked, for every worker to see."""
        await self._revoke(keys=[self.revoked, self.revoked_count], args=[task_id, REVOCATIONS_KEPT])

    async def revocations(self, cursor: int) -> tuple[list[str], int]:
        """The ids revoked after ``cursor``, and the new cursor (from 0 again if the server lost count)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrangebyscore(self.revoked, f"({cursor}", "+inf", withscores=True)  # pyright: ignore[reportUnknownMemberType]  # redis-py's score_cast_func
        pipe.get(self.revoked_count)
        found, count = await pipe.execute()
        latest = int(count or 0)
        if latest < cursor:  # a server restarted empty counts from 0 again
            return await self.revocations(0)
        return [text(member) for member, _ in found], latest

    async def kept(self, task_id: str, wait: float, away: tuple[type[BaseException], ...]) -> bytes | None:
        """The result kept under ``task_id``; waits at most ``wait`` seconds for it (woken by its push)."""
        # Short blocking reads up to the deadline: a long one would outlast the
        # socket's timeout, which looks like the server being away.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            left = max(0.0, deadline - loop.time())
            read = partial(self._kept, self.result(task_id), min(left, _KEPT_WAIT))
            found = await outlast(f"reading the result of {task_id}", read, away)
            if found is not None or left <= 0:
                return found

    async def _kept(self, key: str, wait: float) -> bytes | None:
        found: Any = await self._redis.lindex(key, 0)
        if found is None and wait > 0:
            # Moved from the head to the head: it stays for other readers.
            found = await self._redis.blmove(key, key, wait, "LEFT", "LEFT")  # type: ignore[arg-type]  # Redis takes a float
        return bytes(found) if found is not None else None

    async def dead_letters(self) -> list[DeadLetter]:
        """The dead letters, oldest first."""
        entries: Any = await self._redis.xrange(self.dead)
        return [_letter(text(entry), fields) for entry, fields in entries]

    async def join(self, key: str, index: int, value: bytes, size: int, ttl_ms: int) -> list[bytes] | None:
        """Record member ``index``'s result; all ``size`` of them in order once they are in."""
        flat: Any = await self._join(keys=[self.group(key)], args=[index, value, size, ttl_ms])
        if not flat:
            return None
        pairs = {int(flat[place]): flat[place + 1] for place in range(0, len(flat), 2)}
        return [pairs[index] for index in sorted(pairs)]


def push_replies(pipe: Any, replies: list[tuple[str, bytes]]) -> None:
    # One RPUSH and one EXPIRE per client, whatever the number of its replies.
    by_key: dict[str, list[bytes]] = {}
    for reply_key, reply in replies:
        by_key.setdefault(reply_key, []).append(reply)
    for reply_key, values in by_key.items():
        pipe.rpush(reply_key, *values)
        pipe.expire(reply_key, RESULT_TTL_SECONDS)


def _letter(entry: str, fields: dict[bytes, bytes]) -> DeadLetter:
    reason, message_id = text(fields.get(b"reason", b"")), text(fields.get(b"id", b""))
    return DeadLetter.of(entry, fields.get(b"data", b""), reason, message_id)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
