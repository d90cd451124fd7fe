"""The README's quick start: user names in, users out, with a limit, retries and a drain."""

from dataclasses import dataclass

from go_async import Args, Drain, Pool, Task


@dataclass(frozen=True)
class User:
    name: str


async def fetch(args: Args[str, User]) -> None:  # a str in, Users out
    args.drain.send(User(name=args.input.title()))


names = ["ada lovelace", "alan turing", "grace hopper"]
out: Drain[User] = Drain()

pool = Pool(limit=8)
pool.go([Task(fetch).with_input(name).drain_to(out).with_retry(3, 0.2) for name in names])
print(sorted(user.name for user in out.drain()))
