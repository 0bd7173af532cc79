"""Trace one training run of the ``trend`` rule: loss, factor, z, trend, noise, brake.

python benchmarks/rule_design/trace.py digits 8 [every=50] [seed=0] [key=value ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.quality import schedules, training
from eve_scheduler import LossFeedbackScheduler


def main() -> None:
    task, mult = sys.argv[1], float(sys.argv[2])
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    hparams = {k: float(v) for k, v in (a.split("=") for a in sys.argv[5:])}
    log: list[tuple[float, ...]] = []

    class Traced(schedules.Feedback):
        def __init__(self, optimizer: torch.optim.Optimizer, rule: str) -> None:
            self.scheduler = LossFeedbackScheduler(optimizer, rule="trend", **hparams)

        def after_step(self, loss: float) -> None:
            super().after_step(loss)
            rule, state = self.scheduler.rule, self.scheduler.state
            fit = rule.fit(state)  # type: ignore[attr-defined]
            log.append(
                (
                    state.t,
                    loss,
                    rule.factor(state),
                    fit.z,
                    fit.trend,
                    fit.noise,
                    fit.drop,
                    state.brake,
                )
            )

    schedules.Feedback = Traced  # type: ignore[misc]
    torch.set_num_threads(1)
    out = training.run(training.RunSpec(task, "trend", mult, seed))
    curve = dict(out["curve"])
    print(f"final loss {out['final_loss']}, mean factor {out['mean_lr_ratio']:.2f}")
    for t, loss, factor, z, trend, noise, drop, brake in log:
        if t % every == 0:
            print(
                f"t={t:5.0f} batch={loss:8.4f} measured={curve.get(t, float('nan')):8.4f} "
                f"factor={factor:6.3f} z={z:7.2f} trend={trend:9.2e} noise={noise:6.3f} "
                f"drop={drop:6.1f} brake={brake:6.3f}"
            )


if __name__ == "__main__":
    main()
