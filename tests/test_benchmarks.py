"""The benchmark's plan and report: what it measures and how it judges the targets.

Timing itself is never tested; CI runs `benchmarks/run.py --quick` to prove the
script works end to end.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import case as one_case
import distributed
import report
import run
from contenders import (
    BASELINE,
    CONTENDERS,
    FEATURE_COSTS,
    GO_ASYNC_MAPS,
    MAP_PEERS,
    RUNNING_PEERS,
    WORKLOADS,
    Contender,
    Work,
)
from report import Figures, map_section, markdown, targets
from run import Case, plan

MACHINE = {"date": "2026-11-22", "cpu": "a CPU, 2 cores", "os": "Linux", "versions": "python 3.11"}


def case(workload: str, limit: int | None, key: str, ns: float, size: int = 100_000, mb: float = 1.0) -> Case:
    return Case("asyncio", workload, limit, size, key, ns_per_task=[ns] * 5, peak_mb=mb)


def test_the_quick_plan_covers_every_contender_workload_and_limit() -> None:
    """The CI smoke run reaches every code path the full run uses."""
    measured = {(c.workload, c.limit, c.contender) for c in plan(quick=True) + run.cost_plan(quick=True)}
    expected = {(w, limit, key) for w in WORKLOADS for key, c in CONTENDERS.items() for limit in c.limits}
    assert measured == expected


def test_the_full_plan_measures_what_the_targets_need() -> None:
    """Everything at 10,000; every peer at 100,000 with limit 100; go_async at every size."""
    cases = {(c.loop, c.size, c.workload, c.limit, c.contender) for c in plan(quick=False)}
    for key, contender in CONTENDERS.items():
        if key in FEATURE_COSTS:
            continue
        for workload in WORKLOADS:
            for limit in contender.limits:
                assert ("asyncio", 10_000, workload, limit, key) in cases
            if 100 in contender.limits and (key not in run.MAP_ONLY or workload in run.MAP_WORKLOADS):
                assert ("asyncio", 100_000, workload, 100, key) in cases
    for size in (10_000, 100_000, 1_000_000):
        assert ("asyncio", size, "noop", 100, "go_async") in cases
        assert ("asyncio", size, "noop", 100, "go_async_running_bounded") in cases  # its memory
    for key in ("go_async_running", *RUNNING_PEERS):
        assert ("asyncio", 100_000, "noop", 100, key) in cases
    assert ("uvloop", 100_000, "sleep0", 100, "go_async") in cases
    for workload in ("noop", "sleep0"):  # the map section, at the headline size
        for key in (*GO_ASYNC_MAPS, *MAP_PEERS):
            assert ("asyncio", 100_000, workload, 100, key) in cases
    at_a_million = {(workload, limit, key) for _, size, workload, limit, key in cases if size == 1_000_000}
    assert ("sleep0", 100, "go_async_running_bounded") not in at_a_million
    assert not {key for _, _, key in at_a_million} & {"go_async_running", *RUNNING_PEERS}


def test_the_contenders_only_the_map_section_needs_add_few_cases() -> None:
    """Each case is a process: three per contender at 10,000 tasks, two at 100,000, none on uvloop."""
    added = [c for c in plan(quick=False) if c.contender in run.MAP_ONLY]
    assert {c.contender for c in added} == {*GO_ASYNC_MAPS, "aiometer_run_all"}
    assert {(c.loop, c.limit) for c in added} == {("asyncio", 100)}
    assert sorted((c.size, c.workload) for c in added if c.contender == "go_async_map") == [
        (10_000, "collect"),
        (10_000, "noop"),
        (10_000, "sleep0"),
        (100_000, "noop"),
        (100_000, "sleep0"),
    ]
    assert len(added) == 15


def test_the_cases_a_target_needs_run_whatever_their_projection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The bounded running pool's 1,000,000 no-op tasks are measured even if projected slow."""
    ran: list[str] = []

    def fake_run(case: Case, reps: int, python: str) -> None:
        ran.append(case.contender)
        case.ns_per_task, case.peak_mb = [1_000_000.0] * reps, 1.0

    slow = [
        Case("asyncio", "noop", 100, size, key)
        for size in (10_000, 1_000_000)
        for key in ("go_async_retry", "go_async_running_bounded")
    ]
    monkeypatch.setattr(run, "plan", lambda *, quick: slow)
    monkeypatch.setattr(run, "cost_plan", lambda *, quick: [])
    monkeypatch.setattr(run, "run_case", fake_run)
    monkeypatch.setattr(run, "drain_send_ns", lambda reps: [100.0] * reps)
    monkeypatch.setattr(distributed, "measure", lambda *, quick, reps: [])
    monkeypatch.setattr(report, "chart", lambda cases, path: None)
    monkeypatch.setattr(sys, "argv", ["run.py", "--out", str(tmp_path)])
    run.main()
    assert ran == ["go_async_retry", "go_async_running_bounded", "go_async_running_bounded"]
    assert slow[2].skipped.startswith("skipped: projected")


@pytest.mark.parametrize(("closest_peer_ns", "met"), [(8_000.0, "✓"), (7_900.0, "✗")])
def test_the_lead_over_peers_is_judged_against_the_fastest_peer(closest_peer_ns: float, met: str) -> None:
    """8x on no-op means 8x less time than the fastest peer, which the report names."""
    cases = [
        case("noop", 100, "go_async", 1_000),
        case("noop", 100, "workers", 200),
        case("noop", 100, "aiojobs", 20_000),
        case("noop", 100, "asyncio_pool_spawn", closest_peer_ns),
    ]
    [row] = [r for r in targets(Figures(cases), []) if "noop: ≥ 8×" in r]
    bound = closest_peer_ns / 200
    assert (
        f"{closest_peer_ns / 1_000:.1f}× (closest: asyncio-pool spawn; a hand-written loop: {bound:.1f}×)"
        in row
    )
    assert row.endswith(f"| {met} |")


@pytest.mark.parametrize(("closest_peer_ns", "met"), [(5_000.0, "✓"), (4_900.0, "✗")])
def test_the_running_pool_is_judged_against_the_fastest_of_its_peers(
    closest_peer_ns: float, met: str
) -> None:
    """5x less time per task than the fastest of TaskGroup + Semaphore, aiojobs and asyncio-pool spawn."""
    cases = [
        case("noop", 100, "go_async_running", 1_000),
        case("noop", 100, "go_async_running_bounded", 1_250),
        case("noop", 100, "tg_semaphore", closest_peer_ns),
        case("noop", 100, "aiojobs", 20_000),
        case("noop", 100, "asyncio_pool_spawn", 9_000),
        case("noop", 100, "asyncio_pool_map", 100),  # not a peer of the running pool
    ]
    [row] = [r for r in targets(Figures(cases), []) if r.startswith("| running pool (`submit`)")]
    assert row == (
        "| running pool (`submit`), limit 100, noop: ≥ 5× less time per task than the fastest of "
        "TaskGroup + Semaphore, aiojobs spawn, asyncio-pool spawn | "
        f"{closest_peer_ns / 1_000:.1f}× (go_async 1,000 ns, TaskGroup + Semaphore {closest_peer_ns:,.0f} "
        f"ns; with a queue of 1,000: {closest_peer_ns / 1_250:.1f}×) | {met} |"
    )
    [missing] = [r for r in targets(Figures(cases[2:]), []) if r.startswith("| running pool (`submit`)")]
    assert missing.endswith("| not measured | — |")


@pytest.mark.parametrize(("peak_at_a_million", "met"), [(2.5, "✓"), (2.6, "✗")])
def test_the_bounded_running_pools_memory_is_judged_flat(peak_at_a_million: float, met: str) -> None:
    """Flat: no larger size's peak above 1.5 times the smallest size's plus 1 MB."""
    cases = [
        case("noop", 100, "go_async_running_bounded", 1_000, size=size, mb=mb)
        for size, mb in ((10_000, 1.0), (100_000, 0.9), (1_000_000, peak_at_a_million))
    ]
    [row] = [r for r in targets(Figures(cases), []) if "peak memory flat" in r]
    assert row == (
        "| running pool with a queue of 1,000, limit 100, noop: peak memory flat from 10,000 to "
        "1,000,000 submissions (each larger size's peak ≤ 1.5× the 10,000's + 1 MB) | "
        f"1.0 / 0.9 / {peak_at_a_million:.1f} MB at 10,000 / 100,000 / 1,000,000 | {met} |"
    )


def test_each_features_cost_at_limit_100_is_judged_against_its_own_bound() -> None:
    """A timeout, a middleware, a rate limit and a breaker may cost 1.5x; a counting hook 1.3x."""
    ratios = {
        "go_async_timeout": 1.5,
        "go_async_hooks": 1.35,
        "go_async_middleware": 1.2,
        "go_async_rate": 1.6,
    }
    costs = [
        cost(workload, limit, key, 1_000 * ratio * scale * (2 if limit is None else 1), number)
        for number in (1, 2, 3)
        for workload, scale in (("noop", 1.0), ("sleep0", 0.9))  # noop is the worst workload
        for limit in (None, 100)  # features cost twice as much with no limit, which is not judged
        for key, ratio in ratios.items()
    ] + [
        cost(w, limit, "go_async", 1_000, number)
        for number in (1, 2, 3)
        for w in WORKLOADS
        for limit in (None, 100)
    ]
    rows = targets(Figures([case("noop", 100, "go_async", 1_000)]), [], costs)
    expected = {
        "a timeout that never fires: within 1.5×": "1.50× at worst (noop) | ✓",
        "one counting hook: within 1.3×": "1.35× at worst (noop) | ✗",
        "one pass-through middleware: within 1.5×": "1.20× at worst (noop) | ✓",
        "a rate limit that never binds: within 1.5×": "1.60× at worst (noop) | ✗",
        "a closed circuit breaker: within 1.5×": "not measured | —",
    }
    for text, measured in expected.items():
        [row] = [r for r in rows if f"| limit 100, {text} of plain `go` (interleaved rounds) |" in r]
        assert row.endswith(f"| {measured} |")


@pytest.mark.parametrize(
    ("aiometer_ns", "closest"), [(20_000.0, "asyncio-pool map"), (5_000.0, "aiometer.run_all")]
)
def test_the_maps_are_compared_with_the_fastest_peer_that_keeps_input_order(
    aiometer_ns: float, closest: str
) -> None:
    """Each go_async map: its ns per task and the fastest map peer's time over it, in the same run."""
    cases = [
        case("noop", 100, "go_async_map", 1_000),
        case("noop", 100, "go_async_running_map", 4_000),
        case("noop", 100, "asyncio_pool_map", 8_000),
        case("noop", 100, "aiometer_run_all", aiometer_ns),
        case("noop", 100, "asyncio_pool_spawn", 100),  # not a map: it returns no values
        case("sleep0", 100, "go_async_map", 2_000),
        case("sleep0", 100, "asyncio_pool_map", 9_000),
        case("collect", 100, "asyncio_pool_map", 9_000),  # no go_async map measured: no row
    ]
    fastest = min(8_000, aiometer_ns)
    text = markdown(cases, [], MACHINE, 60.0, quick=False)
    section = text.split("## map: results in input order (asyncio loop, limit 100, 100,000 tasks)")[1]
    assert section.split("\n\n")[2].splitlines() == [
        "| workload | go_async Pool.map | go_async running pool, map | asyncio-pool map | aiometer.run_all "
        "| fastest peer |",
        "|---|---:|---:|---:|---:|---|",
        f"| noop | 1,000 · {fastest / 1_000:.2f}× | 4,000 · {fastest / 4_000:.2f}× | 8,000 | "
        f"{aiometer_ns:,.0f} | {closest} |",
        "| sleep0 | 2,000 · 4.50× | — | 9,000 | — | asyncio-pool map |",
    ]
    assert text.index("## Targets") < text.index("## map: results") < text.index("## asyncio loop")


def test_the_map_section_needs_a_go_async_map() -> None:
    """Without go_async's maps there is nothing to compare; without peers, their times stand alone."""
    assert map_section(Figures([case("noop", 100, "asyncio_pool_map", 8_000)])) == []
    [row] = [r for r in map_section(Figures([case("noop", 100, "go_async_map", 1_000)])) if "| noop |" in r]
    assert row == "| noop | 1,000 | — | — | — | — |"


def test_memory_flatness_and_drain_speed_are_judged() -> None:
    """Flat means a few MB more for 100 times the tasks; Drain.send needs 5 million a second."""
    cases = [
        case("noop", 100, "go_async", 1_000, size=10_000, mb=0.5),
        case("noop", 100, "go_async", 1_000, size=1_000_000, mb=60.0),
    ]
    rows = targets(Figures(cases), [250.0] * 5)
    assert any("0.5 / 60.0 MB | ✗ |" in r for r in rows)
    assert any("4.0 million/s | ✗ |" in r for r in rows)


def test_the_report_shows_ratios_to_taskgroup_and_the_floor() -> None:
    """Each cell holds ns per task, its ratio to TaskGroup and to the sequential floor."""
    cases = [
        case("noop", None, "taskgroup", 8_000),
        case("noop", None, "sequential", 100),
        case("noop", None, "go_async", 800),
    ]
    text = markdown(cases, [100.0] * 5, MACHINE, 60.0, quick=False)
    assert "| **go_async Pool.go** | 800 · 0.10× · 8.00× |" in text
    assert "no limit: within 1.15× of `asyncio.TaskGroup` | 0.10× at worst (noop, no limit) | ✓ |" in text


def test_a_skipped_case_is_listed_not_dropped() -> None:
    """A case the run could not or would not measure is named with its reason."""
    skipped = Case("asyncio", "noop", 100, 1_000_000, "anyio", skipped="skipped: projected 400 s")
    text = markdown([case("noop", 100, "go_async", 800), skipped], [], MACHINE, 60.0, quick=False)
    assert (
        "- asyncio, noop, limit 100, 1,000,000 tasks, anyio (+ CapacityLimiter): skipped: projected 400 s"
        in text
    )


@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_workload_collects_exactly_its_inputs(workload: str) -> None:
    """The collect workload is how the benchmark checks that nothing was lost."""
    for key, contender in CONTENDERS.items():
        work = Work(workload)
        contender.run(work, contender.limits[-1], 50)
        expected = list(range(50)) if workload == "collect" else []
        assert sorted(work.collected) == expected, key


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("key", [*GO_ASYNC_MAPS, *MAP_PEERS])
def test_every_map_returns_each_inputs_value_in_input_order(workload: str, key: str) -> None:
    work = Work(workload)
    CONTENDERS[key].run(work, 100, 300)
    assert work.mapped == list(range(300))


def test_a_map_that_returns_its_values_out_of_order_fails_its_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness checks each map's list after its timed run."""

    def backwards(work: Work, limit: int | None, n: int) -> None:
        work.mapped = list(reversed(range(n)))

    monkeypatch.setitem(CONTENDERS, "backwards", Contender("backwards", "", backwards, (100,), "peer"))
    with pytest.raises(
        AssertionError, match="backwards returned 20 values for 20 inputs, or not in input order"
    ):
        one_case.time_case("backwards", "noop", 100, 20, 1)


def cost(workload: str, limit: int | None, key: str, ns: float, round_: int) -> Case:
    return Case("asyncio", workload, limit, 100_000, key, ns_per_task=[ns] * 5, round=round_)


@pytest.mark.parametrize(("now_ns", "met"), [(1_040.0, "✓"), (1_100.0, "✗")])
def test_no_hooks_is_judged_against_the_code_before_hooks_round_by_round(now_ns: float, met: str) -> None:
    """Zero cost is within noise of the old code measured in the same rounds; a noisy round is outvoted."""
    costs = []
    for number, noise in ((1, 1.0), (2, 1.0), (3, 3.0)):  # round 3's go_async ran in a burst of noise
        costs += [
            cost("noop", 100, "go_async", now_ns * noise, number),
            cost("noop", 100, "go_async_before", 1_000, number),
            cost("noop", 100, "go_async_hooks", 2 * now_ns, number),
            cost("noop", 100, "go_async_retry", 1.2 * now_ns * noise, number),
        ]
    figures = Figures([case("noop", 100, "go_async", now_ns)])
    [row] = [r for r in targets(figures, [], costs) if "plain `go`: as fast as at" in r]
    assert row.startswith(f"| plain `go`: as fast as at {BASELINE}, the last commit before the one engine")
    assert row.endswith(f"| {now_ns / 1_000:.2f}× at worst (noop, limit 100) | {met} |")
    [retry] = [r for r in targets(figures, [], costs) if "a retry policy that never fires" in r]
    assert retry.endswith("| 1.20× at worst (noop, limit 100) | ✓ |")
    text = markdown([case("noop", 100, "go_async", now_ns)], [], MACHINE, 60.0, quick=False, costs=costs)
    labels = [
        "go_async + unused retry",
        "go_async + a counting hook",
        f"go_async at {BASELINE}, before the one engine",
    ]
    assert f"| workload | {' | '.join(labels)} |" in text
    assert f"| noop, limit 100 | 1.20× | 2.00× | {now_ns / 1_000:.2f}× |" in text


@pytest.mark.parametrize(("aiometer_ns", "met"), [(9_000.0, "✓"), (6_000.0, "✗")])
def test_a_rate_limit_is_judged_against_aiometers_in_the_same_rounds(aiometer_ns: float, met: str) -> None:
    costs = [
        cost(workload, 100, key, ns, number)
        for number in (1, 2, 3)
        for workload in ("noop", "sleep0")
        for key, ns in (("go_async", 500), ("go_async_rate", 1_500), ("aiometer_rate", aiometer_ns))
    ]
    figures = Figures([case("noop", 100, "go_async", 500)])
    [row] = [r for r in targets(figures, [], costs) if "faster than aiometer" in r]
    assert row.endswith(f"| {aiometer_ns / 1_500:.1f}× at worst (noop) | {met} |")


def test_feature_costs_run_interleaved_and_stay_out_of_the_main_plan() -> None:
    costs = run.cost_plan(quick=True)
    first = [c.contender for c in costs if (c.round, c.workload, c.limit) == (1, "noop", 100)]
    assert first == ["go_async", "go_async_retry", *FEATURE_COSTS]
    unlimited = [c.contender for c in costs if (c.round, c.workload, c.limit) == (1, "noop", None)]
    assert unlimited == [key for key in first if key != "aiometer_rate"]  # aiometer's rate runs at limit 100
    assert {c.round for c in costs} == set(range(1, run.COST_ROUNDS + 1))
    openers = [
        next(c.contender for c in costs if (c.round, c.workload, c.limit) == (number, "noop", 100))
        for number in range(1, run.COST_ROUNDS + 1)
    ]
    assert len(set(openers)) == run.COST_ROUNDS  # a different contender opens each round
    assert not {c.contender for c in plan(quick=False)} & set(FEATURE_COSTS)


def test_the_baseline_is_skipped_with_its_reason_when_its_source_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run, "BASELINE", "0" * 40)
    run.baseline_source.cache_clear()
    try:
        before = Case("asyncio", "noop", 100, 2_000, "go_async_before")
        run.run_case(before, 5, sys.executable)
    finally:
        run.baseline_source.cache_clear()
    assert before.skipped.startswith(f"skipped: the source of {'0' * 40} is not available (")
    assert not before.ns_per_task


def test_the_workers_section_gives_rates_and_ratios_to_the_local_pool() -> None:
    """Tasks per second through workers, each against the local pool; a missing server is said."""
    rows = [
        distributed.Row(workload, setup, 100, per_second=[rate] * 5)
        for workload in distributed.WORKLOADS
        for setup, rate in zip(distributed.SETUPS, (100_000.0, 10_000.0, 1_000.0, 1_500.0), strict=True)
    ]
    rows[-1].per_second, rows[-1].skipped = [], "no Redis server: install redis-server"
    report = markdown([case("noop", 100, "go_async", 1_000)], [], MACHINE, 60.0, quick=True, workers=rows)
    section = report.split("## Through workers: tasks per second")[1]
    assert "| no-op | 100 | 100,000 | 10,000 (0.1×) | 1,000 (0.01×) | 1,500 (0.015×) |" in section
    assert "| 1 ms of CPU | 100 | 100,000 | 10,000 (0.1×) | 1,000 (0.01×) | no Redis server" in section
