"""Turn the run records into markdown tables and a plot.

Per task: four tables of schedule x LR multiplier (final training loss, test
metric, steps to the target loss, the mean LR factor actually applied), each
cell the mean ± standard deviation over the seeds, and a summary of each
schedule over the LR sweep. Across tasks: each schedule's worst case relative to
the best result on that task.

A multiplier at which any seed diverged counts as a failure in the summaries
(its worst case is "diverged"); in the per-cell tables the diverged seeds are
counted, and the mean and spread are over the other seeds.

Regenerate the CSV, tables and plot from saved results (no training) with

    python -m benchmarks.quality.report benchmarks/results/quality.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.quality.tasks import TASKS

Record = dict[str, Any]
Cell = list[Record]


def group_runs(runs: Iterable[Record]) -> dict[str, dict[tuple[str, float], Cell]]:
    """Runs by task, then by (schedule, multiplier)."""
    grouped: dict[str, dict[tuple[str, float], Cell]] = defaultdict(lambda: defaultdict(list))
    for record in runs:
        grouped[record["task"]][(record["schedule"], record["lr_mult"])].append(record)
    return grouped


def ordered(values: Iterable[Any]) -> list[Any]:
    """Unique values in first-seen order."""
    return list(dict.fromkeys(values))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def count_diverged(cell: Cell) -> int:
    return sum(record["diverged"] for record in cell)


def mean_final_loss(cell: Cell) -> float:
    """Mean final loss over the seeds; infinite if any seed diverged."""
    if count_diverged(cell):
        return math.inf
    return statistics.fmean(record["final_loss"] for record in cell)


def format_mult(mult: float) -> str:
    return f"{mult:g}x"


def format_value(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if math.isfinite(value) else "diverged"


def format_cell(cell: Cell, key: str, digits: int = 3) -> str:
    """``mean ± std`` of ``key`` over the seeds that did not diverge, plus the diverged count."""
    values = [record[key] for record in cell if not record["diverged"] and record[key] is not None]
    diverged = count_diverged(cell)
    if not values:
        return f"diverged {diverged}/{len(cell)}" if diverged else "n/a"
    mean, std = mean_std(values)
    text = f"{mean:.{digits}g}" if len(values) == 1 else f"{mean:.{digits}g} ± {std:.2g}"
    return text + (f" ({diverged} div.)" if diverged else "")


def format_steps(cell: Cell) -> str:
    """Mean steps to the target over the seeds that reached it, and how many did."""
    reached = [r["steps_to_target"] for r in cell if r["steps_to_target"] is not None]
    if not reached:
        return f"not reached (0/{len(cell)})"
    return f"{statistics.fmean(reached):.0f} ({len(reached)}/{len(cell)})"


def table(
    title: str,
    cells: dict[tuple[str, float], Cell],
    schedules: list[str],
    mults: list[float],
    render: Callable[[Cell], str],
) -> list[str]:
    lines = [f"**{title}**", ""]
    lines.append("| schedule | " + " | ".join(format_mult(m) for m in mults) + " |")
    lines.append("|---|" + "---|" * len(mults))
    for schedule in schedules:
        row = [render(cells[schedule, m]) if (schedule, m) in cells else "" for m in mults]
        lines.append(f"| {schedule} | " + " | ".join(row) + " |")
    return [*lines, ""]


def task_best(cells: dict[tuple[str, float], Cell]) -> float:
    """The lowest mean final loss of any schedule at any multiplier on a task."""
    return min(mean_final_loss(cell) for cell in cells.values())


def summary_table(
    task_name: str, cells: dict[tuple[str, float], Cell], schedules: list[str], mults: list[float]
) -> list[str]:
    """Per schedule: best and worst mean final loss over the sweep, spread, failures."""
    task = TASKS[task_name]
    best_overall = task_best(cells)
    worst_metric = max if not task.higher_is_better else min
    lines = [
        f"**Summary over the LR sweep** (task best: {best_overall:.3g}; a multiplier with a "
        "diverged seed counts as its worst case)",
        "",
        "| schedule | best final loss (at) | worst final loss (at) | spread: worst / best "
        f"| worst / task best | diverged runs | worst {task.metric} |",
        "|---|---|---|---|---|---|---|",
    ]
    for schedule in schedules:
        row_cells = {m: cells[schedule, m] for m in mults if (schedule, m) in cells}
        if not row_cells:
            continue
        losses = {m: mean_final_loss(cell) for m, cell in row_cells.items()}
        best_at = min(losses, key=lambda m: losses[m])
        worst_at = max(losses, key=lambda m: losses[m])
        metrics = [
            statistics.fmean(values)
            for cell in row_cells.values()
            if (values := [r["test_metric"] for r in cell if r["test_metric"] is not None])
        ]
        failed = any(math.isinf(v) for v in losses.values())
        worst_test = "diverged" if failed else f"{worst_metric(metrics):.3g}"
        spread = losses[worst_at] / losses[best_at]
        lines.append(
            f"| {schedule} | {format_value(losses[best_at])} ({format_mult(best_at)}) "
            f"| {format_value(losses[worst_at])} ({format_mult(worst_at)}) "
            f"| {format_value(spread)} | {format_value(losses[worst_at] / best_overall)} "
            f"| {sum(count_diverged(c) for c in row_cells.values())}"
            f"/{sum(len(c) for c in row_cells.values())} | {worst_test} |"
        )
    return [*lines, ""]


def cross_task_table(
    grouped: dict[str, dict[tuple[str, float], Cell]], schedules: list[str], mults: list[float]
) -> list[str]:
    """Per schedule and task: worst mean final loss over the sweep / the task's best."""
    tasks = list(grouped)
    worst = {
        (task, schedule): max(
            mean_final_loss(grouped[task][schedule, m])
            for m in mults
            if (schedule, m) in grouped[task]
        )
        / task_best(grouped[task])
        for task in tasks
        for schedule in schedules
        if any((schedule, m) in grouped[task] for m in mults)
    }
    ranks: dict[str, list[float]] = defaultdict(list)
    for task in tasks:
        present = [s for s in schedules if (task, s) in worst]
        for schedule in present:
            value = worst[task, schedule]
            ties = sum(worst[task, other] == value for other in present)
            below = sum(worst[task, other] < value for other in present)
            ranks[schedule].append(below + (ties + 1) / 2)  # average rank of ties
    lines = [
        "**Worst case over the LR sweep, relative to the best result on each task** "
        "(worst mean final loss / lowest mean final loss of any schedule at any LR; "
        "1 = never worse than the best; rank 1 = most robust)",
        "",
        "| schedule | " + " | ".join(tasks) + " | mean rank |",
        "|---|" + "---|" * (len(tasks) + 1),
    ]
    for schedule in schedules:
        if schedule not in ranks:
            continue
        row = [format_value(worst[t, schedule]) if (t, schedule) in worst else "" for t in tasks]
        lines.append(
            f"| {schedule} | " + " | ".join(row) + f" | {statistics.fmean(ranks[schedule]):.1f} |"
        )
    return [*lines, ""]


TIE = 0.02  # final losses within 2% of each other count as a tie


def paired_table(
    grouped: dict[str, dict[tuple[str, float], Cell]],
    schedules: list[str],
    mults: list[float],
    baselines: tuple[str, ...] = ("constant", "const_half"),
) -> list[str]:
    """Each schedule against each constant baseline at the same task and multiplier."""
    present = [b for b in baselines if b in schedules]
    if not present:
        return []
    header = " | ".join(f"vs {b}: better / tie / worse | vs {b}: geo. mean ratio" for b in present)
    lines = [
        "**Paired with the constant baselines** (same task, same multiplier; mean final loss "
        f"ratio, a tie within {TIE:.0%}; a diverged cell is worse than any finished one; the "
        "geometric mean is over the cells where both finished)",
        "",
        f"| schedule | {header} |",
        "|---|" + "---|---|" * len(present),
    ]
    for schedule in schedules:
        row = []
        for baseline in present:
            better = tie = worse = 0
            log_ratios = []
            for cells in grouped.values():
                for m in mults:
                    if (schedule, m) not in cells or (baseline, m) not in cells:
                        continue
                    ours = mean_final_loss(cells[schedule, m])
                    theirs = mean_final_loss(cells[baseline, m])
                    if math.isinf(ours) and math.isinf(theirs):
                        tie += 1
                        continue
                    if math.isinf(ours) or math.isinf(theirs):
                        better, worse = better + math.isinf(theirs), worse + math.isinf(ours)
                        continue
                    ratio = ours / theirs
                    log_ratios.append(math.log(ratio))
                    better += ratio < 1 - TIE
                    worse += ratio > 1 + TIE
                    tie += 1 - TIE <= ratio <= 1 + TIE
            geo = math.exp(statistics.fmean(log_ratios)) if log_ratios else math.nan
            row.append(f"{better} / {tie} / {worse} | {geo:.3g}")
        lines.append(f"| {schedule} | " + " | ".join(row) + " |")
    return [*lines, ""]


def markdown(runs: list[Record]) -> str:
    """All tables, as markdown."""
    grouped = group_runs(runs)
    schedules = ordered(r["schedule"] for r in runs)
    mults = sorted(ordered(r["lr_mult"] for r in runs))
    seeds = ordered(r["seed"] for r in runs)
    lines = [cross_task_table(grouped, schedules, mults), paired_table(grouped, schedules, mults)]
    for task_name, cells in grouped.items():
        task = TASKS[task_name]
        steps = ordered(r["steps"] for r in runs if r["task"] == task_name)
        lines.append(
            [
                f"#### {task.description}",
                "",
                f"Base LR {task.base_lr:g}, {steps[0]} steps, {len(seeds)} seed(s); "
                f"target loss {task.target_loss:g}. Cells: mean ± std over the seeds.",
                "",
            ]
        )
        lines.append(summary_table(task_name, cells, schedules, mults))
        lines.append(
            table(
                "Final training loss",
                cells,
                schedules,
                mults,
                lambda c: format_cell(c, "final_loss"),
            )
        )
        lines.append(
            table(
                task.metric[0].upper() + task.metric[1:],
                cells,
                schedules,
                mults,
                lambda c: format_cell(c, "test_metric"),
            )
        )
        lines.append(
            table(
                f"Steps to a training loss of {task.target_loss:g} (seeds that reached it)",
                cells,
                schedules,
                mults,
                format_steps,
            )
        )
        lines.append(
            table(
                "Mean applied LR / (multiplier x base LR)",
                cells,
                schedules,
                mults,
                lambda c: format_cell(c, "mean_lr_ratio", digits=2),
            )
        )
    return "\n".join(line for block in lines for line in block)


def plot(runs: list[Record], path: Path) -> None:
    """Mean final training loss against the LR multiplier, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = group_runs(runs)
    schedules = ordered(r["schedule"] for r in runs)
    mults = sorted(ordered(r["lr_mult"] for r in runs))
    columns = min(len(grouped), 2)
    rows = math.ceil(len(grouped) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4 * rows), squeeze=False)
    for axis, (task_name, cells) in zip(axes.flat, grouped.items(), strict=False):
        finite = [
            r["final_loss"] for cell in cells.values() for r in cell if r["final_loss"] is not None
        ]
        ceiling = max(finite) * 3 if finite else 1.0
        diverged_labels = []
        for schedule in schedules:
            xs = [m for m in mults if (schedule, m) in cells]
            if not xs:
                continue
            ys = [mean_final_loss(cells[schedule, m]) for m in xs]
            style = "--" if schedule in ("const_half", "constant") else "-"
            (line,) = axis.plot(
                xs,
                [y if math.isfinite(y) else math.nan for y in ys],
                style,
                marker="o",
                label=schedule,
            )
            failed = [x for x, y in zip(xs, ys, strict=True) if not math.isfinite(y)]
            axis.scatter(failed, [ceiling] * len(failed), marker="x", s=80, color=line.get_color())
            diverged_labels += [f"{schedule} at {format_mult(x)}" for x in failed]
        if diverged_labels:
            axis.text(
                0.02,
                0.97,
                "diverged: " + ", ".join(diverged_labels),
                transform=axis.transAxes,
                va="top",
                fontsize="small",
            )
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(mults, [format_mult(m) for m in mults])
        axis.set_xlabel(f"LR multiplier (base LR {TASKS[task_name].base_lr:g})")
        axis.set_ylabel("final training loss (mean over seeds)")
        axis.set_title(task_name)
        axis.grid(True, which="major", alpha=0.3)
    for axis in list(axes.flat)[len(grouped) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize="small", loc="center left")
    figure.suptitle("Final training loss vs. LR multiplier (x at the top: a seed diverged)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


CSV_FIELDS = [
    "task",
    "schedule",
    "lr_mult",
    "seed",
    "steps",
    "base_lr",
    "lr",
    "diverged",
    "diverged_at",
    "final_loss",
    "test_metric",
    "steps_to_target",
    "target_loss",
    "mean_lr_ratio",
    "final_lr_ratio",
    "skipped_losses",
    "seconds",
]


def write_results(meta: dict[str, Any], runs: list[Record], stem: Path) -> None:
    """Write ``stem``.json (one run per line), .csv, .md and ``stem``_final_loss.png."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(run, separators=(",", ":")) for run in runs)
    stem.with_suffix(".json").write_text(
        f'{{"meta": {json.dumps(meta)},\n"runs": [\n{lines}\n]}}\n'
    )
    with stem.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    header = (
        f"Command: `{meta['command']}` ({meta['seconds']:.0f} s with {meta['workers']} "
        f"worker processes; torch {meta['torch']}, transformers {meta['transformers']}, "
        f"Python {meta['python']})\n\n"
    )
    stem.with_suffix(".md").write_text(header + markdown(runs))
    plot(runs, stem.with_name(stem.name + "_final_loss.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description="CSV, tables and plot from saved results.")
    parser.add_argument("results", type=Path, help="a results JSON written by benchmarks.quality")
    args = parser.parse_args()
    saved = json.loads(args.results.read_text())
    write_results(saved["meta"], saved["runs"], args.results.with_suffix(""))
    print(args.results.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
