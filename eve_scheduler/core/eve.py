"""The ``eve`` rule: the global feedback of the Eve optimizer.

.. math::

    \\tilde d_1 = 1

    d_t = \\frac{|f_t - f_{t-1}|}{\\min(f_t, f_{t-1}) - f^*}, \\quad
    \\hat d_t = \\mathrm{clip}(d_t, 1/c, c), \\quad
    \\tilde d_t = \\beta_3 \\tilde d_{t-1} + (1 - \\beta_3) \\hat d_t \\quad (t > 1)

    \\text{factor}_t = 1 / \\tilde d_t \\in [1/c, c]

Whenever the relative change of the loss is below 1/c, the clipped value is the
constant 1/c and the factor follows the loss-independent ramp
1 / (1/c + (1 - 1/c) beta3^(t-1)) toward c.

In floating point, ``1 / dtilde`` can round one unit in the last place outside
[1/c, c] (``1 / (1/c)`` is not always ``c``), so the factor is clipped to that
range; this changes no other value.

References:
    Hayashi, Koushik & Neubig, "Eve: A Gradient Based Optimization Method with
    Locally and Globally Adaptive Learning Rates", arXiv:1611.01505 (final version).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from eve_scheduler.core._validate import check_range, keep_checked


class EveState(NamedTuple):
    """State of the ``eve`` rule after ``t`` accepted losses."""

    t: int = 0
    prev_loss: float = math.nan  # f_{t-1}; NaN before the first loss
    d_tilde: float = 1.0


@dataclass(frozen=True)
class EveRule:
    """Hyper-parameters and transitions of the ``eve`` rule.

    Args:
        c: clipping bound; the factor stays in [1/c, c]. In [1, inf).
        beta3: smoothing of the clipped relative change, in [0, 1).
        f_star: a lower bound of the loss (0 for ordinary losses).

    Example:
        >>> rule = EveRule()
        >>> state = rule.update(rule.update(rule.init(), 2.0), 1.0)
        >>> round(rule.factor(state), 6)  # d_2 = 1, dtilde_2 = 0.999 + 0.001
        1.0
    """

    name = "eve"

    c: float = 10.0
    beta3: float = 0.999
    f_star: float = 0.0

    def __post_init__(self) -> None:
        checked = {
            "c": check_range("c", self.c, 1.0, math.inf),
            "beta3": check_range("beta3", self.beta3, 0.0, 1.0, high_open=True),
            "f_star": check_range("f_star", self.f_star),
        }
        keep_checked(self, checked)

    def init(self) -> EveState:
        return EveState()

    def update(self, state: EveState, loss: float) -> EveState:
        """One transition; ``loss`` must be finite and above ``f_star``."""
        t = state.t + 1
        if t == 1:
            return EveState(1, loss, 1.0)
        d = abs(loss - state.prev_loss) / (min(loss, state.prev_loss) - self.f_star)
        d_hat = min(max(d, 1.0 / self.c), self.c)
        d_tilde = self.beta3 * state.d_tilde + (1.0 - self.beta3) * d_hat
        return EveState(t, loss, d_tilde)

    def factor(self, state: EveState) -> float:
        return min(max(1.0 / state.d_tilde, 1.0 / self.c), self.c)
