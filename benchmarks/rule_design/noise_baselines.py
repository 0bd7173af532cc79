"""What the loss-driven baselines do on a trendless noise stream (no training).

The stream is f_t = exp(0.3 z_t), z_t ~ N(0, 1) iid: 30% multiplicative noise and no
trend, the stream on which the issue asks a feedback rule to stay neutral. Each
schedule is stepped exactly as the quality benchmark steps it (plateau: per epoch
of 10 steps on the epoch mean; GreedyLR: every step, smooth=True, bounds 0.01x-10x).
Prints the LR / base LR after 100, 300, 1000 and 3000 steps, median over 20 seeds.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.quality import schedules

CHECKPOINTS = (100, 300, 1000, 3000)


def lr_ratios(name: str, seed: int) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = schedules.build_schedule(name, opt, total_steps=3000, steps_per_epoch=10)
    rng = random.Random(seed)
    out = []
    for t in range(1, 3001):
        sched.after_step(math.exp(0.3 * rng.gauss(0.0, 1.0)))
        if t in CHECKPOINTS:
            out.append(opt.param_groups[0]["lr"])
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    names = sys.argv[1:] or ["plateau", "greedy", "seed", "eve"]
    print("LR / base LR on trendless 30% noise, median over 20 seeds")
    print(f"{'schedule':10s}" + "".join(f"{f't={c}':>10s}" for c in CHECKPOINTS))
    for name in names:
        runs = [lr_ratios(name, seed) for seed in range(20)]
        med = [statistics.median(r[i] for r in runs) for i in range(len(CHECKPOINTS))]
        print(f"{name:10s}" + "".join(f"{m:10.3g}" for m in med))


if __name__ == "__main__":
    main()
