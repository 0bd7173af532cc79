"""The ``trend`` rule: the LR factor follows how significant the loss trend is.

It keeps the founding idea of ``seed`` (a signal-to-noise score of loss progress
sets the LR scale) and removes its measured failures. It fits a level and a
trend to ``x = log(f - f_star)`` with two bias-corrected EMAs (horizon about
``1 / (1 - beta_slow)`` steps), clips each new value to ``clip`` noise units of
its forecast, and turns the trend into a z-score: the trend divided by its own
standard error. The factor is ``exp(g_t)``, neutral at 1:

.. math::

    o_t = \\mathrm{clip}(\\kappa (z_t - z_0),\\ 0,\\ \\log f_{max})

    c_t = \\mathrm{clip}(c_{t-1} + m_t,\\ \\log f_{min},\\ 0)

    g_t = g_{t-1} + \\mathrm{clip}(\\mathrm{clip}(o_t + c_t, \\log f_{min}, \\log f_{max})
          - g_{t-1},\\ -\\delta,\\ \\delta)

The opening ``o`` raises the LR while the descent is significant (fast early)
and falls back to 0 as the evidence fades (careful late). The brake ``c`` has
memory: its move ``m_t`` closes it by up to ``4 eta`` per step on a significant
rise (``z < -z0``), by up to ``eta`` per step on a stall (``z < z0``) once the
loss has fallen ``z0`` noise units below its first value, and otherwise reopens
it by ``eta / 4`` per step. Pure noise leaves the factor at 1. Every equation,
with the fit, is in ``docs/rules.md``.

References:
    Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015): bias
    correction of EMAs. Brown, "Smoothing, Forecasting and Prediction of Discrete
    Time Series" (1963): level and trend from exponential smoothing. Huber,
    "Robust Estimation of a Location Parameter" (1964): clipped residuals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from eve_scheduler.core._validate import check_range, keep_checked

MIN_ERRORS_TO_CLIP = 4  # forecast errors the noise must rest on before it clips one
BETA_GAP = 1e-3  # beta_fast <= beta_slow - BETA_GAP keeps the trend's error well conditioned


class TrendState(NamedTuple):
    """State of the ``trend`` rule after ``t`` accepted losses (all plain floats)."""

    t: int = 0
    first: float = math.nan  # x_1 = log(f_1 - f_star); NaN before the first loss
    a: float = 0.0  # fast EMA of the clipped log-loss (not bias-corrected)
    b: float = 0.0  # slow EMA of the clipped log-loss (not bias-corrected)
    q: float = 0.0  # EMA of the squared clipped forecast error (not bias-corrected)
    brake: float = 0.0  # c_t, in [log f_min, 0]
    log_factor: float = 0.0  # g_t


class TrendFit(NamedTuple):
    """What a state says about the loss stream (derived, not stored)."""

    level: float  # l_t, the fitted log(f - f_star) at step t
    trend: float  # mu_t, fitted decrease of log(f - f_star) per step (> 0: improving)
    noise: float  # sigma_t, the noise of log(f - f_star) around the fit (>= eps)
    z: float  # mu_t / (its standard error); 0 before two losses
    drop: float  # (x_1 - l_t) / sigma_t, the total progress in noise units


@dataclass(frozen=True)
class TrendRule:
    """Hyper-parameters and transitions of the ``trend`` rule.

    Args:
        beta_fast: decay of the fast EMA of the log-loss, in [0, beta_slow - 0.001].
        beta_slow: decay of the slow EMA and of the noise estimate, in [0.5, 0.9999];
            the horizon is about ``1 / (1 - beta_slow)`` steps.
        clip: residuals beyond ``clip`` noise units are clipped (spikes), in (0, inf).
        z0: significance threshold of the trend z-score, in (0, inf).
        gain: log-factor opened per unit of z-score beyond ``z0``, in [0, inf).
        eta: rate of the brake, in log-factor per step, in [0, 1]: it closes by up
            to ``4 * eta`` per step on a rise plus ``eta`` on a stall, and reopens
            by ``eta / 4`` per step.
        max_step: the log-factor moves at most this much per step, in (0, inf).
        f_min: lowest factor, in (0, 1].
        f_max: highest factor, in [1, inf).
        eps: noise floor, in units of log-loss, in [1e-6, 1e100]: above the rounding
            of the EMAs, so that a constant loss leaves the factor at 1.
        f_star: a lower bound of the loss (0 for ordinary losses).

    Example:
        >>> rule = TrendRule()
        >>> state = rule.init()
        >>> for t in range(20):  # a clean 1%-per-step descent
        ...     state = rule.update(state, 0.99**t)
        >>> round(rule.fit(state).trend, 4)  # log-loss falls by 0.01005 per step
        0.0101
        >>> round(rule.factor(state), 2)  # opening, by at most x1.105 per step
        4.95
    """

    name = "trend"

    beta_fast: float = 0.98
    beta_slow: float = 0.99
    clip: float = 3.0
    z0: float = 4.0
    gain: float = 0.05
    eta: float = 0.005
    max_step: float = 0.1
    f_min: float = 0.05
    f_max: float = 10.0
    eps: float = 1e-3
    f_star: float = 0.0

    def __post_init__(self) -> None:
        beta_slow = check_range("beta_slow", self.beta_slow, 0.5, 0.9999)
        checked = {
            "beta_slow": beta_slow,
            # the bound rounded to 12 decimals, so that beta_slow - 0.001 itself is accepted
            "beta_fast": check_range(
                "beta_fast", self.beta_fast, 0.0, round(beta_slow - BETA_GAP, 12)
            ),
            "clip": check_range("clip", self.clip, 0.0, math.inf, low_open=True),
            "z0": check_range("z0", self.z0, 0.0, math.inf, low_open=True),
            "gain": check_range("gain", self.gain, 0.0, math.inf),
            "eta": check_range("eta", self.eta, 0.0, 1.0),
            "max_step": check_range("max_step", self.max_step, 0.0, math.inf, low_open=True),
            "f_min": check_range("f_min", self.f_min, 0.0, 1.0, low_open=True),
            "f_max": check_range("f_max", self.f_max, 1.0, math.inf),
            # the floor stays above the EMAs' rounding (a constant loss reads as a trend
            # of about |log f| * 1e-16 per step), and eps**2 stays a finite float
            "eps": check_range("eps", self.eps, 1e-6, 1e100),
            "f_star": check_range("f_star", self.f_star),
        }
        keep_checked(self, checked)

    def init(self) -> TrendState:
        return TrendState()

    def fit(self, state: TrendState) -> TrendFit:
        """Level, trend, noise and z-score of the losses seen so far."""
        t = state.t
        if t == 0:
            return TrendFit(math.nan, 0.0, math.inf, 0.0, 0.0)
        noise = self._noise(state.q, t)
        if t == 1:
            return TrendFit(state.first, 0.0, noise, 0.0, 0.0)
        a_hat = state.a / (1.0 - self.beta_fast**t)
        b_hat = state.b / (1.0 - self.beta_slow**t)
        age_fast = mean_age(self.beta_fast, t)
        age_slow = mean_age(self.beta_slow, t)
        trend = (b_hat - a_hat) / (age_slow - age_fast)
        level = a_hat - trend * age_fast
        z = trend / (noise * trend_noise(self.beta_fast, self.beta_slow, t))
        return TrendFit(level, trend, noise, z, (state.first - level) / noise)

    def update(self, state: TrendState, loss: float) -> TrendState:
        """One transition; ``loss`` must be finite and above ``f_star``."""
        x = math.log(loss - self.f_star)
        t = state.t + 1
        q, first = state.q, state.first
        if t == 1:
            first = x
        else:
            previous = self.fit(state)
            forecast = previous.level - previous.trend
            error = x - forecast
            if t - 2 >= MIN_ERRORS_TO_CLIP:  # the noise rests on enough errors to clip by it
                bound = self.clip * previous.noise
                error = min(max(error, -bound), bound)
            x = forecast + error
            q = self.beta_slow * q + (1.0 - self.beta_slow) * (error * error)
        a = self.beta_fast * state.a + (1.0 - self.beta_fast) * x
        b = self.beta_slow * state.b + (1.0 - self.beta_slow) * x
        new = TrendState(t, first, a, b, q, state.brake, state.log_factor)
        fit = self.fit(new)
        low, high = math.log(self.f_min), math.log(self.f_max)
        brake = min(max(state.brake + self._brake_move(fit), low), 0.0)
        opening = min(max(self.gain * (fit.z - self.z0), 0.0), high)
        target = min(max(opening + brake, low), high)
        step = min(max(target - state.log_factor, -self.max_step), self.max_step)
        return new._replace(brake=brake, log_factor=state.log_factor + step)

    def factor(self, state: TrendState) -> float:
        # clipped: exp(log f_max) can round one step past f_max
        return min(max(math.exp(state.log_factor), self.f_min), self.f_max)

    def _brake_move(self, fit: TrendFit) -> float:
        """How the brake moves: closes on a rise or, after real progress, a stall."""
        z, z0 = fit.z, self.z0
        close = self.eta * min(max(4.0 * (-z - z0) / z0, 0.0), 4.0)
        stall = self.eta * min(max((z0 - z) / z0, 0.0), 1.0) if fit.drop > z0 else 0.0
        if close + stall > 0.0:
            return -(close + stall)
        return self.eta / 4.0

    def _noise(self, q: float, t: int) -> float:
        errors = t - 1  # forecast errors seen so far
        if errors == 0:
            return math.inf
        return math.sqrt(q / (1.0 - self.beta_slow**errors) + self.eps**2)


def mean_age(beta: float, n: int) -> float:
    """Mean age, in steps, of the weights of a bias-corrected EMA after ``n`` values.

    The weights are ``(1 - beta) beta^k / (1 - beta^n)`` for ages ``k = 0 .. n-1``,
    and their mean age is ``beta / (1 - beta) - n beta^n / (1 - beta^n)``.
    """
    if beta == 0.0:
        return 0.0
    return beta / (1.0 - beta) - n * beta**n / (1.0 - beta**n)


def trend_noise(beta_fast: float, beta_slow: float, n: int) -> float:
    """Standard deviation of the trend estimate for unit, independent noise (``n >= 2``).

    The trend is ``(b_hat - a_hat) / (L_slow - L_fast)``, a fixed linear
    combination of the ``n`` values; its variance per unit noise variance is the
    sum of the squared weight differences, in closed form.
    """
    ff = _weight_product(beta_fast, beta_fast, n)
    ss = _weight_product(beta_slow, beta_slow, n)
    fs = _weight_product(beta_fast, beta_slow, n)
    gap = mean_age(beta_slow, n) - mean_age(beta_fast, n)
    return math.sqrt(max(ff + ss - 2.0 * fs, 0.0)) / gap


def _weight_product(beta_1: float, beta_2: float, n: int) -> float:
    """Sum over ages of the product of two bias-corrected EMA weights after n values."""
    p = beta_1 * beta_2
    return (
        (1.0 - beta_1)
        * (1.0 - beta_2)
        * (1.0 - p**n)
        / ((1.0 - p) * (1.0 - beta_1**n) * (1.0 - beta_2**n))
    )
