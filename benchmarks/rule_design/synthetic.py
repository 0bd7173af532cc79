"""The five synthetic behaviours of the issue, for every rule in the core (no training).

Noise models: lognormal f_t = trend_t * exp(sigma z_t) with z_t ~ N(0, 1); uniform
f_t = trend_t * (1 + a u_t) with u_t ~ U(-1, 1). Seeds 0-9 where there is noise.

    python benchmarks/rule_design/synthetic.py [rule ...]
"""

from __future__ import annotations

import math
import random
import sys

from eve_scheduler.core import RULES, simulate

SEEDS = range(10)


def noisy(trend, sigma: float, n: int, seed: int, model: str = "lognormal") -> list[float]:
    rng = random.Random(seed)
    if model == "lognormal":
        return [trend(t) * math.exp(sigma * rng.gauss(0.0, 1.0)) for t in range(n)]
    return [trend(t) * (1.0 + sigma * rng.uniform(-1.0, 1.0)) for t in range(n)]


def first(values: list[float], predicate) -> int | None:
    return next((i + 1 for i, v in enumerate(values) if predicate(v)), None)


def report(rule: str) -> None:
    factors = simulate([0.99**t for t in range(300)], rule=rule)
    top = max(factors)
    reached = first(factors, lambda f: f >= 0.9 * top)
    print(
        f"  clean 1% descent: largest factor {top:.3g}; 0.9 of it reached at step "
        f"{reached}; factor at step 50: {factors[49]:.3g}"
    )
    for model in ("lognormal", "uniform"):
        lo, hi = math.inf, -math.inf
        for seed in SEEDS:
            fs = simulate(noisy(lambda t: 1.0, 0.3, 3000, seed, model), rule=rule)[10:]
            lo, hi = min(lo, *fs), max(hi, *fs)
        print(
            f"  pure 30% noise ({model}), steps 11-3000, 10 seeds: factor in [{lo:.3g}, {hi:.3g}]"
        )
    spike = [0.99**t * (10.0 if t == 300 else 1.0) for t in range(1500)]
    fs = simulate(spike, rule=rule)
    before = fs[299]
    back = next(
        (i - 300 for i in range(300, 1500) if all(abs(f / before - 1) <= 0.1 for f in fs[i:])), None
    )
    print(
        f"  x10 spike at step 301 of a clean descent: factor {before:.3g} before, lowest "
        f"{min(fs[300:]):.3g} after, back within 10% for good after {back} steps"
    )
    worst = 0
    for seed in SEEDS:
        fs = simulate(noisy(lambda t: 1.001**t, 0.01, 2000, seed), rule=rule)
        bound = 0.25 if rule == "seed" else 0.5
        hit = first(fs, lambda f, bound=bound: f < bound)
        worst = max(worst, hit or 10**9)
    label = "below 0.5 of neutral" if rule != "seed" else "below 0.25 (half of seed's 0.5)"
    print(
        f"  0.1%/step rise under 1% noise: {label} by step "
        f"{worst if worst < 10**9 else 'never (2,000 steps)'} (worst of 10 seeds)"
    )
    base = noisy(lambda t: 0.995**t, 0.1, 1000, 1)
    a = simulate(base, rule=rule)
    b = simulate([7.3 * f for f in base], rule=rule)
    c = simulate([f + 100.0 for f in base], rule=rule, f_star=100.0)
    scaled = max(abs(x - y) for x, y in zip(a, b, strict=True))
    shifted = max(abs(x - y) for x, y in zip(a, c, strict=True))
    print(f"  x7.3 scaling: max factor change {scaled:.1e}; +100 shift: {shifted:.1e}")


if __name__ == "__main__":
    for name in sys.argv[1:] or list(RULES):
        print(name)
        report(name)
