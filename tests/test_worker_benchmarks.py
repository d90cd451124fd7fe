"""The worker benchmark's pure parts: sizes, ratios, the report and the command lines.

Nothing here installs a peer, starts a worker or times anything; the benchmark
itself is ``python benchmarks/workers.py --quick``.
"""

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import worker_client
import worker_common
import workers
from workers import Cell, Run


def run(engine: str, workload: str, workers_: int, rate: float, cpu_ms: float = 0.5, turn: int = 0) -> Run:
    tasks = 1_000
    seconds = tasks / rate
    cpu = cpu_ms * tasks / 1000
    return Run(engine, workers_, workload, turn, tasks, seconds, cpu / 4, cpu * 3 / 4, 0.1)


def cell(engine: str, rates: list[float], workload: str = "noop", workers_: int = 1) -> Cell:
    return Cell(engine, workload, workers_, [run(engine, workload, workers_, rate) for rate in rates])


def test_a_run_gives_rates_and_cpu_per_task_in_ms() -> None:
    one = Run("lean", 1, "noop", 0, tasks=2_000, seconds=0.5, client_cpu=0.2, worker_cpu=0.6, redis_cpu=0.1)
    assert one.per_second == 4_000
    assert one.cpu_ms == pytest.approx(0.4)
    assert one.redis_ms == pytest.approx(0.05)


def test_a_cell_takes_medians_over_rounds() -> None:
    mine = cell("arq", [100.0, 300.0, 200.0])
    assert mine.per_second == pytest.approx(200.0)
    assert mine.cpu_ms == pytest.approx(0.5)
    assert Cell("arq", "noop", 1).per_second == 0.0


def test_the_best_peer_is_the_fastest_engine_that_is_neither_go_async_nor_the_lean_worker() -> None:
    cells = [
        cell("go_async", [9_000.0]),
        cell("lean", [12_000.0]),
        cell("arq", [500.0]),
        cell("saq", [2_000.0]),
        cell("dramatiq", [5_000.0], workers_=2),
        Cell("celery", "noop", 1, failure="no broker"),
    ]
    best = workers.best_peers(cells)
    assert best["noop", 1].engine == "saq"
    assert best["noop", 2].engine == "dramatiq"
    assert ("cpu", 1) not in best


@pytest.mark.parametrize(
    ("value", "reference", "text"),
    [(9_000, 2_000, "4.5×"), (2_000, 2_000, "1×"), (1_234, 10_000, "0.12×"), (50_000, 1_000, "50×")],
)
def test_ratios_have_two_significant_digits(value: float, reference: float, text: str) -> None:
    assert workers.ratio(value, reference) == text


def test_a_ratio_without_a_reference_says_so() -> None:
    assert workers.ratio(1_000, 0) == "n/a"
    assert workers.ratio(0, 1_000) == "n/a"


def test_the_report_sorts_each_group_by_speed_and_gives_both_ratios() -> None:
    cells = [
        cell("arq", [1_000.0]),
        cell("go_async", [6_000.0]),
        cell("lean", [12_000.0]),
        cell("saq", [2_000.0]),
        Cell("celery", "noop", 1, failure="the client exited with 1: boom"),
        cell("saq", [800.0], workload="cpu", workers_=2),
    ]
    latency = {"go_async": [1.0, 2.0, 3.0], "saq": [0.5] * 10, "arq": []}
    meta = {"date": "2026-11-30", "rounds": 5, "poll": 0.01, "versions": {"saq": "saq 0.26.4"}}
    text = workers.markdown(cells, latency, meta)
    rows = [line for line in text.splitlines() if line.startswith("| no-op | 1 worker |")]
    assert [row.split(" | ")[2] for row in rows] == ["lean worker", "go_async", "SAQ", "arq", "Celery"]
    assert rows[1] == "| no-op | 1 worker | go_async | 1 | 1,000 | 6,000 | 3× | 0.5× | 0.500 | 0.100 |"
    assert rows[2].startswith("| no-op | 1 worker | SAQ | 1 | 1,000 | 2,000 | 1× | 0.17× |")
    assert "boom" in rows[4]
    cpu = [line for line in text.splitlines() if line.startswith("| 1 ms of CPU | 2 workers |")]
    assert cpu == ["| 1 ms of CPU | 2 workers | SAQ | 1 | 1,000 | 800 | 1× | n/a | 0.500 | 0.100 |"]
    assert "| SAQ | 0.50 | 0.50 | 10 |" in text
    assert "| go_async | 2.00 | 3.00 | 3 |" in text
    assert "| arq |" not in text.split("## Latency")[1].split("## Setups")[0]
    assert "- **SAQ** (saq 0.26.4)" in text
    assert "**taskiq**" not in text  # only the engines measured are described
    assert "Other processes" not in text  # the runs above did not read the machine's CPU


def test_the_report_says_how_busy_the_rest_of_the_machine_was() -> None:
    quiet = Run("lean", 1, "noop", 0, 1_000, 1.0, 0.2, 0.7, 0.1, machine_cpu=1.05)
    busy = Run("lean", 1, "noop", 1, 1_000, 2.0, 0.2, 0.7, 0.1, machine_cpu=2.0)
    assert quiet.others == pytest.approx(0.05)
    assert busy.others == pytest.approx(0.5)
    text = workers.markdown([Cell("lean", "noop", 1, [quiet, busy, quiet])], {}, {})
    assert "kept 0.05 cores busy during a timed run (median; 0.50 at most)" in text


def test_latency_rows_put_the_fastest_first() -> None:
    rows = workers.latency_rows({"a": [3.0, 1.0, 2.0], "b": [0.5, 0.7], "c": []})
    assert rows == [("b", 0.5, 0.7, 2), ("a", 2.0, 3.0, 3)]


@pytest.mark.parametrize(
    ("samples", "percent", "expected"),
    [([5.0], 50, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), (list(map(float, range(1, 101))), 99, 99.0)],
)
def test_percentiles_are_nearest_rank(samples: list[float], percent: float, expected: float) -> None:
    assert worker_client.percentile(samples, percent) == expected


@pytest.mark.parametrize(
    ("rate", "seconds", "expected"),
    [
        (12_345.0, 1.0, 12_000),
        (987.0, 1.5, 1_500),
        (40.0, 1.0, 100),
        (10_000_000.0, 2.0, 60_000),
        (777.0, 0.1, 100),
    ],
)
def test_a_timed_run_is_sized_to_two_significant_digits_within_bounds(
    rate: float, seconds: float, expected: int
) -> None:
    assert worker_client.task_count(rate, seconds, low=100, high=60_000) == expected


def test_rounds_rotate_who_goes_first() -> None:
    assert workers.rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert workers.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert workers.rotated([], 3) == []


def test_the_full_run_by_default_and_a_short_one_when_quick() -> None:
    full = workers.parse([])
    assert (full.rounds, full.target, full.latency, full.out) == (5, 1.2, 100, workers.HERE)
    assert full.engines == list(workers.ENGINES)
    assert full.workloads == ["noop", "cpu"]
    quick = workers.parse(["--quick", "--engines", "lean,go_async", "--workloads", "cpu"])
    assert (quick.rounds, quick.target, quick.latency, quick.out) == (1, 0.15, 10, workers.HERE / "out")
    assert (quick.engines, quick.workloads) == (["lean", "go_async"], ["cpu"])
    assert workers.parse(["--quick", "--rounds", "3", "--latency", "0"]).rounds == 3


@pytest.mark.parametrize(
    "argv",
    [["--engines", "rq"], ["--engines", ""], ["--workloads", "sleep"], ["--rounds", "-1"], ["--poll", "0"]],
)
def test_wrong_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        workers.parse(argv)


def test_every_engine_has_a_note_packages_and_a_client() -> None:
    assert set(workers.PACKAGES) == set(workers.ENGINES) == set(worker_client.ENGINES)
    assert all(engine.note for engine in workers.ENGINES.values())
    assert {name for name, engine in workers.ENGINES.items() if not engine.peer} == {"go_async", "lean"}


def test_go_async_runs_one_process_per_worker_through_its_own_command_line() -> None:
    commands = workers.worker_commands("go_async", Path("/venv/bin"), "redis://h/0", 2)
    expected = ["/venv/bin/python", "-m", "go_async.worker", "benchmarks.worker_go_async:registry"]
    assert commands == [[*expected, "--url", "redis://h/0", "--concurrency", "10"]] * 2


@pytest.mark.parametrize(
    ("engine", "count", "processes", "flag"),
    [
        ("lean", 2, 2, "--concurrency"),
        ("arq", 2, 2, "worker_arq.py"),
        ("dramatiq", 2, 1, "--processes"),
        ("saq", 2, 1, "--workers"),
        ("taskiq", 2, 1, "--workers"),
        ("celery", 2, 1, "prefork"),
    ],
)
def test_each_engine_starts_its_workers_its_own_way(
    engine: str, count: int, processes: int, flag: str
) -> None:
    commands = workers.worker_commands(engine, Path("/venv/bin"), "redis://h/0", count)
    assert len(commands) == processes
    assert any(flag in part for part in commands[0])
    if processes == 1:
        assert str(count) in commands[0]


def test_the_client_needs_one_size_per_workload() -> None:
    options = worker_client.parse(["lean", "--url", "redis://h/0", "--watch", "1,2"])
    assert (options.workloads, options.tasks, options.watch) == (["noop", "cpu"], [0, 0], [1, 2])
    assert worker_client.parse(["arq", "--url", "u", "--workloads", "cpu", "--tasks", "500"]).tasks == [500]
    with pytest.raises(SystemExit):
        worker_client.parse(["lean", "--url", "u", "--tasks", "1"])
    with pytest.raises(SystemExit):
        worker_client.parse(["lean", "--url", "u", "--workloads", "sleep"])


def test_the_async_window_keeps_at_most_so_many_in_flight_and_keeps_order() -> None:
    now, most = 0, 0

    async def call(value: int) -> int:
        nonlocal now, most
        now += 1
        most = max(most, now)
        await asyncio.sleep(0)
        now -= 1
        return value * 2

    assert asyncio.run(worker_client.windowed(call, list(range(250)), 7)) == [
        value * 2 for value in range(250)
    ]
    assert most == 7


def test_the_sync_window_waits_on_the_oldest_before_sending_more() -> None:
    class Fake(worker_client.SyncWindow):
        def __init__(self) -> None:
            self.waiting: list[int] = []
            self.most = 0

        def send(self, task: str, value: int) -> Any:
            self.waiting.append(value)
            self.most = max(self.most, len(self.waiting))
            return value

        def wait(self, sent: Any) -> int:
            assert self.waiting.pop(0) == sent
            return int(sent) + 1

    fake = Fake()
    assert fake.map("echo", list(range(300))) == list(range(1, 301))
    assert fake.most == worker_client.IN_FLIGHT


def test_the_cpu_workload_is_the_same_loop_as_the_distributed_benchmark() -> None:
    import remote_work  # noqa: PLC0415 - imports go_async.distributed

    assert worker_common.SPIN_STEPS == remote_work.SPIN_STEPS
    assert worker_common.spin(3) == asyncio.run(remote_work.spin.fn(3))
    assert worker_common.echo(7) == 7


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_cpu_time_counts_a_process_and_ignores_one_that_is_gone() -> None:
    worker_common.spin(0)
    assert worker_common.tree_cpu_seconds([os.getpid()]) > 0
    assert worker_common.tree_cpu_seconds([2**22 + 12345]) == 0
    assert worker_common.tree_size([os.getpid()]) >= 1


def test_runs_on_a_busy_machine_are_left_out_while_most_runs_were_quiet() -> None:
    def timed(rate: float, busy: float) -> Run:
        return Run(
            "arq", 1, "noop", 0, 1_000, 1_000 / rate, 0.3, 0.6, 0.1, machine_cpu=1.0 + busy * 1_000 / rate
        )

    mostly_quiet = Cell(
        "arq", "noop", 1, [timed(1_000, 0), timed(400, 0.9), timed(1_100, 0.1), timed(300, 1.0)]
    )
    assert mostly_quiet.per_second == pytest.approx(700)  # half of them busy: all four count
    mostly_quiet.runs.append(timed(900, 0))
    assert [run.per_second for run in mostly_quiet.counted] == pytest.approx([1_000, 1_100, 900])
    assert mostly_quiet.per_second == pytest.approx(1_000)
    row = next(line for line in workers.markdown([mostly_quiet], {}, {}).splitlines() if "| arq |" in line)
    assert row.startswith("| no-op | 1 worker | arq | 3 of 5 | 1,000 | 1,000 |")


def test_later_runs_are_sized_from_the_median_rate_so_far() -> None:
    mine = cell("saq", [1_000.0, 3_000.0, 2_000.0])
    assert workers.run_size(mine, 1.2) == 2_400
    assert workers.run_size(Cell("saq", "noop", 1), 1.2) == 0  # the client sizes the first from its warm-up
