"""eve_scheduler: loss-feedback learning-rate scheduling for any PyTorch optimizer.

``LossFeedbackScheduler(optimizer)`` with ``scheduler.step(loss)`` after each
optimizer step rescales every param group's LR by a factor computed from the
training loss; ``EveCallback`` does the same in Lightning with no other change.
The recursions live in :mod:`eve_scheduler.core`, which imports no torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from eve_scheduler.core import (
    RULES,
    EveRule,
    SeedRule,
    TrendRule,
    make_rule,
    simulate,
    simulate_states,
)

if TYPE_CHECKING:
    from eve_scheduler.lightning import EveCallback as EveCallback  # exported if installed
    from eve_scheduler.losses import loss_to_float
    from eve_scheduler.scheduler import BadLossError, LossFeedbackScheduler, SkippedLossWarning

# Names whose modules import torch (or Lightning, an optional extra) are imported on
# first use, so that ``import eve_scheduler.core`` does not import torch.
_LAZY = {
    "BadLossError": "eve_scheduler.scheduler",
    "LossFeedbackScheduler": "eve_scheduler.scheduler",
    "SkippedLossWarning": "eve_scheduler.scheduler",
    "loss_to_float": "eve_scheduler.losses",
    "EveCallback": "eve_scheduler.lightning",
}

__version__ = "0.1.0.dev0"

__all__ = [
    "RULES",
    "BadLossError",
    "EveRule",
    "LossFeedbackScheduler",
    "SeedRule",
    "SkippedLossWarning",
    "TrendRule",
    "loss_to_float",
    "make_rule",
    "simulate",
    "simulate_states",
]


def _lightning_installed() -> bool:
    """Whether ``lightning`` or ``pytorch_lightning`` can be found (without importing it)."""
    for name in ("lightning", "pytorch_lightning"):
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except (ImportError, ValueError):  # a broken or blocked entry in sys.modules
            continue
    return False


# ``from eve_scheduler import *`` must work on a torch-only install, so the optional
# ``EveCallback`` is exported only when Lightning is there to import.
if _lightning_installed():
    __all__.append("EveCallback")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'eve_scheduler' has no attribute {name!r}")
