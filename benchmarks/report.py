"""Turn the benchmark's cases into a Markdown report and a chart."""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import distributed
from contenders import (
    BASELINE,
    CONTENDERS,
    FEATURE_COSTS,
    GO_ASYNC_MAPS,
    MAP_PEERS,
    RUNNING_PEERS,
    RUNNING_QUEUE,
    WORKLOADS,
)

if TYPE_CHECKING:
    from distributed import Row
    from run import Case

WORKLOAD_TEXT = {
    "noop": "a coroutine that returns at once",
    "sleep0": "a coroutine that awaits `asyncio.sleep(0)` once",
    "collect": "a coroutine that sends its input to a collector (a list; for go_async + drain, a `Drain`)",
}
LIMIT_TEXT = {None: "no limit", 100: "limit 100", 1: "limit 1"}
GO_ASYNC = "go_async"
# Flat memory: at most this many MB more for 100 times the tasks (a design that
# keeps every task alive grows by about 1 GB per million).
FLAT_MB = 10.0
# Two runs of the same code differ by up to this much on a noisy 2-core machine.
NOISE = 1.05
# The running pool's lead over the fastest of the peers a user would pick instead.
RUNNING_LEAD = 5.0
# The running pool with a bounded queue keeps flat memory: no size's peak above
# this many times the smallest size's, plus this many MB (a pool that kept each
# submitted task would grow by hundreds of MB at 1,000,000).
FLAT_FACTOR, FLAT_SLACK_MB = 1.5, 1.0
# Issue 16: what each feature may cost plain `go` at limit 100, as the ratio of
# their times measured in the same interleaved rounds (the worst workload).
COST_TARGETS = (
    ("go_async_timeout", "a timeout that never fires", 1.5),
    ("go_async_hooks", "one counting hook", 1.3),
    ("go_async_middleware", "one pass-through middleware", 1.5),
    ("go_async_rate", "a rate limit that never binds", 1.5),
    ("go_async_breaker", "a closed circuit breaker", 1.5),
)


class Figures:
    """Medians by case, and the ratios the report needs."""

    def __init__(self, cases: Iterable[Case]) -> None:
        self.cases = [c for c in cases if c.ns_per_task]
        self.by_key = {(c.loop, c.workload, c.limit, c.contender, c.size): c for c in self.cases}

    def get(self, loop: str, workload: str, limit: int | None, key: str, size: int) -> Case | None:
        return self.by_key.get((loop, workload, limit, key, size))

    def ns(self, loop: str, workload: str, limit: int | None, key: str, size: int) -> float | None:
        case = self.get(loop, workload, limit, key, size)
        return None if case is None else case.median

    def sizes(self, loop: str) -> list[int]:
        return sorted({c.size for c in self.cases if c.loop == loop})

    def loops(self) -> list[str]:
        return [loop for loop in ("asyncio", "uvloop") if any(c.loop == loop for c in self.cases)]


def markdown(
    cases: list[Case],
    drain_ns: list[float],
    machine: dict[str, str],
    elapsed: float,
    *,
    quick: bool,
    costs: Sequence[Case] = (),
    workers: Sequence[Row] = (),
) -> str:
    figures = Figures(cases)
    lines = [
        "# go_async benchmark results",
        "",
        f"Measured on {machine['date']} on {machine['cpu']}, {machine['os']}.  ",
        f"Versions: {machine['versions']}.  ",
        f"{'A quick run (a smoke test: small size, few figures worth quoting)' if quick else 'A full run'}, "
        f"{elapsed / 60:.1f} minutes. Each case ran in its own process: one warm-up run, then "
        f"{len(cases[0].ns_per_task) if cases and cases[0].ns_per_task else 5} timed runs; "
        "figures are medians. Peak MB is the growth of the process's peak RSS over its size after imports.",
        "",
        "Regenerate with `python benchmarks/run.py` (`--quick` for a smoke run).",
        "",
        *targets(figures, drain_ns, costs),
        *map_section(figures),
        *cost_table(costs),
        *(["", *distributed.markdown(list(workers))] if workers else []),
    ]
    for loop in figures.loops():
        for workload in WORKLOADS:
            lines += ["", f"## {loop} loop: {WORKLOAD_TEXT[workload]}"]
            for limit in (None, 100, 1):
                lines += ["", *table(figures, loop, workload, limit)]
    # A feature-cost case skipped in every round is listed once.
    skipped = [c for c in cases if c.skipped] + list(
        {(c.workload, c.limit, c.contender): c for c in costs if c.skipped}.values()
    )
    if skipped:
        lines += ["", "## Cases not measured", ""]
        lines += [
            f"- {c.loop}, {c.workload}, {LIMIT_TEXT[c.limit]}, {c.size:,} tasks, "
            f"{CONTENDERS[c.contender].label}: {c.skipped}"
            for c in skipped
        ]
    return "\n".join(lines) + "\n"


def table(figures: Figures, loop: str, workload: str, limit: int | None) -> list[str]:
    sizes = figures.sizes(loop)
    rows = [
        f"### {LIMIT_TEXT[limit]}",
        "",
        "Each cell: ns per task · its ratio to `asyncio.TaskGroup` (no limit) · its ratio to the "
        "sequential floor, at the same size.",
        "",
        "| contender | " + " | ".join(f"{size:,} tasks" for size in sizes) + " | peak MB |",
        "|---|" + "---:|" * len(sizes) + "---:|",
    ]
    for key, contender in CONTENDERS.items():
        if limit not in contender.limits or key in FEATURE_COSTS:
            continue
        cells, memory = [], []
        for size in sizes:
            case = figures.get(loop, workload, limit, key, size)
            if case is None:
                cells.append("—")
                memory.append("—")
                continue
            group = figures.ns(loop, workload, None, "taskgroup", size)
            floor = figures.ns(loop, workload, None, "sequential", size)
            ratios = [f"{case.median / ref:.2f}×" if ref else "—" for ref in (group, floor)]
            cells.append(f"{case.median:,.0f} · {ratios[0]} · {ratios[1]}")
            memory.append(f"{case.peak_mb:,.1f}")
        name = f"**{contender.label}**" if contender.kind == GO_ASYNC else contender.label
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {' / '.join(memory)} |")
    return rows


def targets(figures: Figures, drain_ns: list[float], costs: Sequence[Case] = ()) -> list[str]:
    """The goals of issues 3 and 16, each with what this run measured."""
    loop = "asyncio"
    sizes = figures.sizes(loop)
    if not sizes:
        return []
    size = min(sizes, key=lambda s: abs(s - 100_000))
    rows = [
        f"## Targets ({loop} loop, {size:,} tasks)",
        "",
        "| target | measured | met |",
        "|---|---|:-:|",
    ]

    def row(text: str, measured: str, met: bool | None) -> None:
        rows.append(f"| {text} | {measured} | {'—' if met is None else '✓' if met else '✗'} |")

    for workload, factor in (("noop", 8), ("sleep0", 5)):
        lead = lead_over_peers(figures, loop, workload, 100, size)
        if lead is None:
            row(f"limit 100, {workload}: ≥ {factor}× faster than every peer", "not measured", None)
        else:
            ratio, peer, fastest = lead
            # No pool beats a hand-written loop: its lead bounds what is possible.
            hand = figures.ns(loop, workload, 100, "workers", size)
            bound = f"; a hand-written loop: {fastest / hand:.1f}×" if hand else ""
            row(
                f"limit 100, {workload}: ≥ {factor}× faster than every peer",
                f"{ratio:.1f}× (closest: {peer}{bound})",
                ratio >= factor,
            )
    rows += running_targets(figures, loop, size)
    go, floor = (
        figures.ns(loop, "noop", 100, GO_ASYNC, size),
        figures.ns(loop, "noop", None, "sequential", size),
    )
    if go and floor:
        row(
            "stretch: limit 100, noop: within 5× of the sequential floor",
            f"{go / floor:.1f}×",
            go / floor <= 5,
        )
    worst = worst_ratio(figures, loop, size, [(w, None, GO_ASYNC, "taskgroup") for w in WORKLOADS])
    if worst:
        row(
            "no limit: within 1.15× of `asyncio.TaskGroup`",
            f"{worst[0]:.2f}× at worst ({worst[1]})",
            worst[0] <= 1.15,
        )
    ratios = cost_ratios(costs)
    retry = {(w, limit): ratio for (key, w, limit), ratio in ratios.items() if key == "go_async_retry"}
    if retry:
        (workload, limit), ratio = max(retry.items(), key=lambda item: item[1])
        row(
            "a retry policy that never fires: within 1.3× of none (interleaved rounds)",
            f"{ratio:.2f}× at worst ({workload}, {LIMIT_TEXT[limit]})",
            ratio <= 1.3,
        )
    before = {(w, limit): ratio for (key, w, limit), ratio in ratios.items() if key == "go_async_before"}
    if before:
        (workload, limit), ratio = min(before.items(), key=lambda item: item[1])
        row(
            f"plain `go`: as fast as at {BASELINE}, the last commit before the one engine "
            f"(interleaved rounds; {NOISE - 1:.0%} allowed for noise)",
            f"{1 / ratio:.2f}× at worst ({workload}, {LIMIT_TEXT[limit]})",
            1 / ratio <= NOISE,
        )
    if ratios:
        for key, feature, allowed in COST_TARGETS:
            worst = max(
                ((ratio, w) for (k, w, limit), ratio in ratios.items() if k == key and limit == 100),
                default=None,
            )
            row(
                f"limit 100, {feature}: within {allowed}× of plain `go` (interleaved rounds)",
                "not measured" if worst is None else f"{worst[0]:.2f}× at worst ({worst[1]})",
                None if worst is None else worst[0] <= allowed,
            )
    rate_leads = {
        w: ratios[("aiometer_rate", w, 100)] / ratios[("go_async_rate", w, 100)]
        for w in WORKLOADS
        if ("aiometer_rate", w, 100) in ratios and ("go_async_rate", w, 100) in ratios
    }
    if rate_leads:
        workload, rate_lead = min(rate_leads.items(), key=lambda item: item[1])
        row(
            "limit 100, a rate limit that never binds: ≥ 5× faster than aiometer's (interleaved rounds)",
            f"{rate_lead:.1f}× at worst ({workload})",
            rate_lead >= 5,
        )
    memory = [figures.get(loop, "noop", 100, GO_ASYNC, s) for s in sizes]
    peaks = [c.peak_mb for c in memory if c is not None and c.peak_mb is not None]
    if len(peaks) > 1:
        flat = max(peaks) - min(peaks) <= FLAT_MB
        text = " / ".join(f"{p:.1f}" for p in peaks)
        row(f"limit 100: memory flat from {sizes[0]:,} to {sizes[-1]:,} tasks", f"{text} MB", flat)
    if drain_ns:
        per_second = 1e9 / sorted(drain_ns)[len(drain_ns) // 2]
        row(
            "`Drain.send`: ≥ 5 million values a second from one thread",
            f"{per_second / 1e6:.1f} million/s",
            per_second >= 5e6,
        )
    return rows


def running_targets(figures: Figures, loop: str, size: int) -> list[str]:
    """Issue 16's running pool: its lead over the peers at limit 100, and flat memory with a bounded queue."""
    rows = []
    text = (
        f"running pool (`submit`), limit 100, noop: ≥ {RUNNING_LEAD:.0f}× less time per task than "
        "the fastest of TaskGroup + Semaphore, aiojobs spawn, asyncio-pool spawn"
    )
    lead = lead_over_peers(figures, loop, "noop", 100, size, ours="go_async_running", peers=RUNNING_PEERS)
    if lead is None:
        rows.append(f"| {text} | not measured | — |")
    else:
        ratio, peer, fastest = lead
        ours = fastest / ratio
        bounded = lead_over_peers(
            figures, loop, "noop", 100, size, ours="go_async_running_bounded", peers=RUNNING_PEERS
        )
        also = f"; with a queue of {RUNNING_QUEUE:,}: {bounded[0]:.1f}×" if bounded else ""
        rows.append(
            f"| {text} | {ratio:.1f}× (go_async {ours:,.0f} ns, {peer} {fastest:,.0f} ns{also}) "
            f"| {'✓' if ratio >= RUNNING_LEAD else '✗'} |"
        )
    memory = [
        (s, c.peak_mb)
        for s in figures.sizes(loop)
        if (c := figures.get(loop, "noop", 100, "go_async_running_bounded", s)) is not None
        and c.peak_mb is not None
    ]
    if len(memory) > 1:
        (smallest, first), *larger = memory
        flat = all(peak <= FLAT_FACTOR * first + FLAT_SLACK_MB for _, peak in larger)
        peaks = " / ".join(f"{peak:.1f}" for _, peak in memory)
        sizes = " / ".join(f"{s:,}" for s, _ in memory)
        rows.append(
            f"| running pool with a queue of {RUNNING_QUEUE:,}, limit 100, noop: peak memory flat "
            f"from {smallest:,} to {memory[-1][0]:,} submissions (each larger size's peak ≤ "
            f"{FLAT_FACTOR}× the {smallest:,}'s + {FLAT_SLACK_MB:.0f} MB) | {peaks} MB at {sizes} "
            f"| {'✓' if flat else '✗'} |"
        )
    return rows


def map_section(figures: Figures, loop: str = "asyncio") -> list[str]:
    """go_async's two ``map``s against the peers that also return each input's value in input order.

    Each go_async cell gives its ns per task and its lead over the fastest of
    MAP_PEERS measured in the same run, as the running pool's target row
    does; a workload appears once one of go_async's ``map``s was measured.
    """
    sizes = figures.sizes(loop)
    if not sizes:
        return []
    size = min(sizes, key=lambda s: abs(s - 100_000))
    workloads = [
        w for w in WORKLOADS if any(figures.ns(loop, w, 100, key, size) is not None for key in GO_ASYNC_MAPS)
    ]
    if not workloads:
        return []
    peers = ", ".join(CONTENDERS[key].label for key in MAP_PEERS)
    rows = [
        "",
        f"## map: results in input order ({loop} loop, limit 100, {size:,} tasks)",
        "",
        "`Pool(limit=100).map(fn, inputs)` and, in a running pool, `await pool.map(fn, inputs)`, against "
        f"the peers that also return each input's value in input order ({peers}); `fn` returns its "
        "input. Each go_async cell: ns per task · the fastest peer's time ÷ go_async's (above 1: "
        "go_async takes less time), the two measured in the same run.",
        "",
        "| workload | "
        + " | ".join(CONTENDERS[key].label for key in (*GO_ASYNC_MAPS, *MAP_PEERS))
        + " | fastest peer |",
        "|---|" + "---:|" * (len(GO_ASYNC_MAPS) + len(MAP_PEERS)) + "---|",
    ]
    for workload in workloads:
        cells, fastest = [], "—"
        for key in GO_ASYNC_MAPS:
            ns = figures.ns(loop, workload, 100, key, size)
            lead = lead_over_peers(figures, loop, workload, 100, size, ours=key, peers=MAP_PEERS)
            if lead is None:  # this map, or every peer, not measured
                cells.append("—" if ns is None else f"{ns:,.0f}")
            else:
                cells.append(f"{ns:,.0f} · {lead[0]:.2f}×")
                fastest = lead[1]
        for key in MAP_PEERS:
            ns = figures.ns(loop, workload, 100, key, size)
            cells.append("—" if ns is None else f"{ns:,.0f}")
        rows.append(f"| {workload} | " + " | ".join(cells) + f" | {fastest} |")
    return rows


def cost_ratios(costs: Sequence[Case]) -> dict[tuple[str, str, int | None], float]:
    """Each feature contender's time ÷ plain go_async's in the same round; the median over rounds.

    For ``go_async_before`` that is the old code's time ÷ today's.
    """
    plain = {
        (c.round, c.workload, c.limit): c.median for c in costs if c.contender == GO_ASYNC and c.ns_per_task
    }
    by_key: dict[tuple[str, str, int | None], list[float]] = {}
    for c in costs:
        reference = plain.get((c.round, c.workload, c.limit))
        if c.contender != GO_ASYNC and c.ns_per_task and reference:
            by_key.setdefault((c.contender, c.workload, c.limit), []).append(c.median / reference)
    return {key: statistics.median(values) for key, values in by_key.items()}


def cost_table(costs: Sequence[Case]) -> list[str]:
    """What each feature costs plain go_async, workload by workload."""
    ratios = cost_ratios(costs)
    if not ratios:
        return []
    keys = [key for key in CONTENDERS if any(k == key for k, _, _ in ratios)]
    rows = [
        "",
        f"## What features cost (asyncio loop, {costs[0].size:,} tasks)",
        "",
        "Each contender's time per task ÷ plain go_async's, the two measured one after the other in "
        f"each of {max(c.round for c in costs)} rounds (so that a burst of noise hits both sides of a "
        "ratio), in an order rotated each round; the median over rounds. For the code at "
        f"{BASELINE} the column reads today's time ÷ that code's: above 1 means today is slower.",
        "",
        "| workload | " + " | ".join(CONTENDERS[key].label for key in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for workload in WORKLOADS:
        for limit in (None, 100):
            cells = []
            for key in keys:
                ratio = ratios.get((key, workload, limit))
                if ratio is not None and key == "go_async_before":
                    ratio = 1 / ratio
                cells.append("—" if ratio is None else f"{ratio:.2f}×")
            rows.append(f"| {workload}, {LIMIT_TEXT[limit]} | " + " | ".join(cells) + " |")
    return rows


def lead_over_peers(
    figures: Figures,
    loop: str,
    workload: str,
    limit: int,
    size: int,
    *,
    ours: str = GO_ASYNC,
    peers: Collection[str] | None = None,
) -> tuple[float, str, float] | None:
    """go_async's lead over the fastest peer: the ratio, that peer, and its ns per task.

    ``ours`` is the go_async contender judged (plain ``Pool.go`` unless said);
    ``peers`` the keys of those it is judged against (every peer unless said).
    """
    go = figures.ns(loop, workload, limit, ours, size)
    rivals = [
        (ns, contender.label)
        for key, contender in CONTENDERS.items()
        if (contender.kind == "peer" if peers is None else key in peers)
        and (ns := figures.ns(loop, workload, limit, key, size)) is not None
    ]
    if go is None or not rivals:
        return None
    fastest, label = min(rivals)
    return fastest / go, label, fastest


def worst_ratio(
    figures: Figures,
    loop: str,
    size: int,
    pairs: list[tuple[str, int | None, str, str]],
    *,
    same_limit: bool = False,
) -> tuple[float, str] | None:
    ratios = []
    for workload, limit, key, reference in pairs:
        ns = figures.ns(loop, workload, limit, key, size)
        ref = figures.ns(loop, workload, limit if same_limit else None, reference, size)
        if ns and ref:
            ratios.append((ns / ref, f"{workload}, {LIMIT_TEXT[limit]}"))
    return max(ratios) if ratios else None


def chart(cases: list[Case], path: Path) -> None:
    """A grid of bar charts, one per workload and limit, at the size nearest 100,000."""
    import matplotlib as mpl  # noqa: PLC0415 - optional: the chart extra

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import NullFormatter  # noqa: PLC0415

    figures = Figures(cases)
    sizes = figures.sizes("asyncio")
    size = min(sizes, key=lambda s: abs(s - 100_000))
    limits = (None, 100, 1)
    fig, axes = plt.subplots(len(WORKLOADS), len(limits), figsize=(16, 11), squeeze=False)
    for row, workload in enumerate(WORKLOADS):
        for column, limit in enumerate(limits):
            axis = axes[row][column]
            bars = [
                (contender.label, ns, contender.kind)
                for key, contender in CONTENDERS.items()
                if (ns := figures.ns("asyncio", workload, limit, key, size)) is not None
            ]
            labels = [label for label, _, _ in bars]
            colours = [
                "tab:orange"
                if kind == GO_ASYNC
                else "tab:grey"
                if kind in ("floor", "reference", "baseline")
                else "tab:blue"
                for _, _, kind in bars
            ]
            axis.barh(labels, [ns for _, ns, _ in bars], color=colours)
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(NullFormatter())
            axis.invert_yaxis()
            axis.set_title(f"{workload}, {LIMIT_TEXT[limit]}", fontsize=10)
            axis.tick_params(labelsize=8)
            if row == len(WORKLOADS) - 1:
                axis.set_xlabel("ns per task (log scale, lower is better)", fontsize=8)
    fig.suptitle(
        f"Time per task, {size:,} tasks, asyncio loop (orange: go_async, grey: floor and hand-written)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
