"""eve_scheduler: loss-feedback learning-rate scheduling for any PyTorch optimizer.

``LossFeedbackScheduler(optimizer)`` with ``scheduler.step(loss)`` after each
optimizer step rescales every param group's LR by a factor computed from the
training loss; ``EveCallback`` does the same in Lightning with no other change.
The recursions live in :mod:`eve_scheduler.core`, which imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eve_scheduler.core import RULES, EveRule, SeedRule, make_rule, simulate, simulate_states
from eve_scheduler.scheduler import (
    BadLossError,
    LossFeedbackScheduler,
    SkippedLossWarning,
    loss_to_float,
)

if TYPE_CHECKING:
    from eve_scheduler.lightning import EveCallback

__version__ = "0.1.0.dev0"

__all__ = [
    "RULES",
    "BadLossError",
    "EveCallback",
    "EveRule",
    "LossFeedbackScheduler",
    "SeedRule",
    "SkippedLossWarning",
    "loss_to_float",
    "make_rule",
    "simulate",
    "simulate_states",
]


def __getattr__(name: str) -> Any:
    # Lightning is an optional extra: import the callback only when asked for.
    if name == "EveCallback":
        from eve_scheduler.lightning import EveCallback

        return EveCallback
    raise AttributeError(f"module 'eve_scheduler' has no attribute {name!r}")
