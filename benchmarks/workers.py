"""Task-queue workers on Redis, side by side: tasks per second and CPU per task.

    python benchmarks/workers.py            # the full run (about 8 minutes on 2 cores)
    python benchmarks/workers.py --quick    # a smoke run (about a minute), written to benchmarks/out/

Engines, each set up as its own docs say for Redis and deployed as a user
would, with its own command line: go_async (``Remote.amap`` and ``python -m
go_async.worker``), Dramatiq (Redis broker, Results middleware on Redis),
arq, SAQ, taskiq (taskiq-redis's stock ``RedisStreamBroker`` and
``RedisAsyncResultBackend``), Celery (Redis broker and backend, prefork pool)
and the lean reference worker of ``worker_lean.py``. Workloads: a task that
returns its input, and one of about 1 ms of CPU. Setups: one and two worker
processes, each running up to 10 tasks at once (or the engine's closest
setting), the client keeping 100 in flight.

Rounds interleave the engines and setups (rotated each round), each a fresh
start of the workers after a FLUSHALL; every round times one run per engine,
setup and workload, of as many tasks as take about ``--target`` seconds at
its median rate so far (the first run: at its warm-up's); the table gives
medians over rounds, leaving out the runs during which other processes kept
the machine busy, as long as most runs were quiet. CPU per task is the user
and system time of the client and of the worker processes and their
children, from /proc (Linux only); Redis's own is beside it. Latency: tasks
sent one at a time through one worker.

The peers' pins conflict with each other (arq wants redis < 6, SAQ < 8,
taskiq-redis >= 8), so each peer gets a virtual environment of its own under
``benchmarks/.peers-venv/``, made and filled from PyPI here; go_async and the
lean worker run with this Python. Redis: ``GO_ASYNC_TEST_REDIS_URL``, or a
``redis-server`` started on loopback. Writes ``workers.md`` and ``workers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from run import cpu_name
from worker_client import MAX_TASKS, MIN_TASKS, percentile, task_count
from worker_common import DEFAULT_POLL, POLL_VARIABLE, URL_VARIABLE, tree_cpu_seconds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_VENVS = HERE / ".peers-venv"
IN_FLIGHT = 100
CONCURRENCY = 10
WORKLOADS = {"noop": "no-op", "cpu": "1 ms of CPU"}
SETUPS = (1, 2)
# A timed run during which other processes kept more than this many cores busy is left out of the
# medians, as long as most runs of its cell were quiet: a shared machine's test suite, say.
NOISY = 0.25


@dataclass(frozen=True)
class Engine:
    name: str
    label: str
    pins: tuple[str, ...] = ()  # installed in its own environment; none: this Python
    note: str = ""

    @property
    def peer(self) -> bool:
        return bool(self.pins)


ENGINES = {
    engine.name: engine
    for engine in (
        Engine(
            "go_async",
            "go_async",
            note="`Remote(registry, url=..., limit=100).amap(task, inputs)`; "
            f"`python -m go_async.worker ... --concurrency {CONCURRENCY}` per worker process",
        ),
        Engine(
            "lean",
            "lean worker",
            note="`worker_lean.py`: XADD in one pipeline; XREADGROUP up to 10, run, then "
            "LPUSH results + XACK + XDEL in one pipeline; replies by BLMPOP",
        ),
        Engine(
            "dramatiq",
            "Dramatiq",
            ("dramatiq[redis]==2.2.1",),
            "RedisBroker + Results(RedisBackend); `dramatiq --processes N --threads 10`; sync actors; "
            "client: `actor.send`, `message.get_result(block=True)`; an idle worker polls Redis with a "
            "growing back-off, which its one-at-a-time latency shows",
        ),
        Engine(
            "arq",
            "arq",
            ("arq==0.28.0",),
            "one `run_worker(WorkerSettings)` process per worker, `max_jobs=10`, `poll_delay` = poll "
            "(the worker polls the queue); client: `enqueue_job`, `job.result(poll_delay=poll)`",
        ),
        Engine(
            "saq",
            "SAQ",
            ("saq[redis]==0.26.4", "typing_extensions"),  # saq imports it without requiring it
            "`saq worker_saq.settings --workers N`, `concurrency=10`; client: "
            "`queue.apply(poll_interval=poll)`, which sleeps an interval after every check, the one "
            "that finds the result too (two intervals a task at least)",
        ),
        Engine(
            "taskiq",
            "taskiq",
            ("taskiq==0.13.0", "taskiq-redis==1.2.4"),
            "RedisStreamBroker + RedisAsyncResultBackend; `taskiq worker --workers N --max-async-tasks 10`; "
            "client: `kiq`, `wait_result(check_interval=poll)`",
        ),
        Engine(
            "celery",
            "Celery",
            ("celery[redis]==5.7.0",),
            "Redis broker and backend; `celery worker --pool prefork --concurrency N` (N children, one "
            "task at a time each, prefetch multiplier 10); client: `delay`, `AsyncResult.get()`",
        ),
    )
}
# The packages whose versions the report names, per engine.
PACKAGES = {
    "go_async": ("go-async", "redis", "pydantic"),
    "lean": ("redis",),
    "dramatiq": ("dramatiq", "redis"),
    "arq": ("arq", "redis", "hiredis"),
    "saq": ("saq", "redis"),
    "taskiq": ("taskiq", "taskiq-redis", "redis"),
    "celery": ("celery", "kombu", "redis"),
}


@dataclass
class Run:
    """One timed run: CPU in seconds, of the client, the workers (with children) and Redis."""

    engine: str
    workers: int
    workload: str
    round: int
    tasks: int
    seconds: float
    client_cpu: float
    worker_cpu: float
    redis_cpu: float
    machine_cpu: float = 0.0  # the whole machine's busy time, these included

    @property
    def per_second(self) -> float:
        return self.tasks / self.seconds

    @property
    def others(self) -> float:
        """How many cores other processes kept busy during the run, on average."""
        return max(self.machine_cpu - self.client_cpu - self.worker_cpu - self.redis_cpu, 0.0) / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Client and worker CPU per task, in milliseconds."""
        return (self.client_cpu + self.worker_cpu) / self.tasks * 1000

    @property
    def redis_ms(self) -> float:
        return self.redis_cpu / self.tasks * 1000


@dataclass
class Cell:
    """An engine, workload and setup: its timed runs over the rounds, or why it has none."""

    engine: str
    workload: str
    workers: int
    runs: list[Run] = field(default_factory=list)
    failure: str = ""

    @property
    def counted(self) -> list[Run]:
        """The runs the medians take: those during which the rest of the machine was quiet, if they
        are most of them; else all of them."""
        quiet = [run for run in self.runs if run.others <= NOISY]
        return quiet if len(quiet) > len(self.runs) / 2 else self.runs

    @property
    def per_second(self) -> float:
        return statistics.median(run.per_second for run in self.counted) if self.runs else 0.0

    @property
    def cpu_ms(self) -> float:
        return statistics.median(run.cpu_ms for run in self.counted) if self.runs else 0.0

    @property
    def redis_ms(self) -> float:
        return statistics.median(run.redis_ms for run in self.counted) if self.runs else 0.0


def run_size(cell: Cell, target: float) -> int:
    """Tasks for the next timed run of ``cell``: ``target`` seconds at its median rate so far
    (0, before its first run: the client sizes it from its warm-up)."""
    if not cell.runs:
        return 0
    return task_count(cell.per_second, target, low=MIN_TASKS, high=MAX_TASKS)


def rotated(items: Sequence[str], turn: int) -> list[str]:
    """``items`` starting at the ``turn``-th, so that no engine always goes first."""
    if not items:
        return []
    start = turn % len(items)
    return [*items[start:], *items[:start]]


def best_peers(cells: Sequence[Cell]) -> dict[tuple[str, int], Cell]:
    """The fastest peer (not go_async, not the lean worker) of each workload and setup that has one."""
    best: dict[tuple[str, int], Cell] = {}
    for cell in cells:
        if not ENGINES[cell.engine].peer or not cell.runs:
            continue
        key = (cell.workload, cell.workers)
        if key not in best or cell.per_second > best[key].per_second:
            best[key] = cell
    return best


def ratio(value: float, reference: float) -> str:
    """``value / reference`` as "1.9×" (two significant digits), or "n/a" without a reference."""
    if value <= 0 or reference <= 0:
        return "n/a"
    return f"{value / reference:.2g}×"


def latency_rows(latency: dict[str, list[float]]) -> list[tuple[str, float, float, int]]:
    """Each engine's p50 and p99 round trip in ms, and how many samples, fastest p50 first."""
    rows = [
        (engine, percentile(samples, 50), percentile(samples, 99), len(samples))
        for engine, samples in latency.items()
        if samples
    ]
    return sorted(rows, key=lambda row: row[1])


def _noise(cells: Sequence[Cell]) -> list[str]:
    """A line on how busy the rest of the machine was during the timed runs, if that was read."""
    others = [run.others for cell in cells for run in cell.runs if run.machine_cpu > 0]
    if not others:
        return []
    return [
        "Other processes on the machine kept "
        f"{statistics.median(others):.2f} cores busy during a timed run (median; {max(others):.2f} at most).",
        "",
    ]


def _setup(workers: int) -> str:
    return f"{workers} worker" + ("s" if workers > 1 else "")


def markdown(cells: Sequence[Cell], latency: dict[str, list[float]], meta: dict[str, Any]) -> str:
    """The report: the throughput table, the latency table, and how each engine was set up."""
    best = best_peers(cells)
    lean = {(cell.workload, cell.workers): cell for cell in cells if cell.engine == "lean" and cell.runs}
    lines = [
        "# Task-queue workers on Redis",
        "",
        f"{meta.get('date', '')}, {meta.get('cpu', '')}, {meta.get('os', '')}; Redis "
        f"{meta.get('redis', '')} on loopback. {meta.get('rounds', 0)} interleaved round(s); medians. "
        f"go_async as in its source tree: {meta.get('go_async_source', 'unknown')}.",
        "",
        f"The client keeps {IN_FLIGHT} tasks in flight; each worker process runs up to {CONCURRENCY} "
        "at once (or its engine's closest setting). Tasks/s: more is better. CPU ms/task: user+system "
        "CPU of the client and the worker processes (their children included), per task: less is better; "
        "Redis's own beside it. The ratios compare tasks/s with the fastest peer (go_async and the lean "
        "worker are not peers) and with the lean reference worker. Runs: the timed runs the medians "
        f"take; those during which other processes kept more than {NOISY} cores busy are left out when "
        "most runs were quiet.",
        "",
        *_noise(cells),
        "| workload | setup | engine | runs | tasks/run | tasks/s | vs best peer | vs lean | CPU ms/task "
        "| Redis ms/task |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload, workload_label in WORKLOADS.items():
        for workers in SETUPS:
            mine = [cell for cell in cells if cell.workload == workload and cell.workers == workers]
            mine.sort(key=lambda cell: -cell.per_second)
            top = best.get((workload, workers))
            floor = lean.get((workload, workers))
            for cell in mine:
                head = f"| {workload_label} | {_setup(workers)} | {ENGINES[cell.engine].label} "
                if not cell.runs:
                    lines.append(head + f"| 0 | n/a | {cell.failure or 'not run'} | | | | |")
                    continue
                counted = cell.counted
                runs = (
                    f"{len(counted)} of {len(cell.runs)}" if len(counted) < len(cell.runs) else len(counted)
                )
                tasks = statistics.median(run.tasks for run in counted)
                lines.append(
                    head
                    + f"| {runs} | {tasks:,.0f} | {cell.per_second:,.0f} "
                    + f"| {ratio(cell.per_second, top.per_second if top else 0)} "
                    + f"| {ratio(cell.per_second, floor.per_second if floor else 0)} "
                    + f"| {cell.cpu_ms:.3f} | {cell.redis_ms:.3f} |"
                )
    rows = latency_rows(latency)
    if rows:
        lines += [
            "",
            "## Latency: one task at a time",
            "",
            "The no-op task sent and awaited one at a time through one worker process; round trip "
            "in milliseconds, less is better.",
            "",
            "| engine | p50 ms | p99 ms | samples |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {ENGINES[name].label} | {p50:.2f} | {p99:.2f} | {count} |" for name, p50, p99, count in rows
        ]
    lines += [
        "",
        "## Setups",
        "",
        f"Result polling interval (arq, SAQ, taskiq; arq's queue polling too): {meta.get('poll', '')} s, "
        "where their defaults (0.2 to 0.5 s) would cap 100 tasks in flight at a few hundred a second. "
        "Per-task logging is off everywhere.",
        "",
    ]
    versions: dict[str, str] = meta.get("versions", {})
    for name, engine in ENGINES.items():
        if any(cell.engine == name for cell in cells):
            lines.append(f"- **{engine.label}** ({versions.get(name, '?')}): {engine.note}")
    return "\n".join(lines) + "\n"


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: one short round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: 5, quick: 1)")
    parser.add_argument("--target", type=float, help="seconds per timed run (default: 1.2, quick: 0.15)")
    parser.add_argument("--latency", type=int, help="tasks sent one at a time, per engine (default: 100)")
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help="comma-separated, from: " + ", ".join(ENGINES)
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: noop, cpu")
    parser.add_argument("--poll", type=float, default=DEFAULT_POLL, help="result polling interval (seconds)")
    parser.add_argument(
        "--out", type=Path, help="where to write workers.md/.json (default: here; quick: out/)"
    )
    options = parser.parse_args(argv)
    options.engines = [name for name in options.engines.split(",") if name]
    options.workloads = [name for name in options.workloads.split(",") if name]
    for chosen, known, what in (
        (options.engines, ENGINES, "engine"),
        (options.workloads, WORKLOADS, "workload"),
    ):
        unknown = [name for name in chosen if name not in known]
        if unknown or not chosen:
            parser.error(f"unknown {what}s {unknown}: choose from {', '.join(known)}")
    quick = options.quick
    options.rounds = options.rounds or (1 if quick else 5)
    options.target = options.target or (0.15 if quick else 1.2)
    options.latency = (10 if quick else 100) if options.latency is None else options.latency
    options.warm_up = 0.1 if quick else 0.4
    options.out = options.out or (HERE / "out" if quick else HERE)
    if options.rounds < 1 or options.target <= 0 or options.latency < 0 or options.poll <= 0:
        parser.error("--rounds, --target and --poll must be positive, --latency not negative")
    return options


def worker_commands(engine: str, bin_dir: Path, url: str, count: int) -> list[list[str]]:
    """The commands that start ``count`` worker processes of ``engine``, as its docs say."""
    python = str(bin_dir / "python")
    each = str(CONCURRENCY)
    if engine == "go_async":
        target = "benchmarks.worker_go_async:registry"
        return [[python, "-m", "go_async.worker", target, "--url", url, "--concurrency", each]] * count
    if engine == "lean":
        return [[python, str(HERE / "worker_lean.py"), "--url", url, "--concurrency", each]] * count
    if engine == "arq":  # arq's command line logs every job at INFO: run_worker, as its docs also show
        return [[python, str(HERE / "worker_arq.py")]] * count
    tool = str(bin_dir / engine)
    commands = {
        "dramatiq": [tool, "worker_dramatiq", "--processes", str(count), "--threads", each],
        "saq": [tool, "worker_saq.settings", "--workers", str(count)],
        "taskiq": [
            *[tool, "worker", "worker_taskiq:broker", "--workers", str(count)],
            *["--max-async-tasks", each, "--log-level", "WARNING"],
        ],
        "celery": [
            *[tool, "-A", "worker_celery", "worker", "--pool", "prefork", "--concurrency", str(count)],
            *["--loglevel", "WARNING"],
        ],
    }
    return [commands[engine]]


def bin_dir(engine: Engine) -> Path:
    return PEERS_VENVS / engine.name / "bin" if engine.peer else Path(sys.executable).parent


def prepare(engine: Engine) -> str:
    """Make the engine's environment if its pins changed; its packages' versions, as text."""
    if engine.peer:
        venv = PEERS_VENVS / engine.name
        stamp = venv / "pins.txt"
        wanted = "\n".join(engine.pins) + "\n"
        if not stamp.exists() or stamp.read_text() != wanted:
            PEERS_VENVS.mkdir(exist_ok=True)
            (PEERS_VENVS / ".gitignore").write_text("*\n")
            print(f"installing {' '.join(engine.pins)} in {venv}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *engine.pins]
            subprocess.run(pip, check=True)
            stamp.write_text(wanted)
    names = json.dumps(PACKAGES[engine.name])
    script = (
        "import importlib.metadata as m, json\n"
        f"def v(n):\n try: return m.version(n)\n except m.PackageNotFoundError: return ''\n"
        f"print(json.dumps({{n: v(n) for n in {names}}}))"
    )
    command = [str(bin_dir(engine) / "python"), "-c", script]
    found = subprocess.run(command, capture_output=True, text=True, check=False)
    versions: dict[str, str] = json.loads(found.stdout) if found.returncode == 0 else {}
    return ", ".join(f"{name} {version}" for name, version in versions.items() if version)


def _environment(url: str, poll: float) -> dict[str, str]:
    paths = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), URL_VARIABLE: url, POLL_VARIABLE: str(poll)}


@contextmanager
def started(engine: Engine, url: str, count: int, poll: float, log: Path) -> Iterator[list[int]]:
    """The engine's worker processes, each in a session of its own; their ids. Stopped on exit."""
    cwd = ROOT if engine.name == "go_async" else HERE
    processes: list[subprocess.Popen[bytes]] = []
    with log.open("ab") as sink:
        try:
            processes += [
                subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=_environment(url, poll),
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=sink,
                    start_new_session=True,
                )
                for command in worker_commands(engine.name, bin_dir(engine), url, count)
            ]
            _settle(processes)
            yield [process.pid for process in processes]
        finally:
            for process in processes:  # as a supervisor stops a worker: SIGTERM to its main process
                with suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 3  # then the group goes: taskiq takes 10 s to stop
            for process in processes:
                with suppress(subprocess.TimeoutExpired):
                    process.wait(max(deadline - time.monotonic(), 0.1))
                _signal_group(process, signal.SIGKILL)  # what is left of the group: a pool's children
                process.wait()


def _signal_group(process: subprocess.Popen[bytes], number: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, number)  # the group this script started, by its leader's id


def _settle(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 90.0) -> None:
    """Wait until the workers have imported and started: their CPU use stays low for 0.6 s."""
    deadline = time.monotonic() + timeout
    pids = [process.pid for process in processes]
    quiet, last = 0, tree_cpu_seconds(pids)
    while quiet < 3:
        time.sleep(0.2)
        for process in processes:
            if process.poll() is not None:
                msg = f"a worker exited with {process.returncode} before it was ready"
                raise RuntimeError(msg)
        now = tree_cpu_seconds(pids)
        quiet = quiet + 1 if now - last < 0.03 else 0
        last = now
        if time.monotonic() > deadline:
            msg = f"the workers were still busy starting after {timeout:.0f} s"
            raise RuntimeError(msg)


def run_client(engine: Engine, url: str, options: argparse.Namespace, **arguments: Any) -> dict[str, Any]:
    """One client process of the engine; what it measured."""
    command = [str(bin_dir(engine) / "python"), str(HERE / "worker_client.py"), engine.name, "--url", url]
    for name, value in arguments.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(
        command,
        cwd=HERE,
        env=_environment(url, options.poll),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])[-300:]
        msg = f"the client exited with {done.returncode}: {tail}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


class Redis:
    """The benchmark's Redis: its URL, its server's process id where it is local, and FLUSHALL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url)
        info: dict[str, Any] = self.client.info("server")
        self.pid = (
            int(info.get("process_id", 0)) if Path(f"/proc/{info.get('process_id', 0)}").exists() else 0
        )
        self.version = str(info.get("redis_version", "?"))

    def flush(self) -> None:
        self.client.flushall()


def measure(
    options: argparse.Namespace, redis: Redis, logs: Path
) -> tuple[list[Cell], dict[str, list[float]]]:
    """Every engine, setup and workload, round after round; the cells and the latency samples."""
    engines = [ENGINES[name] for name in options.engines]
    cells = {
        (engine.name, workload, workers): Cell(engine.name, workload, workers)
        for engine in engines
        for workers in SETUPS
        for workload in options.workloads
    }
    latency: dict[str, list[float]] = {engine.name: [] for engine in engines}
    per_round = -(-options.latency // options.rounds)
    for turn in range(options.rounds):
        for name in rotated(options.engines, turn):
            engine = ENGINES[name]
            for workers in rotated([str(count) for count in SETUPS], turn):
                count = int(workers)
                mine = [cells[name, workload, count] for workload in options.workloads]
                if any(cell.failure for cell in mine):
                    continue
                order = rotated(options.workloads, turn)
                started_at = time.perf_counter()
                try:
                    redis.flush()
                    with started(engine, redis.url, count, options.poll, logs / f"{name}.log") as pids:
                        report = run_client(
                            engine,
                            redis.url,
                            options,
                            workloads=",".join(order),
                            tasks=",".join(
                                str(run_size(cells[name, workload, count], options.target))
                                for workload in order
                            ),
                            target=options.target,
                            warm_up=options.warm_up if turn == 0 else options.warm_up / 2,
                            latency=per_round if count == 1 else 0,
                            watch=",".join(map(str, pids)),
                            redis_pid=redis.pid,
                        )
                except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as error:
                    for cell in mine:
                        cell.failure = str(error).replace("|", "/")[:200]
                    print(f"round {turn + 1}: {name}, {count} worker(s): FAILED: {error}", flush=True)
                    continue
                for raw in report["runs"]:
                    run = Run(
                        name,
                        count,
                        raw["workload"],
                        turn,
                        raw["tasks"],
                        raw["seconds"],
                        raw["client_cpu"],
                        raw["worker_cpu"],
                        raw["redis_cpu"],
                        raw.get("machine_cpu", 0.0),
                    )
                    cells[name, run.workload, count].runs.append(run)
                latency[name] += report["latency_ms"]
                summary = ", ".join(
                    f"{raw['workload']} {raw['tasks'] / raw['seconds']:,.0f}/s" for raw in report["runs"]
                )
                took = time.perf_counter() - started_at
                print(f"round {turn + 1}: {name}, {count} worker(s): {summary} ({took:.1f} s)", flush=True)
    return list(cells.values()), latency


def go_async_source() -> str:
    """go_async's commit, and whether src/ differs from it: its rows measure the working tree."""
    read_only = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # status must not even refresh the index
    try:
        head, changes = (
            subprocess.run(
                ["git", *command], cwd=ROOT, env=read_only, capture_output=True, text=True, check=True
            ).stdout.strip()
            for command in (["rev-parse", "--short", "HEAD"], ["status", "--porcelain", "--", "src"])
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"commit {head}" + (" with uncommitted changes in src/" if changes else "")


def machine() -> dict[str, str]:
    cpu = cpu_name()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: Sequence[str] | None = None) -> None:
    options = parse(argv)
    started_at = time.perf_counter()
    versions: dict[str, str] = {}
    for name in list(options.engines):
        try:
            versions[name] = prepare(ENGINES[name])
        except (subprocess.CalledProcessError, OSError) as error:
            print(f"{name}: could not install its environment ({error}); skipped", flush=True)
            options.engines.remove(name)
    import distributed  # noqa: PLC0415 - go_async's distributed benchmark starts redis-server

    with distributed._redis() as url, tempfile.TemporaryDirectory() as folder:
        if url is None:
            sys.exit("no Redis: install redis-server or set GO_ASYNC_TEST_REDIS_URL")
        redis = Redis(url)
        cells, latency = measure(options, redis, Path(folder))
        meta = {
            **machine(),
            "redis": redis.version,
            "go_async_source": go_async_source(),
            "rounds": options.rounds,
            "poll": options.poll,
            "versions": versions,
            "in_flight": IN_FLIGHT,
            "concurrency": CONCURRENCY,
            "target_seconds": options.target,
            "minutes": round((time.perf_counter() - started_at) / 60, 1),
        }
        if any(cell.failure for cell in cells):
            for log in sorted(Path(folder).glob("*.log")):
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                if tail:
                    print(f"--- the end of {log.name}:", *tail, sep="\n")
    options.out.mkdir(parents=True, exist_ok=True)
    report = markdown(cells, latency, meta)
    (options.out / "workers.md").write_text(report)
    raw = {
        "meta": meta,
        "cells": [
            {
                "engine": cell.engine,
                "workload": cell.workload,
                "workers": cell.workers,
                "failure": cell.failure,
            }
            | {
                "tasks_per_second": cell.per_second,
                "cpu_ms_per_task": cell.cpu_ms,
                "redis_ms_per_task": cell.redis_ms,
            }
            for cell in cells
        ],
        "runs": [asdict(run) for cell in cells for run in cell.runs],
        "latency_ms": latency,
    }
    (options.out / "workers.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(report)
    print(f"wrote {options.out / 'workers.md'} in {meta['minutes']} minutes")


if __name__ == "__main__":
    main()
