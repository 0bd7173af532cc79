"""``LossFeedbackScheduler``: the torch adapter around the pure-math core.

It holds no math of its own: each ``step(loss)`` feeds the loss to a rule of
:mod:`eve_scheduler.core` and writes ``max(unscaled_lr * factor, min_lr)`` into
every param group, where ``unscaled_lr`` is the LR the group would have without
feedback (its configured LR, or what an owned schedule gives it at that step).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from eve_scheduler.core import Rule, hparams_of, is_usable, make_rule
from eve_scheduler.core._validate import check_range
from eve_scheduler.losses import DeferredLosses

STATE_VERSION = 1


class SkippedLossWarning(RuntimeWarning):
    """A loss that is NaN, infinite, or at or below ``f_star`` was skipped."""


class BadLossError(ValueError):
    """In strict mode: a loss that is NaN, infinite, or at or below ``f_star``."""


class LossFeedbackScheduler(LRScheduler):
    r"""Rescale the LR of every param group from the training loss.

    Call ``step(loss)`` once after each ``optimizer.step()``. The LR used by the
    optimizer step number ``t`` (counting from 0) is

    .. math::

        \mathrm{lr}_t = \max(\mathrm{unscaled\_lr}_t \cdot \mathrm{factor}_t,\ \mathrm{min\_lr})

    where ``factor_t`` is the rule's factor after the first ``t`` losses
    (``factor_0`` is the factor of the initial state: 0.5 for ``seed``, 1 for
    ``eve``) and ``unscaled_lr_t`` is the group's configured LR or, with
    ``schedule=``, that schedule's LR after ``t`` of its steps.

    Args:
        optimizer: a ``torch.optim.Optimizer`` or any object with ``param_groups``.
        rule: ``"seed"`` (default), ``"eve"`` or ``"trend"``; see :mod:`eve_scheduler.core`.
        schedule: another LR scheduler built on the same optimizer, which this one
            then owns: each ``step(loss)`` steps it on the unscaled LRs before
            applying the factor. Do not step it yourself.
        min_lr: a lower bound on the applied LR, a scalar or one per param group.
        strict: raise :class:`BadLossError` on a NaN, infinite, or out-of-bound
            loss instead of skipping it with a :class:`SkippedLossWarning`.
        lag: read each loss this many steps late (default 0: at once). With a CUDA
            loss, ``lag >= 1`` avoids the host-device synchronization that reading
            it at once costs; the factor at step t then uses the losses up to
            t - lag, the same values as with ``lag=0``, deterministically.
        **hparams: the rule's hyper-parameters (``beta``, ``gamma``, ``k``, ``eps``
            for ``seed``; ``c``, ``beta3`` for ``eve``; see ``TrendRule`` for
            ``trend``; ``f_star`` for all three).

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> scheduler = LossFeedbackScheduler(opt)  # seed rule: LR starts at 0.5 x 0.1
        >>> scheduler.get_last_lr()
        [0.05]
        >>> for loss in [4.0, 2.0, 1.0]:
        ...     scheduler.step(loss)
        >>> round(scheduler.factor, 4), round(opt.param_groups[0]["lr"], 5)
        (0.8283, 0.08283)
    """

    def __init__(
        self,
        optimizer: Any,
        rule: str = "seed",
        *,
        schedule: LRScheduler | None = None,
        min_lr: float | Sequence[float] = 0.0,
        strict: bool = False,
        lag: int = 0,
        **hparams: float,
    ) -> None:
        # LRScheduler.__init__ is not called (as in ReduceLROnPlateau): it would
        # step once without a loss and wrap optimizer.step.
        if not isinstance(getattr(optimizer, "param_groups", None), list):
            raise TypeError(
                f"optimizer must have a list of param_groups, got {type(optimizer).__name__}"
            )
        if schedule is not None and getattr(schedule, "optimizer", optimizer) is not optimizer:
            raise ValueError("schedule must be built on the same optimizer as this scheduler")
        self.optimizer = cast(Optimizer, optimizer)  # duck-typed: only param_groups is used
        self.rule: Rule = make_rule(rule, **hparams)
        self.schedule = schedule
        self.strict = bool(strict)
        self._losses = DeferredLosses(lag)
        self.min_lrs = self._check_min_lr(min_lr)
        self.last_epoch = 0
        self.skipped = 0
        self.state: Any = self.rule.init()
        self.factor: float = self.rule.factor(self.state)
        self.unscaled_lrs: list[float | Tensor] = []
        self._capture_unscaled_lrs()
        self._apply_factor()

    # -- the public torch scheduler API --------------------------------------------

    def step(self, loss: Any = None, epoch: None = None) -> None:  # type: ignore[override]
        """Feed one training loss, step the owned schedule, and set the LRs.

        Args:
            loss: a Python or numpy scalar, or a one-element tensor of any
                floating dtype on any device.

        Raises:
            TypeError: ``loss`` is missing or not a real scalar.
            ValueError: ``loss`` has more than one element.
            BadLossError: in strict mode, a NaN, infinite or out-of-bound loss.
        """
        if epoch is not None:
            raise TypeError("LossFeedbackScheduler.step takes no epoch argument")
        value = self._losses.push(loss)  # None while the first `lag` losses wait
        if value is not None and not is_usable(value, self.rule.f_star):
            self._reject(value)  # raises in strict mode, before anything changes
            value = None
        self.last_epoch += 1
        if self.schedule is not None:
            with self.unscaled():
                self.schedule.step()
        if value is not None:
            self.state = self.rule.update(self.state, value)
            self.factor = self.rule.factor(self.state)
        self._apply_factor()

    def get_last_lr(self) -> list[float | Tensor]:
        """The LRs last written to the param groups (tensor LRs as copies)."""
        return self._last_lr

    def get_lr(self) -> list[float | Tensor]:
        """The LRs that the current factor gives (as written by the last step)."""
        return self._last_lr

    @contextmanager
    def unscaled(self) -> Iterator[None]:
        """Put the unscaled LRs into the param groups for the duration of the block.

        Use it to step another schedule by hand: on exit, whatever LRs the groups
        hold become the new unscaled LRs, and the current factor is applied again.
        """
        self._adopt_new_groups()
        for group, lr in zip(self.optimizer.param_groups, self.unscaled_lrs, strict=True):
            _write_lr(group, lr)
        try:
            yield
        finally:
            self._capture_unscaled_lrs()
            self._apply_factor()

    def state_dict(self) -> dict[str, Any]:
        """Plain, versioned data; survives ``torch.load(weights_only=True)``."""
        return {
            "version": STATE_VERSION,
            "rule": self.rule.name,
            "hparams": hparams_of(self.rule),
            "rule_state": self.state._asdict(),
            "skipped": self.skipped,
            "lag": self._losses.lag,
            "pending_losses": self._losses.pending(),
            "last_epoch": self.last_epoch,
            "min_lrs": list(self.min_lrs),
            "unscaled_lrs": [_to_python_float(lr) for lr in self.unscaled_lrs],
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and write the restored LRs into the groups.

        Raises:
            ValueError: the state comes from another version, another rule, or an
                optimizer with another number of param groups.
        """
        version = state_dict.get("version")
        if version != STATE_VERSION:
            raise ValueError(
                f"cannot load a LossFeedbackScheduler state of version {version!r}; "
                f"this release reads version {STATE_VERSION}"
            )
        if state_dict["rule"] != self.rule.name:
            raise ValueError(
                f"cannot load a state of rule {state_dict['rule']!r} into a scheduler "
                f"of rule {self.rule.name!r}"
            )
        rule = make_rule(state_dict["rule"], **state_dict["hparams"])
        groups = self.optimizer.param_groups
        if len(state_dict["unscaled_lrs"]) != len(groups):
            raise ValueError(
                f"the state holds {len(state_dict['unscaled_lrs'])} param groups, "
                f"the optimizer has {len(groups)}"
            )
        if state_dict["lag"] != self._losses.lag:
            raise ValueError(
                f"the state was saved with lag={state_dict['lag']}, this scheduler has "
                f"lag={self._losses.lag}"
            )
        if (state_dict["schedule"] is None) != (self.schedule is None):
            raise ValueError("the state and this scheduler disagree on whether a schedule is owned")
        self.rule = rule
        self.state = type(rule.init())(**state_dict["rule_state"])
        self.factor = rule.factor(self.state)
        self.skipped = int(state_dict["skipped"])
        self._losses.load_pending(state_dict["pending_losses"])
        self.last_epoch = int(state_dict["last_epoch"])
        self.min_lrs = [float(m) for m in state_dict["min_lrs"]]
        saved_lrs = state_dict["unscaled_lrs"]
        self.unscaled_lrs = [
            _like(group["lr"], lr) for group, lr in zip(groups, saved_lrs, strict=True)
        ]
        if self.schedule is not None:
            self.schedule.load_state_dict(state_dict["schedule"])
        self._apply_factor()

    # -- internals -------------------------------------------------------------------

    def _reject(self, value: float) -> None:
        reason = (
            f"loss={value!r} is not finite"
            if not math.isfinite(value)
            else f"loss={value!r} is at or below f_star={self.rule.f_star!r}"
        )
        if self.strict:
            raise BadLossError(f"{reason} (strict mode)")
        self.skipped += 1
        warnings.warn(
            f"{reason}: skipped (feedback state and factor unchanged; "
            f"{self.skipped} skipped so far)",
            SkippedLossWarning,
            stacklevel=3,
        )

    def _capture_unscaled_lrs(self) -> None:
        """Take the groups' current LRs as the unscaled LRs (tensor LRs are copied)."""
        self.unscaled_lrs = [_copy_lr(group["lr"]) for group in self.optimizer.param_groups]

    def _apply_factor(self) -> None:
        """Write ``max(unscaled_lr * factor, min_lr)`` into every param group."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.unscaled_lrs):
            self._adopt_new_groups()
        factor = self.factor
        last_lr: list[float | Tensor] = []
        for group, lr, min_lr in zip(groups, self.unscaled_lrs, self.min_lrs, strict=True):
            if isinstance(lr, Tensor):
                scaled = torch.clamp(lr * factor, min=min_lr)
                _write_lr(group, scaled)
                last_lr.append(scaled)
            else:
                group["lr"] = max(lr * factor, min_lr)
                last_lr.append(group["lr"])
        self._last_lr = last_lr

    def _adopt_new_groups(self) -> None:
        """Give groups added by ``add_param_group`` their current LR as unscaled LR."""
        groups = self.optimizer.param_groups
        for group in groups[len(self.unscaled_lrs) :]:
            self.unscaled_lrs.append(_copy_lr(group["lr"]))
            self.min_lrs.append(self.min_lrs[-1] if self._shared_min_lr else 0.0)

    def _check_min_lr(self, min_lr: float | Sequence[float]) -> list[float]:
        n = len(self.optimizer.param_groups)
        self._shared_min_lr = not isinstance(min_lr, Sequence)
        values = [min_lr] * n if not isinstance(min_lr, Sequence) else list(min_lr)
        if len(values) != n:
            raise ValueError(f"min_lr must have one value per param group ({n}), got {len(values)}")
        return [check_range("min_lr", m, 0.0) for m in values]


def _copy_lr(lr: float | Tensor) -> float | Tensor:
    """An LR to keep: tensor LRs are copied, so later in-place writes do not alias it."""
    return lr.detach().clone() if isinstance(lr, Tensor) else lr


def _write_lr(group: dict[str, Any], lr: float | Tensor) -> None:
    """Set ``group["lr"]``, in place where the group holds its LR as a tensor."""
    current = group["lr"]
    if isinstance(current, Tensor):
        if isinstance(lr, Tensor):
            current.copy_(lr)
        else:
            current.fill_(lr)
    else:
        group["lr"] = _to_python_float(lr) if isinstance(lr, Tensor) else lr


def _to_python_float(lr: float | Tensor) -> float:
    return float(lr.item()) if isinstance(lr, Tensor) else float(lr)


def _like(current: Any, value: float) -> float | Tensor:
    """A stored unscaled LR in the form the group's LR has (tensor or float)."""
    if isinstance(current, Tensor):
        return torch.tensor(value, dtype=current.dtype, device=current.device)
    return value
