"""The LR schedules under comparison, each used the way a user would use it.

Every schedule is wrapped in the same tiny interface: built on the optimizer
before training, then ``after_step(loss)`` is called once after every optimizer
step with that step's minibatch training loss (a Python float).

Built-in names:

- ``constant``: no scheduler, the base LR throughout.
- ``const_half``: no scheduler, a constant 0.5 x base (the LR at which the
  ``seed`` rule idles under noise, for a like-for-like comparison).
- ``plateau``: ``torch.optim.lr_scheduler.ReduceLROnPlateau(factor=0.5,
  patience=5)`` stepped once per epoch with the mean minibatch loss of that
  epoch (full-batch tasks: an epoch is one step; an epoch longer than 50 steps,
  as in char_lm, is cut into 50-step periods, as one would validate every N steps).
- ``cosine``: ``CosineAnnealingLR(T_max=steps)``, from base down to 0 over the run.
- ``greedy``: Hugging Face transformers' ``GreedyLR`` (arXiv:2512.14527), stepped
  every step on the minibatch loss, ``smooth=True`` (window 50), LR bounds
  0.01 x base and 10 x base, its other arguments at their defaults.
- any rule name in ``eve_scheduler.core.RULES`` (``seed``, ``eve``, and rules added
  later): ``LossFeedbackScheduler(optimizer, rule=name)`` with default
  hyper-parameters, stepped every step on the minibatch loss.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau

from eve_scheduler import LossFeedbackScheduler, SkippedLossWarning
from eve_scheduler.core import RULES

BUILT_IN = ("constant", "const_half", "plateau", "cosine", "greedy")
DEFAULT_SCHEDULES = (
    "constant",
    "const_half",
    "plateau",
    "cosine",
    "seed",
    "eve",
    "greedy",
    "trend",
)

GREEDY_MIN_LR = 0.01  # x base LR
GREEDY_MAX_LR = 10.0  # x base LR
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 5  # epochs
PLATEAU_MAX_PERIOD = 50  # steps


class Schedule(Protocol):
    """What the training loop needs from a schedule."""

    def after_step(self, loss: float) -> None: ...

    def skipped_losses(self) -> int: ...


class Constant:
    """No scheduler; the LR is ``scale`` x base throughout."""

    def __init__(self, optimizer: Optimizer, scale: float = 1.0) -> None:
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * scale

    def after_step(self, loss: float) -> None:
        pass

    def skipped_losses(self) -> int:
        return 0


class PlateauPerEpoch:
    """``ReduceLROnPlateau`` stepped on the mean training loss of each epoch (at most 50 steps)."""

    def __init__(self, optimizer: Optimizer, steps_per_epoch: int) -> None:
        self.scheduler = ReduceLROnPlateau(
            optimizer, mode="min", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
        )
        self.period = min(steps_per_epoch, PLATEAU_MAX_PERIOD)
        self.epoch_losses: list[float] = []

    def after_step(self, loss: float) -> None:
        self.epoch_losses.append(loss)
        if len(self.epoch_losses) == self.period:
            self.scheduler.step(sum(self.epoch_losses) / len(self.epoch_losses))
            self.epoch_losses = []

    def skipped_losses(self) -> int:
        return 0


class Cosine:
    """``CosineAnnealingLR`` from base LR to 0 over the whole run, stepped every step."""

    def __init__(self, optimizer: Optimizer, total_steps: int) -> None:
        self.scheduler = CosineAnnealingLR(optimizer, T_max=total_steps)

    def after_step(self, loss: float) -> None:
        self.scheduler.step()

    def skipped_losses(self) -> int:
        return 0


class Greedy:
    """Hugging Face transformers' ``GreedyLR``, bounds relative to the base LR, smoothing on."""

    def __init__(self, optimizer: Optimizer) -> None:
        try:
            from transformers.optimization import GreedyLR
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the 'greedy' schedule needs transformers>=5.4: pip install 'eve-scheduler[bench]'"
            ) from error
        base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.scheduler = GreedyLR(
            optimizer,
            min_lr=[GREEDY_MIN_LR * lr for lr in base_lrs],
            max_lr=[GREEDY_MAX_LR * lr for lr in base_lrs],
            smooth=True,
        )

    def after_step(self, loss: float) -> None:
        self.scheduler.step(loss)

    def skipped_losses(self) -> int:
        return 0


class Feedback:
    """``LossFeedbackScheduler(optimizer, rule=name)`` with default hyper-parameters."""

    def __init__(self, optimizer: Optimizer, rule: str) -> None:
        self.scheduler = LossFeedbackScheduler(optimizer, rule=rule)

    def after_step(self, loss: float) -> None:
        with warnings.catch_warnings():  # skips are counted and reported, not printed
            warnings.simplefilter("ignore", SkippedLossWarning)
            self.scheduler.step(loss)

    def skipped_losses(self) -> int:
        return self.scheduler.skipped


def available() -> list[str]:
    """Every schedule name this harness can build."""
    return list(BUILT_IN) + [name for name in RULES if name not in BUILT_IN]


def build_schedule(
    name: str, optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int
) -> Schedule:
    """Build the named schedule on ``optimizer`` (whose LR is the run's base LR).

    Raises:
        ValueError: ``name`` is neither a built-in schedule nor a feedback rule.
    """
    built: Any
    if name == "constant":
        built = Constant(optimizer)
    elif name == "const_half":
        built = Constant(optimizer, scale=0.5)
    elif name == "plateau":
        built = PlateauPerEpoch(optimizer, steps_per_epoch)
    elif name == "cosine":
        built = Cosine(optimizer, total_steps)
    elif name == "greedy":
        built = Greedy(optimizer)
    elif name in RULES:
        built = Feedback(optimizer, rule=name)
    else:
        raise ValueError(f"unknown schedule {name!r}; choose from {available()}")
    schedule: Schedule = built
    return schedule
