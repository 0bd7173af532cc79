"""Checks of hyper-parameters and options, each with one message shape."""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_range(
    name: str,
    value: float,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``float(value)`` if it lies in the interval, else raise ``ValueError``.

    The message names the parameter, its range and the value, e.g.
    ``beta must be in [0, 1), got beta=1.2``.
    """
    low_open = low_open or low == -math.inf  # an infinite bound is never attained
    high_open = high_open or high == math.inf
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    interval = f"{left}{_show(low)}, {_show(high)}{right}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number in {interval}, got {name}={value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name} must be in {interval}, got {name}={value!r}") from None
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        raise ValueError(f"{name} must be in {interval}, got {name}={value!r}")
    return value


def check_loss(loss: Any) -> float:
    """``float(loss)``, refusing what ``LossFeedbackScheduler.step`` refuses: a string
    or a bool is not a loss (TypeError), nor an int beyond the float range (ValueError)."""
    if isinstance(loss, str | bytes | bool):
        raise TypeError(f"a loss must be a real number, got {loss!r}")
    try:
        return float(loss)
    except OverflowError:
        raise ValueError(f"loss={loss!r} is beyond the range of a float") from None


def keep_checked(rule: Any, checked: dict[str, float]) -> None:
    """Set the checked values on a frozen dataclass of hyper-parameters: plain floats,
    whatever the caller passed (numpy, OmegaConf), e.g. for weights_only checkpoints."""
    for name, value in checked.items():
        object.__setattr__(rule, name, value)


def check_integer(name: str, value: int, low: int = 0) -> int:
    """Return ``int(value)`` for an integer (numpy's too, not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer in [{low}, inf), got {name}={value!r}")
    return int(value)


def check_flag(name: str, value: bool) -> bool:
    """Return ``value`` as a bool, refusing what is not one (the string ``"false"`` is
    true in Python; numpy's bool is accepted)."""
    if not isinstance(value, bool) and type(value).__name__ not in ("bool_", "bool"):
        raise TypeError(f"{name} must be True or False, got {name}={value!r}")
    return bool(value)


def _show(bound: float) -> str:
    if bound == math.inf:
        return "inf"
    if bound == -math.inf:
        return "-inf"
    return f"{bound:g}"
