"""``LossFeedbackScheduler``: the torch adapter around the pure-math core.

It holds no math of its own: each ``step(loss)`` feeds the loss to a rule of
:mod:`eve_scheduler.core` and writes ``max(unscaled_lr * factor, min_lr)`` into
every param group, where ``unscaled_lr`` is the LR the group would have without
feedback (its configured LR, or what an owned schedule gives it at that step).
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from eve_scheduler.capturable import DeviceFeedback
from eve_scheduler.core import Rule, RuleSpec, advance, hparams_of, is_usable, make_rule
from eve_scheduler.core._validate import check_flag, check_range
from eve_scheduler.losses import DeferredLosses, check_scalar, loss_to_float

STATE_VERSION = 1


class SkippedLossWarning(RuntimeWarning):
    """A loss that is NaN, infinite, at or below ``f_star``, or that would overflow
    the feedback state, was skipped."""


class BadLossError(ValueError):
    """In strict mode: a loss that is NaN, infinite, at or below ``f_star``, or that
    would overflow the feedback state."""


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
            Or a rule object with its hyper-parameters, ``SeedRule(beta=0.95)``,
            which is what configuration files can build (LightningCLI's
            ``class_path``, Hydra's ``_target_``).
        schedule: another LR scheduler built on the same optimizer, which this one
            then owns: each ``step(loss)`` steps it on the unscaled LRs before
            applying the factor. Do not step it yourself. Or a callable that builds
            one from the optimizer: ``functools.partial(CosineAnnealingLR, T_max=100)``,
            Hydra's ``_partial_: true``.
        min_lr: a lower bound on the applied LR, a scalar or one per param group.
        strict: raise :class:`BadLossError` on a NaN, infinite, or out-of-bound
            loss (or one whose update would overflow the state, see
            :func:`eve_scheduler.core.advance`) instead of skipping it with a
            :class:`SkippedLossWarning`.
        lag: read each loss this many steps late (default 0: at once). With a CUDA
            loss, ``lag >= 1`` avoids the host-device synchronization that reading
            it at once costs; the factor at step t then uses the losses up to
            t - lag, the same values as with ``lag=0``, deterministically.
        capturable: keep the rule's state on the device of the (tensor) LRs and step
            it with tensor operations only, so that ``step(loss)`` never reads the
            loss on the host and can be captured in a CUDA graph with the rest of
            the training step. Needs tensor LRs; ``factor``, ``state`` and
            ``skipped`` are then live device tensors, bad losses are skipped and
            counted without a warning, and ``strict`` and ``lag`` are refused.
        fused: with ``capturable=True``, compile that device step (the feedback
            update, the step count and the LR writes) with ``torch.compile`` into
            one fused kernel instead of some 60 to 320 small operations. The first
            ``step`` compiles it (seconds; again after a change of hyper-parameters,
            param groups or loss dtype), so run ``step`` once before capturing a
            CUDA graph, as the usual warm-up does. Needs torch >= 2.6.
        **hparams: the rule's hyper-parameters (``beta``, ``gamma``, ``k``, ``eps``
            for ``seed``; ``c``, ``beta3`` for ``eve``; see ``TrendRule`` for
            ``trend``; ``f_star`` for all three), with a rule given by name.

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
        rule: RuleSpec = "seed",
        *,
        schedule: LRScheduler | Callable[[Any], LRScheduler] | None = None,
        min_lr: float | Sequence[float] = 0.0,
        strict: bool = False,
        lag: int = 0,
        capturable: bool = False,
        fused: bool = False,
        **hparams: float,
    ) -> None:
        # LRScheduler.__init__ is not called (as in ReduceLROnPlateau): it would
        # step once without a loss and wrap optimizer.step.
        if not isinstance(getattr(optimizer, "param_groups", None), list):
            raise TypeError(
                f"optimizer must have a list of param_groups, got {type(optimizer).__name__}"
            )
        self.optimizer = cast(Optimizer, optimizer)  # duck-typed: only param_groups is used
        self.rule: Rule = make_rule(rule, **hparams)
        self.strict = check_flag("strict", strict)
        self._losses = DeferredLosses(lag)
        self.min_lrs = self._check_min_lr(min_lr)
        self._check_shared_lrs()
        self.fused = _check_fused(check_flag("fused", fused), check_flag("capturable", capturable))
        device = self._capturable_device(strict, lag) if capturable else None
        # built once every argument is checked: building a schedule changes the LRs
        self.schedule = _built_schedule(schedule, optimizer)
        self.skipped: int | Tensor = 0
        self.state: Any = self.rule.init()
        self.factor: float | Tensor = self.rule.factor(self.state)
        self._on_device: DeviceFeedback | None = None
        self._steps: int | Tensor = 0  # step calls; on the device with capturable=True
        self._inside_unscaled = False
        if device is not None:  # state, factor and skipped become live device tensors
            self._on_device = DeviceFeedback(self.rule, device)
            self.state = type(self.rule.init())(**self._on_device.state)
            self.factor = self._on_device.factor
            self.skipped = self._on_device.skipped
            self._steps = torch.zeros(1, dtype=torch.int64, device=self._on_device.device)
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
            BadLossError: in strict mode, a loss that the default mode skips.
            RuntimeError: called inside ``with scheduler.unscaled():``.
        """
        if epoch is not None:
            raise TypeError("LossFeedbackScheduler.step takes no epoch argument")
        self._refuse_inside_unscaled("step")
        if self._on_device is None and torch.compiler.is_dynamo_compiling():
            # Inside a caller's torch.compile: the host path reads the loss and does
            # float arithmetic, on which Dynamo would specialize and recompile every step.
            _step_outside_the_graph(self, loss)
            return
        self._adopt_new_groups()
        new_state = None
        if self._on_device is not None:
            loss = self._loss_tensor(loss)
        else:
            value = self._losses.push(loss)  # None while the first `lag` losses wait
            if value is not None:
                new_state = advance(self.rule, self.state, value)
                if new_state is None:
                    # in strict mode, raises before the rule state changes; with lag, the
                    # bad loss is dropped and this call's loss stays queued (docs/gpu.md)
                    self._reject(value)
        if self.schedule is not None:
            if _capturing():
                raise RuntimeError(
                    "an owned schedule steps on the host and cannot be captured in a CUDA "
                    "graph; step it between replays inside `with scheduler.unscaled():`"
                )
            with self.unscaled():
                self.schedule.step()
        if self._on_device is not None:
            self._step_on_device(loss)
            return
        self._steps = cast(int, self._steps) + 1
        if new_state is not None:
            self.state = new_state
            self.factor = self.rule.factor(new_state)
        self._apply_factor()

    @property
    def last_epoch(self) -> int:
        """How many times ``step`` has run (with ``capturable=True``, read from the device)."""
        return int(self._steps)

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        if isinstance(self._steps, Tensor):
            self._steps.fill_(int(value))
        else:
            self._steps = int(value)

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
        Build that schedule before this scheduler, or in this block too: a torch
        schedule takes the LR it finds as its base (``initial_lr``). Blocks do not nest,
        and ``step`` and ``load_state_dict`` are refused inside one (a ``RuntimeError``):
        the LRs they write would become the unscaled LRs on exit.
        """
        self._refuse_inside_unscaled("unscaled")
        self._adopt_new_groups()
        for group, lr in zip(self.optimizer.param_groups, self.unscaled_lrs, strict=True):
            _write_lr(group, lr)
        self._inside_unscaled = True
        try:
            yield
        finally:
            self._inside_unscaled = False
            self._adopt_new_groups()  # groups added in the block: their LR is unscaled
            self._capture_unscaled_lrs()
            self._apply_factor()

    def state_dict(self) -> dict[str, Any]:
        """Plain, versioned data; survives ``torch.load(weights_only=True)``.

        The same for ``capturable=True`` (whose state is read from the device), so
        a checkpoint loads into a scheduler of either kind.
        """
        self._adopt_new_groups()  # a group added since the last step is saved too
        if self._on_device is not None:
            rule_state, skipped = self._on_device.snapshot()
        else:
            rule_state, skipped = self.state._asdict(), int(self.skipped)
        return {
            "version": STATE_VERSION,
            "rule": self.rule.name,
            "hparams": hparams_of(self.rule),
            "rule_state": rule_state,
            "skipped": skipped,
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
                optimizer with another number of param groups; or, with
                ``capturable=True``, the groups no longer hold tensor LRs.
            RuntimeError: called inside ``with scheduler.unscaled():``.
        """
        self._refuse_inside_unscaled("load_state_dict")
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
        if self._on_device is not None:
            for group in groups:
                _check_capturable_lr(group["lr"], self._on_device.device)
        self._warn_if_settings_differ(hparams_of(rule), state_dict["min_lrs"])
        self.rule = rule
        if self._on_device is not None:
            self._on_device.rule = rule
            self._on_device.load(state_dict["rule_state"], state_dict["skipped"])  # in place
        else:
            self.state = type(rule.init())(**state_dict["rule_state"])
            self.factor = rule.factor(self.state)
            self.skipped = int(state_dict["skipped"])
        self._losses.load_pending(state_dict["pending_losses"])
        self.last_epoch = int(state_dict["last_epoch"])
        self.min_lrs = [float(m) for m in state_dict["min_lrs"]]
        saved_lrs = state_dict["unscaled_lrs"]
        self._keep_unscaled_lrs(
            [_like(group["lr"], lr) for group, lr in zip(groups, saved_lrs, strict=True)]
        )
        if self.schedule is not None:
            schedule_state = state_dict["schedule"]
            if not all(isinstance(group["lr"], Tensor) for group in groups):
                schedule_state = _floats_for_tensors(schedule_state)  # saved with tensor LRs
            self.schedule.load_state_dict(schedule_state)
        self._apply_factor()

    # -- internals -------------------------------------------------------------------

    def _refuse_inside_unscaled(self, method: str) -> None:
        if self._inside_unscaled:
            raise RuntimeError(
                f"scheduler.{method}() inside `with scheduler.unscaled():`: on exit the block "
                "takes the LRs the groups hold as the unscaled LRs, so the factor would be "
                f"applied twice; call {method}() outside the block"
            )

    def _warn_if_settings_differ(self, hparams: dict[str, float], min_lrs: list[float]) -> None:
        """Say when a checkpoint's settings replace the ones this scheduler was built with."""
        current: dict[str, Any] = dict(hparams_of(self.rule))
        saved: dict[str, Any] = dict(hparams)
        if len(min_lrs) == len(self.min_lrs):  # else: groups added since construction
            current["min_lr"], saved["min_lr"] = self.min_lrs, [float(m) for m in min_lrs]
        changed = {
            name: (current[name], value) for name, value in saved.items() if current[name] != value
        }
        if changed:
            listed = ", ".join(
                f"{name}={new!r} (was {old!r})" for name, (old, new) in changed.items()
            )
            warnings.warn(
                f"load_state_dict: the checkpoint's settings replace this scheduler's: {listed}; "
                "build the scheduler with them to silence this",
                UserWarning,
                stacklevel=3,
            )

    def _reject(self, value: float) -> None:
        if not math.isfinite(value):
            reason = f"loss={value!r} is not finite"
        elif not is_usable(value, self.rule.f_star):
            reason = f"loss={value!r} is at or below f_star={self.rule.f_star!r}"
        else:
            reason = (
                f"loss={value!r} would put inf or NaN into the feedback state or factor "
                "(e.g. its ratio to the last accepted loss is beyond the float range)"
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
        self._keep_unscaled_lrs([group["lr"] for group in self.optimizer.param_groups])

    def _keep_unscaled_lrs(self, lrs: list[float | Tensor]) -> None:
        """Keep ``lrs`` as the unscaled LRs, tensors copied into those already kept."""
        kept = self.unscaled_lrs
        self.unscaled_lrs = [
            _keep_lr(lr, kept[i] if i < len(kept) else None) for i, lr in enumerate(lrs)
        ]

    def _loss_tensor(self, loss: Any) -> Tensor:
        """The loss as a tensor for the device path, without reading a tensor loss."""
        check_scalar(loss)
        device = cast(DeviceFeedback, self._on_device).device
        if isinstance(loss, Tensor):
            if loss.device != device and (device.type == "cpu" or _capturing()):
                raise ValueError(
                    f"capturable=True keeps the feedback on the device of the LRs ({device}); "
                    f"a loss on {loss.device} would be read on the host at every step (or, "
                    f"in a CUDA graph, copied from a fixed host address). Give the optimizer "
                    f"LR tensors on {loss.device}, or the loss on {device}"
                )
            return loss
        if _capturing():
            raise TypeError(
                "during CUDA graph capture, pass the loss as a tensor: a Python number "
                f"would be recorded in the graph as a constant (got {loss!r})"
            )
        return torch.tensor(loss_to_float(loss), dtype=torch.float64, device=device)

    def _capturable_device(self, strict: bool, lag: int) -> torch.device:
        """Check the options ``capturable=True`` needs; return the device of the LR tensors."""
        if strict or lag:
            raise ValueError(
                "capturable=True never reads the loss on the host, so it cannot raise on a "
                "bad loss (strict=True) and needs no lag; bad losses are skipped and "
                "counted in `skipped` on the device"
            )
        first = self.optimizer.param_groups[0]["lr"]
        device = first.device if isinstance(first, Tensor) else None
        for group in self.optimizer.param_groups:
            _check_capturable_lr(group["lr"], device)
        return cast(torch.device, device)

    def _step_on_device(self, loss: Tensor) -> None:
        """``capturable=True``: one step on the device, fused into one kernel if asked."""
        feedback, steps = cast(DeviceFeedback, self._on_device), cast(Tensor, self._steps)
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        for lr in lrs:
            _check_capturable_lr(lr, feedback.device)
        # a string type: torch 2.4's Dynamo cannot trace the expression list[Tensor]
        unscaled_lrs = cast("list[Tensor]", self.unscaled_lrs)
        args = (feedback, loss.detach(), steps, lrs, unscaled_lrs, self.min_lrs)
        if not self.fused or torch.compiler.is_compiling():  # a caller's compile traces it
            self._last_lr = [*_device_step(*args)]
        elif not _capturing():
            try:
                self._last_lr = [*_fused_device_step()(*args)]
            except Exception as error:  # raised before the compiled step runs
                if type(error).__name__ not in _RECOMPILE_LIMIT_ERRORS:
                    raise
                self.fused = False
                warnings.warn(
                    "fused=True: torch's limit of compiled variants of one function "
                    "(torch._dynamo.config.recompile_limit) is reached, so this scheduler "
                    "steps uncompiled from now on (the same values, as capturable=True alone)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._last_lr = [*_device_step(*args)]
        else:
            self._last_lr = [*_replay_compiled(_fused_device_step(), args)]

    def _apply_factor(self) -> None:
        """Write ``max(unscaled_lr * factor, min_lr)`` into every param group."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.unscaled_lrs):
            self._adopt_new_groups()
        factor = self.factor
        last_lr: list[float | Tensor] = []
        for group, lr, min_lr in zip(groups, self.unscaled_lrs, self.min_lrs, strict=True):
            if isinstance(lr, Tensor):
                scaled = _scaled_lr(lr, factor, min_lr)
                _write_lr(group, scaled)
                last_lr.append(scaled)
            else:
                group["lr"] = max(lr * factor, min_lr)
                last_lr.append(group["lr"])
        self._last_lr = last_lr

    def _adopt_new_groups(self) -> None:
        """Give groups added by ``add_param_group`` their current LR as unscaled LR.

        A new group that holds the LR tensor of an earlier group (torch gives every
        group without an ``lr`` of its own the optimizer's default LR object) takes
        that group's unscaled LR and ``min_lr``: its LR tensor holds the scaled LR.
        """
        groups = self.optimizer.param_groups
        for index in range(len(self.unscaled_lrs), len(groups)):
            lr = groups[index]["lr"]
            if self._on_device is not None:
                _check_capturable_lr(lr, self._on_device.device)
            owner = _lr_owner(groups, index)
            if owner < index:
                self.unscaled_lrs.append(_keep_lr(self.unscaled_lrs[owner], None))
                self.min_lrs.append(self.min_lrs[owner])
            else:
                self.unscaled_lrs.append(_keep_lr(lr, None))
                self.min_lrs.append(self.min_lrs[-1] if self._shared_min_lr else 0.0)

    def _check_shared_lrs(self) -> None:
        """Groups that hold one LR tensor get one LR: refuse different ``min_lr``."""
        groups = self.optimizer.param_groups
        for index in range(len(groups)):
            owner = _lr_owner(groups, index)
            if self.min_lrs[owner] != self.min_lrs[index]:
                raise ValueError(
                    f"param groups {owner} and {index} hold the same LR tensor (torch gives "
                    "every group without an lr of its own the optimizer's default), so they "
                    f"cannot have different min_lr ({self.min_lrs[owner]} and "
                    f"{self.min_lrs[index]}); give each group its own lr"
                )

    def _check_min_lr(self, min_lr: float | Sequence[float]) -> list[float]:
        n = len(self.optimizer.param_groups)
        per_group = min_lr_per_group(min_lr)
        self._shared_min_lr = per_group is None
        values = [cast(float, min_lr)] * n if per_group is None else per_group
        if len(values) != n:
            raise ValueError(f"min_lr must have one value per param group ({n}), got {len(values)}")
        return [check_range("min_lr", m, 0.0) for m in values]


def _device_step(
    feedback: DeviceFeedback,
    loss: Tensor,
    steps: Tensor,
    lrs: Sequence[Tensor],
    unscaled_lrs: Sequence[Tensor],
    min_lrs: Sequence[float],
) -> list[Tensor]:
    """One step of ``capturable=True`` in tensor operations only: feed the loss, count
    the step, write ``max(unscaled_lr * factor, min_lr)`` into each LR tensor in place.

    A function of tensors and numbers, not of the scheduler or optimizer objects, so
    that ``torch.compile`` keeps one graph for every scheduler of the same rule,
    hyper-parameters and LR layout. Returns the LRs written (new tensors).
    """
    feedback.update(loss)
    steps.add_(1)
    scaled = []
    for lr, unscaled_lr, min_lr in zip(lrs, unscaled_lrs, min_lrs, strict=True):
        scaled.append(_scaled_lr(unscaled_lr, feedback.factor, min_lr))
        # through a view: torch.compile (2.13) drops in-place writes to 0-d float64 inputs
        lr.view(-1).copy_(scaled[-1].view(-1))
    return scaled


# What the compiled step raises at torch's recompile limit with fullgraph=True (torch 2.6
# named it FailOnCacheLimitHit); matched by name, as torch._dynamo.exc is private.
_RECOMPILE_LIMIT_ERRORS = ("FailOnRecompileLimitHit", "FailOnCacheLimitHit")


@functools.cache
def _fused_device_step() -> Callable[..., list[Tensor]]:
    """``_device_step`` compiled by ``torch.compile`` (inductor): one fused kernel."""
    return torch.compile(_device_step, fullgraph=True)


def _replay_compiled(compiled: Callable[..., list[Tensor]], args: tuple[Any, ...]) -> list[Tensor]:
    """Call ``compiled`` during a CUDA graph capture, where it must not compile again."""
    with torch.compiler.set_stance("fail_on_recompile"):
        try:
            return compiled(*args)
        except RuntimeError as error:
            if "fail_on_recompile" not in str(error):
                raise
            raise RuntimeError(
                "fused=True compiles its step on the first call and after a change of "
                "hyper-parameters, param groups or loss dtype; a CUDA graph cannot capture "
                "that. Run scheduler.step(loss) once before capturing (the usual warm-up "
                "steps do)"
            ) from error


def min_lr_per_group(min_lr: Any) -> list[Any] | None:
    """The values of a ``min_lr`` given per param group (a list, tuple, array, ...), or
    None for a single value (a number, or a string, which ``check_range`` refuses)."""
    if isinstance(min_lr, str | bytes | numbers.Real) or not isinstance(min_lr, Iterable):
        return None
    if getattr(min_lr, "ndim", None) == 0:  # a 0-d array or tensor: one value
        return None
    return list(min_lr)


def _built_schedule(schedule: Any, optimizer: Any) -> LRScheduler | None:
    """``schedule``, or the schedule it builds on ``optimizer`` where it is a callable
    (a scheduler class too: ``schedule=ConstantLR`` builds ``ConstantLR(optimizer)``)."""
    if schedule is None:
        return None
    built = schedule
    if isinstance(schedule, type) or (callable(schedule) and not hasattr(schedule, "step")):
        built = schedule(optimizer)
    is_schedule = hasattr(built, "step") and hasattr(built, "state_dict")
    if isinstance(built, type) or not is_schedule:
        made = "" if built is schedule else f", which built {built!r}"
        raise TypeError(
            "schedule must be an LR scheduler built on this optimizer, or a callable that "
            "builds one from it (e.g. functools.partial(CosineAnnealingLR, T_max=100)), "
            f"got {schedule!r}{made}"
        )
    if getattr(built, "optimizer", optimizer) is not optimizer:
        raise ValueError("schedule must be built on the same optimizer as this scheduler")
    if isinstance(built, ReduceLROnPlateau):
        raise ValueError(
            "schedule= is stepped without arguments, and ReduceLROnPlateau needs a "
            "metric: step it yourself, inside `with scheduler.unscaled():`"
        )
    return cast(LRScheduler, built)


def fused_supported() -> bool:
    """Whether this torch can run ``fused=True``: torch >= 2.6, which has
    ``torch.compiler.set_stance`` (the check that nothing compiles during a capture)."""
    return hasattr(torch.compiler, "set_stance")


def _check_fused(fused: bool, capturable: bool) -> bool:
    if fused and not capturable:
        raise ValueError(
            "fused=True compiles the device step of capturable=True; pass both "
            "(capturable=True, fused=True)"
        )
    if fused and not fused_supported():
        raise ValueError(f"fused=True needs torch >= 2.6, this is torch {torch.__version__}")
    return bool(fused)


def _keep_lr(lr: float | Tensor, kept: float | Tensor | None) -> float | Tensor:
    """An LR to keep: a tensor LR is copied, so later in-place writes do not alias it.

    It is copied into ``kept`` where that is a tensor of the same kind (and not
    ``lr`` itself), so that a CUDA graph that captured ``kept`` reads the new value
    on its next replay: the tensors of ``unscaled_lrs`` are updated in place.
    """
    if not isinstance(lr, Tensor):
        return lr
    if not lr.is_floating_point() or lr.numel() != 1:
        raise TypeError(
            "a tensor LR must be a one-element floating-point tensor, got "
            f"lr={lr!r} (dtype {lr.dtype}, shape {tuple(lr.shape)})"
        )
    if isinstance(kept, Tensor) and kept is not lr and _kind(kept) == _kind(lr):
        return kept.copy_(lr.detach())
    return lr.detach().clone()


def _check_capturable_lr(lr: Any, device: torch.device | None) -> None:
    """``capturable=True`` needs every LR as a tensor on the device of the feedback."""
    if not isinstance(lr, Tensor) or lr.device != device:
        raise ValueError(
            "capturable=True needs tensor LRs in every param group, all on one device "
            f"({device}): got lr={lr!r}; e.g. torch.optim.AdamW(params, "
            "lr=torch.tensor(1e-3, device='cuda'), capturable=True). (An optimizer state "
            "saved with float LRs puts floats into the groups when loaded: put tensors back "
            "before stepping or loading this scheduler's state.)"
        )


def _lr_owner(groups: list[dict[str, Any]], index: int) -> int:
    """The first group that holds the LR tensor of group ``index`` (``index`` itself
    where no earlier group holds it, or where the LR is a float)."""
    lr = groups[index]["lr"]
    if isinstance(lr, Tensor):
        return next(i for i, group in enumerate(groups) if group["lr"] is lr)
    return index


def _floats_for_tensors(value: Any) -> Any:
    """``value`` with every one-element floating-point tensor, at any depth of dicts,
    lists and tuples, replaced by a float: a schedule state saved with tensor LRs,
    for a schedule of float LRs."""
    if isinstance(value, Tensor) and value.is_floating_point() and value.numel() == 1:
        return float(value.item())
    if isinstance(value, dict):
        return {key: _floats_for_tensors(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floats_for_tensors(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_floats_for_tensors(item) for item in value)
    return value


def _kind(tensor: Tensor) -> tuple[torch.Size, torch.dtype, torch.device]:
    return tensor.shape, tensor.dtype, tensor.device


def _scaled_lr(lr: Tensor, factor: float | Tensor, min_lr: float) -> Tensor:
    """``max(lr * factor, min_lr)`` for a tensor LR, without reading a device factor.

    A device factor is multiplied in torch's compute dtype for the LR's dtype (float32
    for float16 and bfloat16 LRs, the LR's dtype otherwise), as torch multiplies a
    tensor by a Python float, so both kinds of factor give the same LR bit for bit.
    """
    if not isinstance(factor, Tensor):
        return torch.clamp(lr * factor, min=min_lr)
    dtype = torch.promote_types(lr.dtype, torch.float32)
    scaled = lr.to(dtype) * factor.to(dtype).reshape(lr.shape)
    return torch.clamp(scaled, min=min_lr).to(lr.dtype)


# This class's step (a subclass's own ran in the graph), that a caller's torch.compile
# runs eagerly, as a graph break.
_step_outside_the_graph: Callable[[LossFeedbackScheduler, Any], None]
_step_outside_the_graph = torch.compiler.disable(  # type: ignore[no-untyped-call]
    LossFeedbackScheduler.step
)


def _capturing() -> bool:
    """Whether the current CUDA stream is capturing a graph."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


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
    """A stored unscaled LR in the form the group's LR has: a tensor, a float, or a
    numpy float (``numpy.float32(0.1)``, whose arithmetic then stays in float32)."""
    if isinstance(current, Tensor):
        return torch.full_like(current, value)
    if isinstance(current, numbers.Real) and not isinstance(current, numbers.Integral | float):
        numpy_float = cast(Callable[[float], float], type(current))
        return numpy_float(value)
    return value
