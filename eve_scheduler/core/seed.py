"""The ``seed`` rule: a sigmoid of the signal-to-noise score of the loss ratio.

This is the project's own founding rule (its founding document credited it to
"Eve, Stanford 2015"; the rule appears in no paper we could find).

.. math::

    r_1 = 1, \\quad r_t = \\frac{f_{t-1} - f^*}{f_t - f^*} \\quad (t > 1)

    d_0 = 1, \\quad d_t = \\beta d_{t-1} + (1 - \\beta) r_t

    v_0 = 0, \\quad v_t = \\gamma v_{t-1} + (1 - \\gamma)(r_t - d_t)^2

    \\text{factor}_t = \\sigma\\left(k \\frac{d_t - 1}{\\sqrt{v_t + \\epsilon}}\\right)

The factor is in (0, 1) (in floating point it rounds to exactly 0 or 1 once the
score passes about -745 or +37), and it is exactly 0.5 before the first loss and
at t = 1: this rule only ever lowers the LR below base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from eve_scheduler.core._validate import check_range, keep_checked


class SeedState(NamedTuple):
    """State of the ``seed`` rule after ``t`` accepted losses."""

    t: int = 0
    prev_loss: float = math.nan  # f_{t-1}; NaN before the first loss
    d: float = 1.0
    v: float = 0.0


@dataclass(frozen=True)
class SeedRule:
    """Hyper-parameters and transitions of the ``seed`` rule.

    Args:
        beta: smoothing of the loss ratio d_t, in [0, 1).
        gamma: smoothing of the variance v_t, in [0, 1).
        k: gain of the score inside the sigmoid, in (0, inf).
        eps: added to v_t under the square root, in (0, inf).
        f_star: a lower bound of the loss (0 for ordinary losses).

    Example:
        >>> rule = SeedRule()
        >>> state = rule.update(rule.update(rule.init(), 2.0), 1.0)
        >>> round(state.d, 6), round(rule.factor(state), 6)
        (1.1, 0.752336)
    """

    name = "seed"

    beta: float = 0.9
    gamma: float = 0.99
    k: float = 1.0
    eps: float = 1e-8
    f_star: float = 0.0

    def __post_init__(self) -> None:
        checked = {
            "beta": check_range("beta", self.beta, 0.0, 1.0, high_open=True),
            "gamma": check_range("gamma", self.gamma, 0.0, 1.0, high_open=True),
            "k": check_range("k", self.k, 0.0, math.inf, low_open=True),
            "eps": check_range("eps", self.eps, 0.0, math.inf, low_open=True),
            "f_star": check_range("f_star", self.f_star),
        }
        keep_checked(self, checked)

    def init(self) -> SeedState:
        return SeedState()

    def update(self, state: SeedState, loss: float) -> SeedState:
        """One transition; ``loss`` must be finite and above ``f_star``."""
        t = state.t + 1
        r = 1.0 if t == 1 else (state.prev_loss - self.f_star) / (loss - self.f_star)
        d = self.beta * state.d + (1.0 - self.beta) * r
        v = self.gamma * state.v + (1.0 - self.gamma) * (r - d) ** 2
        return SeedState(t, loss, d, v)

    def factor(self, state: SeedState) -> float:
        return sigmoid(self.k * (state.d - 1.0) / math.sqrt(state.v + self.eps))


def sigmoid(z: float) -> float:
    """The logistic function, without overflow for any finite ``z``."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
