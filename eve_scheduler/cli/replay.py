"""``eve-scheduler replay FILE``: what a rule would have done with a recorded loss curve.

The losses are fed, in order, to the rule of :mod:`eve_scheduler.core` (through
``simulate`` and ``simulate_states``, as ``LossFeedbackScheduler.step`` would feed
them), and each row shows the factor and the LR (base LR x factor) that the
scheduler would set after that loss, i.e. for the next optimizer step. It is an
open-loop replay: the recorded losses stay as they were, whereas changing the LR
during training would have changed them.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from eve_scheduler.cli.loss_curves import DEFAULT_COLUMNS, FORMATS, LossCurve, read_loss_curve
from eve_scheduler.cli.options import CliError, add_rule_options, describe_rule, rule_options
from eve_scheduler.cli.plots import new_figure, save_figure
from eve_scheduler.cli.tables import format_table
from eve_scheduler.core import make_rule, simulate, simulate_states

# State fields left out of the output: the count of accepted losses and the last one.
HIDDEN_STATE_FIELDS = ("t", "prev_loss")
DEFAULT_LR = 1e-3


@dataclass(frozen=True)
class Replay:
    """A loss curve and what the rule does with it, one entry per loss."""

    curve: LossCurve
    rule: str
    hparams: dict[str, float]
    base_lr: float
    factors: list[float]
    states: list[Any]
    skipped: list[bool]

    @property
    def state_fields(self) -> list[str]:
        """The rule's state variables shown per row (``d``, ``v`` for ``seed``)."""
        names: tuple[str, ...] = self.states[0]._fields
        return [name for name in names if name not in HIDDEN_STATE_FIELDS]

    @property
    def columns(self) -> list[str]:
        return ["step", "loss", "skipped", "factor", "lr", *self.state_fields]

    def rows(self) -> Iterator[list[Any]]:
        """One row per loss: step, loss, skipped (0/1), factor, lr, state variables."""
        for step, loss, skipped, factor, state in zip(
            self.curve.steps,
            self.curve.losses,
            self.skipped,
            self.factors,
            self.states,
            strict=True,
        ):
            variables = [getattr(state, name) for name in self.state_fields]
            yield [step, loss, int(skipped), factor, self.base_lr * factor, *variables]


def replay_curve(curve: LossCurve, rule: str, hparams: dict[str, float], base_lr: float) -> Replay:
    """Feed the curve's losses to the rule, as the scheduler would."""
    states = simulate_states(curve.losses, rule, **hparams)
    accepted = [0] + [state.t for state in states]  # t counts the accepted losses
    return Replay(
        curve=curve,
        rule=rule,
        hparams=hparams,
        base_lr=base_lr,
        factors=simulate(curve.losses, rule, **hparams),
        states=states,
        skipped=[after == before for before, after in itertools.pairwise(accepted)],
    )


def add_parser(commands: Any) -> None:
    """Add the ``replay`` command to the ``eve-scheduler`` sub-command parsers."""
    parser = commands.add_parser(
        "replay",
        help="show what a rule would have done with a recorded loss curve",
        description=(
            "Feed a recorded loss curve to a feedback rule and show the factor and LR it "
            "would have set after each loss, as a table, a CSV file or a plot. The replay is "
            "open loop: the recorded losses stay as they were, whereas other LRs during "
            "training would have changed them."
        ),
    )
    parser.add_argument(
        "file",
        type=Path,
        help="Lightning CSVLogger metrics.csv, a file of one loss per line, or a TensorBoard "
        "events file (or the folder of one run)",
    )
    parser.add_argument(
        "--column",
        help="the CSV column or TensorBoard tag holding the loss (default: the first of "
        + ", ".join(DEFAULT_COLUMNS)
        + " that exists)",
    )
    parser.add_argument(
        "--format",
        dest="file_format",
        choices=FORMATS,
        default="auto",
        help="the file's format (default: guessed from its name and first line)",
    )
    add_rule_options(parser)
    parser.add_argument(
        "--lr",
        type=float,
        default=DEFAULT_LR,
        help=f"the base LR that the factor multiplies (default: {DEFAULT_LR:g})",
    )
    parser.add_argument(
        "--csv",
        metavar="OUT",
        help="write every row to OUT as CSV; '-' writes the CSV to stdout instead of the table",
    )
    parser.add_argument("--plot", metavar="OUT.png", type=Path, help="write a plot of loss and LR")
    parser.add_argument(
        "--rows",
        type=int,
        default=20,
        help="how many evenly spaced rows the printed table shows (default: 20; 0: all)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``eve-scheduler replay`` with parsed arguments; return the exit status."""
    rule, hparams = rule_options(args)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise CliError(f"--lr must be a positive number, got {args.lr!r}")
    if args.rows < 0:
        raise CliError(f"--rows must be 0 (all) or more, got {args.rows}")
    curve = read_loss_curve(args.file, column=args.column, file_format=args.file_format)
    replay = replay_curve(curve, rule, hparams, args.lr)
    to_stdout = args.csv == "-"
    if to_stdout:
        write_csv(replay, sys.stdout)
    else:
        print(summary(replay))
        print()
        print(format_table(replay.columns, [_show(row) for row in _pick(replay, args.rows)]))
    written = []
    if args.csv and not to_stdout:
        _write_csv_file(replay, Path(args.csv))
        written.append(f"CSV written to {args.csv}")
    if args.plot is not None:
        plot_replay(replay, args.plot)
        written.append(f"Plot written to {args.plot}")
    if written and to_stdout:
        print("\n".join(written), file=sys.stderr)  # keep stdout pure CSV
    elif written:
        print("\n" + "\n".join(written))
    return 0


def summary(replay: Replay) -> str:
    """A few lines: what was replayed through what, and the factor's range."""
    factors = replay.factors
    skipped = sum(replay.skipped)
    f_star = make_rule(replay.rule, **replay.hparams).f_star
    return "\n".join(
        [
            f"Replayed {len(factors)} losses from {replay.curve.source}",
            f"through {describe_rule(replay.rule, replay.hparams)}, base LR {replay.base_lr:g}.",
            f"factor: {factors[0]:.4g} after the first loss, {factors[-1]:.4g} after the last; "
            f"mean {statistics.fmean(factors):.4g}, range [{min(factors):.4g}, {max(factors):.4g}]",
            f"skipped: {skipped} (NaN, infinite, at or below f_star={f_star:g}, or "
            "overflowing the state; the factor holds)",
            "Each row: the factor, and the LR (base x factor), set after that row's loss "
            "for the next step.",
            "Open loop: the losses are the recorded ones; other LRs would have changed them.",
        ]
    )


def write_csv(replay: Replay, stream: TextIO) -> None:
    """Every row of the replay as CSV, floats at full precision."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(replay.columns)
    writer.writerows(
        [repr(cell) if isinstance(cell, float) else cell for cell in row] for row in replay.rows()
    )


def _write_csv_file(replay: Replay, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as stream:
            write_csv(replay, stream)
    except OSError as error:
        raise CliError(f"{path}: cannot write the CSV ({error.strerror or error})") from None


def plot_replay(replay: Replay, path: Path) -> None:
    """Loss (top) and factor with its LR (bottom) against step, as PNG."""
    figure, (loss_axes, factor_axes) = new_figure(2, height=6.0)
    steps = replay.curve.steps
    loss_axes.plot(steps, replay.curve.losses, lw=0.8, color="tab:gray")
    if all(loss > 0 for loss in replay.curve.losses if math.isfinite(loss)):
        loss_axes.set_yscale("log")
    loss_axes.set_ylabel("loss (recorded)")
    loss_axes.set_title(f"replay of {replay.curve.source}", fontsize=9)
    factor_axes.plot(steps, replay.factors, lw=1.2, color="tab:blue")
    factor_axes.set_ylabel("factor")
    factor_axes.set_xlabel("step")
    base = replay.base_lr
    lr_axis = factor_axes.secondary_yaxis(
        "right", functions=(lambda f: f * base, lambda lr: lr / base)
    )
    lr_axis.set_ylabel(f"LR (base {base:g})")
    factor_axes.set_title(describe_rule(replay.rule, replay.hparams), fontsize=9)
    for axes in (loss_axes, factor_axes):
        axes.grid(alpha=0.3)
    save_figure(figure, path)


def _pick(replay: Replay, count: int) -> list[list[Any]]:
    """``count`` evenly spaced rows, the first and the last included (0: all)."""
    rows = list(replay.rows())
    if count == 0 or count >= len(rows):
        return rows
    if count == 1:
        return rows[-1:]
    picked = sorted({round(i * (len(rows) - 1) / (count - 1)) for i in range(count)})
    return [rows[i] for i in picked]


def _show(row: list[Any]) -> list[str]:
    return [f"{cell:.6g}" if isinstance(cell, float) else str(cell) for cell in row]
