"""Run the training-quality benchmark: tasks x schedules x LR multipliers x seeds.

    python -m benchmarks.quality                 # the full benchmark
    python -m benchmarks.quality --quick         # one seed, three multipliers
    python -m benchmarks.quality --schedules constant,seed,my_new_rule

Writes ``<name>.json`` (every run, with its measured loss curve), ``<name>.csv``
(one line per run), ``<name>.md`` (the tables) and ``<name>_final_loss.png``
into ``--out``. Any name in ``eve_scheduler.core.RULES`` is a valid schedule.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality.report import write_results
from benchmarks.quality.schedules import DEFAULT_SCHEDULES, available
from benchmarks.quality.tasks import TASKS
from benchmarks.quality.training import RunSpec, run

DEFAULT_MULTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
QUICK_MULTS = (0.25, 1.0, 8.0)


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tasks", type=comma_list, default=list(TASKS), help="e.g. digits,char_lm")
    parser.add_argument(
        "--schedules",
        type=comma_list,
        default=list(DEFAULT_SCHEDULES),
        help=f"comma-separated, from {available()}",
    )
    parser.add_argument(
        "--mults", type=comma_list, default=None, help="LR multipliers, e.g. 0.25,1,8"
    )
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (0, 1, ...)")
    parser.add_argument("--steps", type=int, default=None, help="override every task's steps")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--quick", action="store_true", help="1 seed, multipliers 0.25,1,8")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default=None, help="file name stem (default: quality[_quick])")
    args = parser.parse_args(argv)
    for name in args.tasks:
        if name not in TASKS:
            parser.error(f"unknown task {name!r}; choose from {list(TASKS)}")
    for name in args.schedules:
        if name not in available():
            parser.error(f"unknown schedule {name!r}; choose from {available()}")
    default_mults = QUICK_MULTS if args.quick else DEFAULT_MULTS
    args.mults = [float(m) for m in args.mults] if args.mults else list(default_mults)
    args.seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    args.name = args.name or ("quality_quick" if args.quick else "quality")
    return args


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def run_all(specs: list[RunSpec], workers: int) -> list[dict[str, Any]]:
    """Run every spec, in worker processes if ``workers > 1``, printing progress."""
    started = time.perf_counter()
    results: list[dict[str, Any]] = []

    def progress(result: dict[str, Any]) -> None:
        results.append(result)
        if len(results) % 25 == 0 or len(results) == len(specs):
            elapsed = time.perf_counter() - started
            print(f"{len(results)}/{len(specs)} runs, {elapsed:.0f} s", flush=True)

    if workers <= 1:
        for spec in specs:
            progress(run(spec))
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap(run, specs):  # results in the order of specs
                progress(result)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    specs = [
        RunSpec(task, schedule, mult, seed, args.steps)
        for task in args.tasks
        for schedule in args.schedules
        for mult in args.mults
        for seed in range(args.seeds)
    ]
    print(
        f"{len(specs)} runs: tasks {args.tasks}, schedules {args.schedules}, "
        f"multipliers {args.mults}, {args.seeds} seed(s), {args.workers} worker(s)",
        flush=True,
    )
    started = time.perf_counter()
    runs = run_all(specs, args.workers)
    arguments = sys.argv[1:] if argv is None else argv
    meta = {
        "command": shlex.join(["python", "-m", "benchmarks.quality", *arguments]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "workers": args.workers,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": package_version("transformers"),
        "scikit-learn": package_version("scikit-learn"),
    }
    stem = args.out / args.name
    write_results(meta, runs, stem)
    print(f"wrote {stem}.json, .csv, .md and {stem.name}_final_loss.png ({meta['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
