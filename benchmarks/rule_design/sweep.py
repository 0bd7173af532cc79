"""Quick LR-multiplier sweeps on the quality benchmark's tasks, with design alternatives.

Design experiments only: it reuses ``benchmarks.quality.training.run`` unchanged and
adds schedules named ``alt:key=value,...`` (see ``proto.Alternative``) to the
harness's own names (``constant``, ``plateau``, ``greedy``, ``trend``, ...).

    python benchmarks/rule_design/sweep.py --seeds 0 1 2 --schedules trend \
        alt:mode=direct alt:mode=integrate,gain=0.25
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proto import Alternative

from benchmarks.quality import training
from benchmarks.quality.schedules import build_schedule


class AlternativeSchedule:
    """An ``Alternative`` applied as a factor on the run's LR, stepped every step."""

    def __init__(self, optimizer: torch.optim.Optimizer, **hparams: Any) -> None:
        self.optimizer = optimizer
        self.base = [group["lr"] for group in optimizer.param_groups]
        self.rule = Alternative(**hparams)

    def after_step(self, loss: float) -> None:
        if math.isfinite(loss) and loss > self.rule.f_star:
            self.rule.update(loss)
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            group["lr"] = base * self.rule.factor()

    def skipped_losses(self) -> int:
        return 0


def parse(spec: str) -> dict[str, Any]:
    """``"mode=direct,z0=4"`` -> ``{"mode": "direct", "z0": 4.0}``."""
    hparams: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, value = item.split("=")
        try:
            hparams[key] = float(value)
        except ValueError:
            hparams[key] = value
    return hparams


def build(name: str, optimizer: torch.optim.Optimizer, **kwargs: int) -> Any:
    if name.startswith("alt:"):
        return AlternativeSchedule(optimizer, **parse(name[4:]))
    return build_schedule(name, optimizer, **kwargs)


training.build_schedule = build  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", nargs="+", default=["digits", "diabetes", "breast_cancer", "char_lm"]
    )
    parser.add_argument("--mults", nargs="+", type=float, default=[0.25, 0.5, 1, 2, 4, 8])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--schedules", nargs="+", default=["constant", "trend"])
    parser.add_argument("--out", default=None, help="write every run (without curves) here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for task in args.tasks:
        print(f"== {task}  (final training loss, mean over seeds; inf if a seed diverged)")
        print(f"{'schedule':40s}" + "".join(f" {m:>9g}" for m in args.mults) + "     worst")
        for schedule in args.schedules:
            cells = []
            for mult in args.mults:
                values = []
                for seed in args.seeds:
                    result = training.run(training.RunSpec(task, schedule, mult, seed))
                    result.pop("curve")
                    rows.append(result)
                    values.append(math.inf if result["diverged"] else result["final_loss"])
                cells.append(sum(values) / len(values))
            row = "".join(f" {c:9.4g}" for c in cells)
            print(f"{schedule[:40]:40s}{row} {max(cells):8.4g}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
