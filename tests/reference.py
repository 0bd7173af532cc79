"""A slow, literal reference of the two feedback rules, written from ALGORITHMS.md alone.

It does not import ``eve_scheduler``: the tests compare the library against it.
Each rule is written as the equations are, with one list per sequence indexed by
t (``r[t]``, ``d[t]``, ``v[t]``, ...), over the accepted losses only: a loss that is
not finite or is at or below ``f_star`` is dropped, and the factor after it is
the factor after the previous accepted loss.

The arithmetic is written in the order the equations read (e.g. ``(r - d) ** 2``,
``k * (d - 1) / sqrt(v + eps)``), so that an implementation of the same equations
gives the same floats, bit for bit.
"""

from __future__ import annotations

import math


def usable(loss: float, f_star: float) -> bool:
    """A loss enters the recursions only if it is finite and strictly above f_star."""
    return math.isfinite(loss) and loss > f_star


def sigmoid(z: float) -> float:
    """The logistic function 1 / (1 + exp(-z)), written so that exp never overflows."""
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    return math.exp(z) / (1 + math.exp(z))


def clip(x: float, low: float, high: float) -> float:
    """x limited to [low, high]."""
    if x < low:
        return low
    if x > high:
        return high
    return x


def seed_sequences(
    losses: list[float],
    beta: float = 0.9,
    gamma: float = 0.99,
    k: float = 1.0,
    eps: float = 1e-8,
    f_star: float = 0.0,
) -> dict[str, list[float]]:
    """The ``seed`` rule over the accepted losses: lists indexed by t = 0 .. T.

    r_1 = 1, r_t = (f_{t-1} - f*) / (f_t - f*)
    d_0 = 1, d_t = beta d_{t-1} + (1 - beta) r_t
    v_0 = 0, v_t = gamma v_{t-1} + (1 - gamma) (r_t - d_t)^2
    factor_t = sigmoid(k (d_t - 1) / sqrt(v_t + eps))
    """
    f = [math.nan] + [x for x in losses if usable(x, f_star)]  # f[1] is the first loss
    r = [math.nan]
    d = [1.0]
    v = [0.0]
    for t in range(1, len(f)):
        r.append(1.0 if t == 1 else (f[t - 1] - f_star) / (f[t] - f_star))
        d.append(beta * d[t - 1] + (1 - beta) * r[t])
        v.append(gamma * v[t - 1] + (1 - gamma) * (r[t] - d[t]) ** 2)
    factor = [sigmoid(k * (d[t] - 1) / math.sqrt(v[t] + eps)) for t in range(len(f))]
    return {"f": f, "r": r, "d": d, "v": v, "factor": factor}


def eve_sequences(
    losses: list[float], c: float = 10.0, beta3: float = 0.999, f_star: float = 0.0
) -> dict[str, list[float]]:
    """The ``eve`` rule over the accepted losses: lists indexed by t = 0 .. T.

    dtilde_1 = 1
    d_t = |f_t - f_{t-1}| / (min(f_t, f_{t-1}) - f*),  dhat_t = clip(d_t, 1/c, c)
    dtilde_t = beta3 dtilde_{t-1} + (1 - beta3) dhat_t       (t > 1)
    factor_t = 1 / dtilde_t
    (before any loss, t = 0, the factor is 1: dtilde_0 = 1)
    """
    f = [math.nan] + [x for x in losses if usable(x, f_star)]
    dtilde = [1.0]
    for t in range(1, len(f)):
        if t == 1:
            dtilde.append(1.0)
            continue
        d = abs(f[t] - f[t - 1]) / (min(f[t], f[t - 1]) - f_star)
        dhat = clip(d, 1 / c, c)
        dtilde.append(beta3 * dtilde[t - 1] + (1 - beta3) * dhat)
    factor = [1 / dtilde[t] for t in range(len(f))]
    return {"f": f, "dtilde": dtilde, "factor": factor}


def accepted_counts(losses: list[float], f_star: float = 0.0) -> list[int]:
    """How many losses had been accepted after each loss of the stream."""
    counts, t = [], 0
    for x in losses:
        t += usable(x, f_star)
        counts.append(t)
    return counts


def factors(losses: list[float], rule: str = "seed", **hparams: float) -> list[float]:
    """The factor after each loss of the stream (skipped losses repeat the factor)."""
    sequences = seed_sequences if rule == "seed" else eve_sequences
    factor = sequences(losses, **hparams)["factor"]
    f_star = hparams.get("f_star", 0.0)
    return [factor[t] for t in accepted_counts(losses, f_star)]


def factors_before_each_loss(
    losses: list[float], rule: str = "seed", **hparams: float
) -> list[float]:
    """factor_t for t = 0 .. len(losses) - 1: the factor in force before loss t + 1.

    With ``scheduler.step(loss)`` called after each optimizer step, this is the
    multiplier of the LR that optimizer step t (counting from 0) uses.
    """
    sequences = seed_sequences if rule == "seed" else eve_sequences
    factor = sequences(losses, **hparams)["factor"]
    counts = [0, *accepted_counts(losses, hparams.get("f_star", 0.0))]
    return [factor[counts[t]] for t in range(len(losses))]
