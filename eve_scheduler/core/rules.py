"""The registry of feedback rules, the skip policy for bad losses, and ``simulate``.

A rule is a frozen dataclass of hyper-parameters with three pure transitions::

    state = rule.init()
    state = rule.update(state, loss)   # only for losses that ``is_usable`` accepts
    factor = rule.factor(state)        # the LR multiplier after those losses

``advance`` applies the skip policy around ``update``: a loss that is not usable,
or whose update would leave the float range, is skipped and the state kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, Protocol, cast

from eve_scheduler.core._validate import check_loss
from eve_scheduler.core.eve import EveRule
from eve_scheduler.core.seed import SeedRule
from eve_scheduler.core.trend import TrendRule


class Rule(Protocol):
    """What every feedback rule provides."""

    name: str
    f_star: float

    def init(self) -> Any: ...

    def update(self, state: Any, loss: float) -> Any: ...

    def factor(self, state: Any) -> float: ...


RULES: dict[str, type[Any]] = {"seed": SeedRule, "eve": EveRule, "trend": TrendRule}

# What ``rule=`` takes: a rule's name, or a rule object with its hyper-parameters.
RuleSpec = str | SeedRule | EveRule | TrendRule


def make_rule(rule: RuleSpec = "seed", **hparams: float) -> Rule:
    """Build the named rule with the given hyper-parameters (each checked).

    A rule object (``SeedRule(beta=0.95)``, checked when it was built) is returned
    as it is; its hyper-parameters are its own, so none may be given beside it.

    Raises:
        ValueError: unknown rule name or class, unknown hyper-parameter, a value out
            of range, or hyper-parameters given beside a rule object.
    """
    cls: type[Any] | None = RULES.get(rule) if isinstance(rule, str) else type(rule)
    if cls is None or cls not in RULES.values():  # exactly these classes, named by RULES
        raise ValueError(
            f"rule must be one of {sorted(RULES)} or a SeedRule, EveRule or TrendRule "
            f"(not a subclass), got rule={rule!r}"
        )
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {unknown} for rule {cls.name!r}; it takes {known}"
        )
    if isinstance(rule, str):
        built: Rule = cls(**hparams)
        return built
    if hparams:
        raise ValueError(
            f"the rule object holds its hyper-parameters: got {rule!r} and also "
            f"{sorted(hparams)}; set them on the rule object"
        )
    return cast(Rule, rule)


def hparams_of(rule: Rule) -> dict[str, float]:
    """The rule's hyper-parameters as a plain dict."""
    return {f.name: getattr(rule, f.name) for f in fields(rule)}  # type: ignore[arg-type]


def is_usable(loss: float, f_star: float = 0.0) -> bool:
    """Whether a loss may enter the recursions: finite and strictly above ``f_star``.

    Any other loss (NaN, +-inf, at or below the bound) is skipped: the state and
    the factor stay as they were.
    """
    return math.isfinite(loss) and loss > f_star


def advance(rule: Rule, state: Any, loss: float) -> Any | None:
    """The state after ``loss``, or ``None`` where the loss must be skipped.

    A loss is skipped where ``is_usable`` refuses it, and also where its update
    would put inf or NaN into the state or the factor: in ``seed``, a loss ratio
    (f_{t-1} - f*) / (f_t - f*) or its square beyond the float range (about 1.8e308,
    so a ratio beyond about 1e154 reached by e.g. 1e10 then 1e-150), or a score of
    inf / inf with extreme ``k`` and ``eps``. Later losses are then compared with the
    last loss accepted.
    """
    if not is_usable(loss, rule.f_star):
        return None
    try:
        new = rule.update(state, loss)
        factor = rule.factor(new)
    except ArithmeticError:  # Python's float ``**`` raises where ``*`` gives inf
        return None
    return new if math.isfinite(factor) and all(map(math.isfinite, new)) else None


def simulate(losses: Iterable[float], rule: RuleSpec = "seed", **hparams: float) -> list[float]:
    """The factor after each loss of a recorded loss curve.

    Skipped losses (see ``advance``) repeat the factor, as the scheduler does.

    Example:
        >>> simulate([1.0, 1.0, 1.0])
        [0.5, 0.5, 0.5]
    """
    built = make_rule(rule, **hparams)
    return [built.factor(state) for state in _states(built, losses)]


def simulate_states(
    losses: Iterable[float], rule: RuleSpec = "seed", **hparams: float
) -> list[Any]:
    """The rule's state (e.g. ``t``, ``d``, ``v`` for ``seed``) after each loss."""
    return list(_states(make_rule(rule, **hparams), losses))


def _states(rule: Rule, losses: Iterable[float]) -> Iterable[Any]:
    state = rule.init()
    for loss in losses:
        new = advance(rule, state, check_loss(loss))
        if new is not None:
            state = new
        yield state
