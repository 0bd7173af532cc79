"""``eve-scheduler demo``: the same small model trained with ``EveCallback`` and at a constant LR.

A 64-64-10 MLP learns scikit-learn's bundled digits (no download) with Adam,
twice with the same seed (same initial weights, same batches): once with
``EveCallback`` rescaling the LR from the training loss, once at the constant
base LR. At the end it prints a table (final training loss, test accuracy, mean
LR, training time) and writes a plot of loss and LR against step and the
per-step numbers as CSV.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import statistics
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eve_scheduler.cli.options import CliError, add_rule_options, describe_rule, rule_options
from eve_scheduler.cli.plots import new_figure, save_figure
from eve_scheduler.cli.tables import format_table

if TYPE_CHECKING:
    from eve_scheduler.cli.digits import RunResult

DEFAULT_STEPS = 2000
DEFAULT_LR = 1e-3
DEFAULT_BATCH_SIZE = 64
DEFAULT_OUT = Path("runs/eve-demo")
DEMO_PACKAGES = ("lightning", "sklearn", "matplotlib")
DEMO_MISSING = (
    'the demo needs Lightning, scikit-learn and matplotlib: pip install "eve-scheduler[demo]"'
)
MAX_FLOAT32 = 3.4028234663852886e38  # the model trains in float32
SMOOTHING = 25  # steps in the moving average drawn over the raw minibatch losses


def add_parser(commands: Any) -> None:
    """Add the ``demo`` command to the ``eve-scheduler`` sub-command parsers."""
    parser = commands.add_parser(
        "demo",
        help="train a small model with EveCallback and at a constant LR, and compare",
        description=(
            "Train a small MLP on scikit-learn's digits with Adam twice, with the same seed: "
            "once with EveCallback rescaling the LR from the training loss, once at the "
            "constant base LR. Prints a table of the results and writes a plot of loss and "
            "LR per step (demo.png) and the per-step numbers (history.csv) to --out."
        ),
    )
    add_rule_options(parser)
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"optimizer steps per run (default: {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--lr", type=float, default=DEFAULT_LR, help=f"Adam's base LR (default: {DEFAULT_LR:g})"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"minibatch size (default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of both runs (default: 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for demo.png and history.csv (default: {DEFAULT_OUT})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``eve-scheduler demo`` with parsed arguments; return the exit status."""
    rule, hparams = rule_options(args)
    if args.steps < 1:
        raise CliError(f"--steps must be at least 1, got {args.steps}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not (math.isfinite(args.lr) and 0 < args.lr <= MAX_FLOAT32):
        raise CliError(f"--lr must be a positive float32 number, got {args.lr!r}")
    if not 0 <= args.seed < 2**32:
        raise CliError(f"--seed must be in [0, 2**32 - 1], got {args.seed}")
    missing = [name for name in DEMO_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise CliError(f"{DEMO_MISSING} (missing: {', '.join(missing)})")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"{args.out}: cannot create the output folder ({error.strerror})") from None
    import torch

    from eve_scheduler.cli import digits
    from eve_scheduler.lightning import EveCallback

    data = digits.load_digits_split(args.seed)
    print(
        f"Training a 64-{digits.HIDDEN}-10 MLP on scikit-learn's digits "
        f"({len(data.y_train)} training, {len(data.y_test)} test images) with Adam, "
        f"base LR {args.lr:g}, {args.steps} steps of {args.batch_size}, seed {args.seed}, twice:"
    )
    print(f"  1. EveCallback with {describe_rule(rule, hparams)}")
    print(f"  2. the constant base LR {args.lr:g}")
    # The runs have no logger (the demo records LR and loss itself), so the callback's
    # per-step metrics would only cost time.
    callback_options: dict[str, Any] = {"rule": rule, "log_metrics": False, **hparams}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread
    try:
        runs = [
            digits.train(
                label,
                data,
                lr=args.lr,
                steps=args.steps,
                batch_size=args.batch_size,
                seed=args.seed,
                callbacks=callbacks,
            )
            for label, callbacks in [
                (f"EveCallback ({rule})", [EveCallback(**callback_options)]),
                ("constant LR", []),
            ]
        ]
    finally:
        torch.set_num_threads(threads)
    feedback = runs[0]

    print()
    print(results_table(runs, args.lr))
    print()
    print(factor_note(feedback, rule, args.lr))
    plot_path, csv_path = args.out / "demo.png", args.out / "history.csv"
    plot_runs(runs, args.lr, describe_rule(rule, hparams), plot_path)
    _write_history(runs, csv_path)
    print(f"\nPlot of loss and LR per step: {plot_path}\nPer-step numbers: {csv_path}")
    return 0


def results_table(runs: list[RunResult], base_lr: float) -> str:
    """One row per run: final training loss, test accuracy, mean LR, training time."""
    headers = ["run", "final train loss", "test accuracy", "mean LR", "train time"]
    rows = [
        [
            result.label,
            f"{result.train_loss:.4f}",
            f"{100 * result.test_accuracy:.1f}%",
            f"{statistics.fmean(result.lrs):.3g} ({statistics.fmean(result.lrs) / base_lr:.2f}x)",
            f"{result.train_seconds:.1f} s",
        ]
        for result in runs
    ]
    return format_table(headers, rows)


def factor_note(result: RunResult, rule: str, base_lr: float) -> str:
    """The factor the rule applied, as measured in this run, in plain words."""
    factors = [lr / base_lr for lr in result.lrs]
    lines = [
        f"The {rule} rule set the LR to {factors[0]:.2f} x base at the first step and "
        f"{factors[-1]:.2f} x base at the last (range {min(factors):.2f} to {max(factors):.2f}, "
        f"mean {statistics.fmean(factors):.2f}).",
        "'final train loss' is the cross-entropy on the whole training set after the last step.",
    ]
    if rule == "seed":
        lines.insert(
            1,
            "The seed rule's factor is in (0, 1) and starts at 0.5: it only ever lowers the LR "
            "below base, so a constant LR near its mean is the like-for-like comparison.",
        )
    return "\n".join(textwrap.fill(line, width=88) for line in lines)


def plot_runs(runs: list[RunResult], base_lr: float, rule: str, path: Path) -> None:
    """Training loss (raw and smoothed) and LR against step for every run, as PNG."""
    figure, (loss_axes, lr_axes) = new_figure(2, height=6.5)
    for result, color in zip(runs, ["tab:blue", "tab:orange"], strict=False):
        steps = range(1, len(result.losses) + 1)
        loss_axes.plot(steps, result.losses, color=color, lw=0.5, alpha=0.3)
        loss_axes.plot(steps, _moving_average(result.losses), color=color, label=result.label)
        lr_axes.plot(range(1, len(result.lrs) + 1), result.lrs, color=color, label=result.label)
    loss_axes.set_yscale("log")
    loss_axes.set_ylabel(f"training loss (minibatch; line: mean of {SMOOTHING})")
    loss_axes.set_title(f"digits MLP, Adam, base LR {base_lr:g}; {rule}", fontsize=9)
    lr_axes.set_ylabel("LR")
    lr_axes.set_xlabel("step")
    lr_axes.set_ylim(bottom=0)
    for axes in (loss_axes, lr_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    save_figure(figure, path)


def _moving_average(values: list[float]) -> list[float]:
    """Mean of the last ``SMOOTHING`` values (fewer at the start)."""
    means, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - SMOOTHING] if i >= SMOOTHING else 0.0)
        means.append(total / min(i + 1, SMOOTHING))
    return means


def _write_history(runs: list[RunResult], path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(["run", "step", "lr", "loss"])
            for result in runs:
                for step, (lr, loss) in enumerate(zip(result.lrs, result.losses, strict=True), 1):
                    writer.writerow([result.label, step, repr(lr), repr(loss)])
    except OSError as error:
        raise CliError(f"{path}: cannot write the history ({error.strerror or error})") from None
