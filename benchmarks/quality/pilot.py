"""The pilot sweep that fixed each task's base LR and target loss (constant LR, 3 seeds).

For each task, train with a constant LR over a 1-2-5 grid, seeds 0-2, and print
the geometric mean of the final training loss over the seeds (a diverged run
counts as infinite). The base LR of a task is the best LR of this grid; its
target loss is the median, over the seeds, of the training loss measured between
40% and 60% of the run at that LR, rounded to two significant digits ("a loss
that a well-chosen constant LR reaches in about half the steps"). Run it to
check the values in :mod:`benchmarks.quality.tasks`:

    python -m benchmarks.quality.pilot
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch

from benchmarks.quality.tasks import TASKS
from benchmarks.quality.training import RunSpec, run

GRID = [m * 10.0**e for e in range(-4, 1) for m in (1, 2, 5)]
SEEDS = (0, 1, 2)


def geometric_mean(values: list[float | None]) -> float:
    """Geometric mean; infinite if any value is missing (a diverged run)."""
    if any(v is None or not v > 0 for v in values):
        return math.inf
    return math.exp(statistics.fmean(math.log(v) for v in values))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.tasks.split(","):
        task = TASKS[name]
        scores, runs = {}, {}
        for lr in GRID:
            runs[lr] = [run(RunSpec(name, "constant", lr / task.base_lr, seed)) for seed in SEEDS]
            scores[lr] = geometric_mean([r["final_loss"] for r in runs[lr]])
            print(f"{name:14s} lr={lr:<8.4g} final training loss (geo. mean) {scores[lr]:.4g}")
        best = min(scores, key=lambda lr: scores[lr])
        middle = [
            loss
            for r in runs[best]
            for at, loss in r["curve"]
            if 0.4 * task.steps <= at <= 0.6 * task.steps
        ]
        print(
            f"{name:14s} best constant lr={best:g} (base_lr in tasks.py: {task.base_lr:g}); "
            f"median loss at 40-60% of the run: {statistics.median(middle):.2g} "
            f"(target_loss in tasks.py: {task.target_loss:g})"
        )


if __name__ == "__main__":
    main()
