"""Pure-math core of eve_scheduler: the feedback recursions, standard library only.

Nothing here imports torch, so the rules can be tested, replayed on a recorded
loss curve and reused by any front end.
"""

from eve_scheduler.core.eve import EveRule, EveState
from eve_scheduler.core.rules import (
    RULES,
    Rule,
    RuleSpec,
    advance,
    hparams_of,
    is_usable,
    make_rule,
    simulate,
    simulate_states,
)
from eve_scheduler.core.seed import SeedRule, SeedState, sigmoid
from eve_scheduler.core.trend import TrendRule, TrendState

__all__ = [
    "RULES",
    "EveRule",
    "EveState",
    "Rule",
    "RuleSpec",
    "SeedRule",
    "SeedState",
    "TrendRule",
    "TrendState",
    "advance",
    "hparams_of",
    "is_usable",
    "make_rule",
    "sigmoid",
    "simulate",
    "simulate_states",
]
