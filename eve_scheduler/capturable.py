"""The feedback rules stepped on the device: no host reads, capturable in a CUDA graph.

``DeviceFeedback`` holds a rule's state as one-element float64 tensors on a device and
steps it with tensor operations only: the loss is never read on the host, the
first-loss case and the skip of bad losses are ``torch.where`` selections
instead of Python branches, and every state tensor is updated in place, so a
captured graph that reads and writes them advances the state on each replay.

The transitions are the equations of :mod:`eve_scheduler.core`, written again
with tensor operations (as torch writes its optimizers once per implementation:
single-tensor, foreach, fused). The arithmetic is the same float64 arithmetic;
only ``log``, ``exp``, ``sqrt`` and the sigmoid come from torch instead of the
``math`` module, so the factors agree with the core's float path to within a few
units in the last place (``tests/test_capturable.py`` bounds it at 1e-12 relative).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from eve_scheduler.core import EveRule, Rule, SeedRule, TrendRule
from eve_scheduler.core.trend import MIN_ERRORS_TO_CLIP

States = dict[str, Tensor]


class DeviceFeedback:
    """A rule's state on a device, stepped without host-device synchronization.

    Args:
        rule: a rule of :mod:`eve_scheduler.core` (``seed``, ``eve`` or ``trend``).
        device: where the state lives (the device of the LR tensors).

    Example:
        >>> feedback = DeviceFeedback(SeedRule(), torch.device("cpu"))
        >>> for loss in [4.0, 2.0, 1.0]:
        ...     feedback.update(torch.tensor(loss))
        >>> round(float(feedback.factor), 6)  # as SeedRule's float path
        0.828286
    """

    def __init__(self, rule: Rule, device: torch.device) -> None:
        self.rule = rule
        self._transition, self._factor = _TENSOR_FORMS[type(rule)]
        self.state: States = {}
        self.skipped = torch.zeros(1, dtype=torch.int64, device=device)
        self.factor = _scalar(device)
        self.load(rule.init()._asdict(), skipped=0)

    @property
    def device(self) -> torch.device:
        return self.factor.device

    def update(self, loss: Tensor) -> None:
        """Feed one loss; skip and count it where ``core.advance`` would skip it: a loss
        that is not usable, or whose update would put inf or NaN into the state or
        the factor."""
        f = loss.detach().reshape(1).to(self.device, torch.float64, non_blocking=True)
        new = self._transition(self.rule, self.state, f)
        factor = self._factor(self.rule, new)
        usable = torch.isfinite(f) & (f > self.rule.f_star) & torch.isfinite(factor)
        for value in new.values():
            usable &= torch.isfinite(value)
        for name, value in new.items():
            self.state[name].copy_(torch.where(usable, value, self.state[name]))
        self.skipped.add_((~usable).to(torch.int64))
        self.factor.copy_(torch.where(usable, factor, self.factor))

    def snapshot(self) -> tuple[dict[str, float | int], int]:
        """The state as plain numbers, as the core's float path holds it (reads the device)."""
        numbers = torch.cat([*self.state.values(), self.skipped.double()]).tolist()  # one read
        values: dict[str, float | int] = dict(zip(self.state, numbers[:-1], strict=True))
        values["t"] = int(values["t"])
        return values, int(numbers[-1])

    def load(self, values: dict[str, Any], skipped: int) -> None:
        """Set the state from plain numbers, in place: tensors already captured stay valid."""
        for name, value in values.items():
            if name not in self.state:
                self.state[name] = _scalar(self.device)
            self.state[name].fill_(float(value))
        self.skipped.fill_(int(skipped))
        self.factor.copy_(self._factor(self.rule, self.state))


def _scalar(device: torch.device) -> Tensor:
    """A state entry: shape (1,), not 0-d, because torch.compile (2.13, aot_eager and
    inductor) loses in-place writes to 0-d float64 tensors held by Python objects."""
    return torch.zeros(1, dtype=torch.float64, device=device)


# -- the transitions in tensor form; each mirrors ``update`` of its core rule --------


def _seed_transition(rule: SeedRule, s: States, f: Tensor) -> States:
    t = s["t"] + 1
    ratio = (s["prev_loss"] - rule.f_star) / (f - rule.f_star)
    r = torch.where(t == 1, 1.0, ratio)
    d = rule.beta * s["d"] + (1.0 - rule.beta) * r
    v = rule.gamma * s["v"] + (1.0 - rule.gamma) * (r - d) ** 2
    return {"t": t, "prev_loss": f, "d": d, "v": v}


def _seed_factor(rule: SeedRule, s: States) -> Tensor:
    return torch.sigmoid(rule.k * (s["d"] - 1.0) / torch.sqrt(s["v"] + rule.eps))


def _eve_transition(rule: EveRule, s: States, f: Tensor) -> States:
    t = s["t"] + 1
    d = torch.abs(f - s["prev_loss"]) / (torch.minimum(f, s["prev_loss"]) - rule.f_star)
    d_hat = torch.clamp(d, 1.0 / rule.c, rule.c)
    d_tilde = rule.beta3 * s["d_tilde"] + (1.0 - rule.beta3) * d_hat
    return {"t": t, "prev_loss": f, "d_tilde": torch.where(t == 1, 1.0, d_tilde)}


def _eve_factor(rule: EveRule, s: States) -> Tensor:
    return torch.clamp(1.0 / s["d_tilde"], 1.0 / rule.c, rule.c)


def _trend_fit(rule: TrendRule, s: States) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``TrendRule.fit`` for a state of ``t >= 1`` losses: level, trend, noise, z, drop."""
    t = s["t"]
    a_hat = s["a"] / (1.0 - rule.beta_fast**t)
    b_hat = s["b"] / (1.0 - rule.beta_slow**t)
    errors = t - 1
    noise = torch.sqrt(s["q"] / (1.0 - rule.beta_slow**errors) + rule.eps**2)
    noise = torch.where(errors == 0, math.inf, noise)
    age_fast = _mean_age(rule.beta_fast, t)
    age_slow = _mean_age(rule.beta_slow, t)
    trend = (b_hat - a_hat) / (age_slow - age_fast)
    level = a_hat - trend * age_fast
    z = trend / (noise * _trend_noise(rule.beta_fast, rule.beta_slow, t))
    drop = (s["first"] - level) / noise
    one = t == 1
    return (
        torch.where(one, s["first"], level),
        torch.where(one, 0.0, trend),
        noise,
        torch.where(one, 0.0, z),
        torch.where(one, 0.0, drop),
    )


def _trend_transition(rule: TrendRule, s: States, f: Tensor) -> States:
    x = torch.log(f - rule.f_star)
    t = s["t"] + 1
    first = t == 1
    level, trend, noise, _, _ = _trend_fit(rule, s)  # the fit before this loss (t >= 2)
    forecast = level - trend
    error = x - forecast
    bound = rule.clip * noise
    clipped = torch.where(t - 2 >= MIN_ERRORS_TO_CLIP, torch.clamp(error, -bound, bound), error)
    x = torch.where(first, x, forecast + clipped)
    q = torch.where(first, s["q"], rule.beta_slow * s["q"] + (1.0 - rule.beta_slow) * clipped**2)
    a = rule.beta_fast * s["a"] + (1.0 - rule.beta_fast) * x
    b = rule.beta_slow * s["b"] + (1.0 - rule.beta_slow) * x
    new = {"t": t, "first": torch.where(first, x, s["first"]), "a": a, "b": b, "q": q}
    _, _, _, z, drop = _trend_fit(rule, new)
    low, high = math.log(rule.f_min), math.log(rule.f_max)
    brake = torch.clamp(s["brake"] + _trend_brake_move(rule, z, drop), low, 0.0)
    opening = torch.clamp(rule.gain * (z - rule.z0), 0.0, high)
    target = torch.clamp(opening + brake, low, high)
    step = torch.clamp(target - s["log_factor"], -rule.max_step, rule.max_step)
    return {**new, "brake": brake, "log_factor": s["log_factor"] + step}


def _trend_brake_move(rule: TrendRule, z: Tensor, drop: Tensor) -> Tensor:
    z0, eta = rule.z0, rule.eta
    close = eta * torch.clamp(4.0 * (-z - z0) / z0, 0.0, 4.0)
    stall = torch.where(drop > z0, eta * torch.clamp((z0 - z) / z0, 0.0, 1.0), 0.0)
    return torch.where(close + stall > 0.0, -(close + stall), eta / 4.0)


def _trend_factor(rule: TrendRule, s: States) -> Tensor:
    return torch.clamp(torch.exp(s["log_factor"]), rule.f_min, rule.f_max)


def _mean_age(beta: float, n: Tensor) -> Tensor:
    """``core.trend.mean_age`` for ``n >= 1`` (0 when ``beta`` is 0)."""
    return beta / (1.0 - beta) - n * beta**n / (1.0 - beta**n)


def _trend_noise(beta_fast: float, beta_slow: float, n: Tensor) -> Tensor:
    """``core.trend.trend_noise`` (``n >= 2``)."""
    ff = _weight_product(beta_fast, beta_fast, n)
    ss = _weight_product(beta_slow, beta_slow, n)
    fs = _weight_product(beta_fast, beta_slow, n)
    gap = _mean_age(beta_slow, n) - _mean_age(beta_fast, n)
    return torch.sqrt(torch.clamp(ff + ss - 2.0 * fs, min=0.0)) / gap


def _weight_product(beta_1: float, beta_2: float, n: Tensor) -> Tensor:
    p = beta_1 * beta_2
    return (
        (1.0 - beta_1)
        * (1.0 - beta_2)
        * (1.0 - p**n)
        / ((1.0 - p) * (1.0 - beta_1**n) * (1.0 - beta_2**n))
    )


_TENSOR_FORMS: dict[type[Any], tuple[Callable[..., States], Callable[..., Tensor]]] = {
    SeedRule: (_seed_transition, _seed_factor),
    EveRule: (_eve_transition, _eve_factor),
    TrendRule: (_trend_transition, _trend_factor),
}
