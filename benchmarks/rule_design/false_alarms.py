"""How often does pure noise move the ``trend`` factor more than 10% from neutral?

Streams f_t = exp(0.3 z_t) (lognormal) and f_t = 1 + 0.3 u_t (uniform), no trend,
3,000 steps each; counts the streams whose factor leaves [0.9, 1.1] after a burn-in
of 10 steps, and the largest deviation seen.

    python benchmarks/rule_design/false_alarms.py [streams per noise model]
"""

from __future__ import annotations

import math
import random
import sys

from eve_scheduler.core import simulate


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for model in ("lognormal", "uniform"):
        bad, worst = 0, 0.0
        for seed in range(n):
            rng = random.Random(10_000 + seed)
            if model == "lognormal":
                losses = [math.exp(0.3 * rng.gauss(0.0, 1.0)) for _ in range(3000)]
            else:
                losses = [1.0 + 0.3 * rng.uniform(-1.0, 1.0) for _ in range(3000)]
            deviation = max(abs(f - 1.0) for f in simulate(losses, rule="trend")[10:])
            worst = max(worst, deviation)
            bad += deviation > 0.1
        print(f"{model:9s}: {bad} of {n} streams left [0.9, 1.1]; largest deviation {worst:.4f}")


if __name__ == "__main__":
    main()
