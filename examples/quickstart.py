"""The README's quick start: title-case user names with a limit, retries and a drain."""

from dataclasses import dataclass

from go_async import Args, Drain, Pool, Task


@dataclass(frozen=True)
class User:
    name: str


async def fetch(args: Args[User]) -> None:
    args.drain.send(User(name=args.input.name.title()))


users = [User("ada lovelace"), User("alan turing"), User("grace hopper")]
out: Drain[User] = Drain()

pool = Pool(limit=8)
pool.go([Task(fetch).with_input(u).drain_to(out).with_retry(3, 0.2) for u in users])
print(sorted(user.name for user in out.drain()))
