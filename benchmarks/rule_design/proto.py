"""The two single-mechanism alternatives to ``trend``, for the design comparison only.

Both read the same trend z-score as the library's ``trend`` rule (its fit is reused,
so the statistics are identical) and differ only in how z becomes a factor:

- ``direct``: a memoryless map. The log-factor moves (by at most ``max_step`` per
  step) toward ``clip(gain * s(z), log f_min, log f_max)``, where
  ``s(z) = sign(z) * max(|z| - z0, 0)`` is z with a dead zone.
- ``integrate``: an integrating controller. The log-factor accumulates
  ``eta * clip(gain * s(z), -1, 1)`` each step, clipped to ``[log f_min, log f_max]``.

``trend`` itself combines a direct-map opening with an integrating brake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eve_scheduler.core import TrendRule, TrendState


@dataclass
class Alternative:
    """A factor from the ``trend`` z-score by one mechanism (``direct`` or ``integrate``)."""

    mode: str = "direct"
    z0: float = 4.0
    gain: float = 0.05
    f_min: float = 0.05
    f_max: float = 10.0
    max_step: float = 0.1  # direct: bound on the log-factor move per step
    eta: float = 0.02  # integrate: log-factor per step at full drive
    f_star: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("direct", "integrate"):
            raise ValueError(f"mode must be 'direct' or 'integrate', got mode={self.mode!r}")
        self.fit_rule = TrendRule(z0=self.z0, f_star=self.f_star)
        self.state: TrendState = self.fit_rule.init()
        self.log_factor = 0.0

    def update(self, loss: float) -> float:
        self.state = self.fit_rule.update(self.state, loss)
        z = self.fit_rule.fit(self.state).z
        s = math.copysign(max(abs(z) - self.z0, 0.0), z)
        low, high = math.log(self.f_min), math.log(self.f_max)
        if self.mode == "direct":
            target = min(max(self.gain * s, low), high)
            move = min(max(target - self.log_factor, -self.max_step), self.max_step)
            self.log_factor += move
        else:
            drive = min(max(self.gain * s, -1.0), 1.0)
            self.log_factor = min(max(self.log_factor + self.eta * drive, low), high)
        return self.factor()

    def factor(self) -> float:
        return math.exp(self.log_factor)
