"""Run the benchmark: every contender, workload, limit and size, each case in its own process.

    python benchmarks/run.py            # the full run (20 to 25 minutes on 2 cores)
    python benchmarks/run.py --quick    # a smoke run (about a minute): proves the script works

Needs the peers and the chart: ``pip install -e . --group bench`` (pip 25.1 or newer).
Writes a Markdown report, the raw figures as JSON and, when matplotlib is
installed, a PNG chart. Nothing here asserts anything about time.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import distributed
from contenders import BASELINE, CONTENDERS, FEATURE_COSTS, GO_ASYNC_MAPS, WORKLOADS

HERE = Path(__file__).resolve().parent
LIMITS: tuple[int | None, ...] = (None, 100, 1)
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000,)
HEADLINE_SIZE = 100_000
PEERS = ("anyio", "aiometer", "aiojobs", "asyncio-pool")
DRAIN_SENDS = 1_000_000
# Feature-cost cases run interleaved with go_async's, round after round, so
# that a burst of noise on a shared machine hits both sides of a ratio; and
# in a rotated order each round, as the first case after a change of
# workload ran a few percent slower, whatever it was.
COST_ROUNDS = 5
# The contenders only the map section needs (asyncio-pool's map runs for the
# tables anyway). Each case is a process, so they run at 10,000 tasks, and at
# 100,000 only on these workloads; never on uvloop.
MAP_ONLY = (*GO_ASYNC_MAPS, "aiometer_run_all")
MAP_WORKLOADS = ("noop", "sleep0")


@dataclass
class Case:
    loop: str
    workload: str
    limit: int | None
    size: int
    contender: str
    ns_per_task: list[float] = field(default_factory=list)
    peak_mb: float | None = None
    skipped: str = ""
    round: int = 0  # which interleaved round of feature costs, if one

    @property
    def median(self) -> float:
        return statistics.median(self.ns_per_task)


def plan(*, quick: bool) -> list[Case]:
    """The cases of a run, smallest size first so that larger ones can be projected."""
    sizes = QUICK_SIZES if quick else FULL_SIZES
    loops = ("asyncio",) if quick else ("asyncio", "uvloop")
    return [
        Case(loop, workload, limit, size, key)
        for loop in loops
        for size in sizes
        for workload in WORKLOADS
        for limit in LIMITS
        for key, contender in CONTENDERS.items()
        if limit in contender.limits
        and key not in FEATURE_COSTS
        and (quick or in_full_run(loop, size, limit, key, workload=workload))
    ]


def cost_plan(*, quick: bool) -> list[Case]:
    """The feature-cost cases: go_async, an unused retry and each FEATURE_COSTS, round after round.

    The first round runs them in that order; each later round starts one
    place further along, so that no contender always runs first.
    """
    size = QUICK_SIZES[0] if quick else HEADLINE_SIZE
    keys = ("go_async", "go_async_retry", *FEATURE_COSTS)
    return [
        Case("asyncio", workload, limit, size, key, round=number)
        for number in range(1, COST_ROUNDS + 1)
        for workload in WORKLOADS
        for limit in (None, 100)
        for key in keys[number - 1 :] + keys[: number - 1]
        if limit in CONTENDERS[key].limits
    ]


def in_full_run(loop: str, size: int, limit: int | None, key: str, *, workload: str) -> bool:
    """Whether the full run measures a case: everything would take hours, so it chooses.

    Every case at 10,000 tasks. At 100,000, every contender with no limit and
    with limit 100 (among them the running pool and the peers it is judged
    against), and for limit 1 (where all run one at a time) go_async and the
    hand-written loop. At 1,000,000, plain go_async, the floor and the
    hand-written loop, and the running pool with a bounded queue on no-op
    tasks, for its memory. On uvloop, the 100,000 cases with no limit and
    limit 100, but for anyio and aiometer, whose own Python code dominates.
    The contenders only the map section needs (MAP_ONLY, all at limit 100)
    run at 10,000 tasks, and at 100,000 for MAP_WORKLOADS, on asyncio only.
    """
    ours = key in ("go_async", "go_async_drain", "go_async_retry", "sequential", "workers")
    if key in MAP_ONLY:
        return loop == "asyncio" and (
            size == FULL_SIZES[0] or (size == HEADLINE_SIZE and workload in MAP_WORKLOADS)
        )
    if loop == "uvloop":
        return size == HEADLINE_SIZE and limit != 1 and key not in ("anyio", "aiometer")
    if size == FULL_SIZES[0]:
        return True
    if size == HEADLINE_SIZE:
        return limit != 1 or ours
    if key == "go_async_running_bounded":
        return workload == "noop" and limit == 100
    return limit != 1 and key in ("go_async", "sequential", "workers")


def a_target_needs(case: Case) -> bool:
    """Whether a target row is judged on this case, so that it runs however long it is projected to take.

    The running pool's lead is judged on no-op tasks at limit 100, and its
    flat memory needs its bounded queue at every size up to 1,000,000; the
    map section gives go_async's two ``map``s on no-op tasks at limit 100.
    """
    return (
        case.loop == "asyncio"
        and case.workload == "noop"
        and case.limit == 100
        and case.contender in ("go_async_running", "go_async_running_bounded", *GO_ASYNC_MAPS)
    )


def run_case(case: Case, reps: int, python: str) -> None:
    limit = "none" if case.limit is None else str(case.limit)
    argv = [python, str(HERE / "case.py"), case.contender, case.workload, limit, str(case.size), str(reps)]
    env = {
        key: value for key, value in os.environ.items() if key != "STAGE"
    }  # STAGE=test would force limit 1
    if case.contender == "go_async_before":
        source = baseline_source()
        if isinstance(source, str):
            case.skipped = f"skipped: the source of {BASELINE} is not available ({source})"
            return
        env["PYTHONPATH"] = str(source)  # ahead of the installed go_async
    done = subprocess.run([*argv, case.loop], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        case.skipped = (
            f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        )
        return
    figures = json.loads(done.stdout)
    case.ns_per_task = figures["ns_per_task"]
    case.peak_mb = figures["peak_mb"]


def projected_seconds(
    case: Case, done: dict[tuple[str, str, int | None, str, int], Case], reps: int
) -> float:
    """Seconds the case should take, from the same case at the largest smaller size (0 if none)."""
    smaller = [
        c
        for (loop, workload, limit, key, size), c in done.items()
        if (loop, workload, limit, key) == (case.loop, case.workload, case.limit, case.contender)
        and size < case.size
        and c.ns_per_task
    ]
    if not smaller:
        return 0.0
    base = max(smaller, key=lambda c: c.size)
    return base.median * case.size * reps / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one small size, asyncio loop only")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per case (after a warm-up)")
    parser.add_argument(
        "--max-case-seconds",
        type=float,
        default=40.0,
        help="skip a case whose projected time exceeds this (0: never skip); those a target needs run",
    )
    parser.add_argument("--out", type=Path, help="where to write results.md/.json/.png")
    args = parser.parse_args()
    if args.reps < 5:
        parser.error(f"--reps must be at least 5 (medians of fewer are noise), got {args.reps}")
    out = args.out or (HERE / "out" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    cases, costs = plan(quick=args.quick), cost_plan(quick=args.quick)
    done: dict[tuple[str, str, int | None, str, int], Case] = {}
    for number, case in enumerate(cases + costs, start=1):
        projection = projected_seconds(case, done, args.reps)
        if (
            case.round == 0
            and args.max_case_seconds
            and projection > args.max_case_seconds
            and not a_target_needs(case)
        ):
            case.skipped = f"skipped: projected {projection:.0f} s"
        else:
            run_case(case, args.reps, sys.executable)
        if case.round == 0:
            done[(case.loop, case.workload, case.limit, case.contender, case.size)] = case
        figure = case.skipped or f"{case.median:,.0f} ns/task, {case.peak_mb:.1f} MB"
        limit = "none" if case.limit is None else case.limit
        where = f" (feature costs, round {case.round})" if case.round else ""
        print(
            f"[{number}/{len(cases) + len(costs)}] {case.loop} {case.workload} limit={limit} "
            f"n={case.size:,} {case.contender}{where}: {figure}",
            flush=True,
        )
    drain_ns = drain_send_ns(args.reps)
    print("through workers: a local pool, the in-memory remote, one and two worker processes", flush=True)
    workers = distributed.measure(quick=args.quick, reps=args.reps)
    elapsed = time.monotonic() - started

    from report import chart, markdown  # noqa: PLC0415 - only once there is something to report

    (out / "results.json").write_text(
        json.dumps(
            {
                "cases": [asdict(c) for c in cases],
                "feature_costs": [asdict(c) for c in costs],
                "drain_send_ns": drain_ns,
                "through_workers": [asdict(row) for row in workers],
                "machine": machine(),
            },
            indent=1,
        )
    )
    report = markdown(cases, drain_ns, machine(), elapsed, quick=args.quick, costs=costs, workers=workers)
    (out / "results.md").write_text(report)
    print(f"wrote {out / 'results.md'} in {elapsed / 60:.1f} minutes")
    try:
        chart(cases, out / "results.png")
    except ModuleNotFoundError as missing:
        print(f"no chart: {missing.name} is missing; pip install -e . --group bench")
    else:
        print(f"wrote {out / 'results.png'}")


@cache
def baseline_source() -> Path | str:
    """The ``src`` folder of the BASELINE commit, extracted once; or why it could not be."""
    folder = Path(tempfile.mkdtemp(prefix="go_async_baseline_"))
    archive = folder / "src.tar"
    try:
        with archive.open("wb") as out:
            subprocess.run(
                ["git", "-C", str(HERE.parent), "archive", BASELINE, "src"],
                stdout=out,
                stderr=subprocess.PIPE,
                check=True,
            )
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    except subprocess.CalledProcessError as error:
        return error.stderr.decode(errors="replace").strip() or f"git exited with {error.returncode}"
    except (OSError, tarfile.TarError) as error:
        return str(error).strip() or type(error).__name__
    return folder / "src"


def drain_send_ns(reps: int) -> list[float]:
    argv = [
        sys.executable,
        str(HERE / "case.py"),
        "drain_send",
        "-",
        "none",
        str(DRAIN_SENDS),
        str(reps),
        "asyncio",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    result: list[float] = json.loads(done.stdout)["ns_per_task"]
    return result


def cpu_name() -> str:
    """The processor's model name (Linux), else what ``platform`` knows of it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine() -> dict[str, str]:
    cpu = cpu_name()
    versions = {"python": platform.python_version(), "go_async": importlib.metadata.version("go-async")}
    for name in (*PEERS, "uvloop"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": f"{platform.system()} {platform.release()}",
        "versions": ", ".join(f"{name} {version}" for name, version in versions.items()),
        "date": time.strftime("%Y-%m-%d"),
    }


if __name__ == "__main__":
    main()
