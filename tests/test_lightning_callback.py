"""EveCallback in real ``Trainer.fit`` runs: the LR each optimizer step uses, against a reference.

The reference is computed without the callback: the module's schedule stepped alone
on a copy of the optimizer gives the unscaled LR of each step, and the literal rule of
``tests/reference.py`` fed the losses that the module recorded gives the factor.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import importlib
import math
import pickle
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from packaging.version import Version
from reference import factors_before_each_loss, seed_sequences
from torch import Tensor, nn
from torch.nn import functional
from torch.optim import SGD, Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from torch.utils.data import DataLoader, TensorDataset, default_collate

from eve_scheduler import EveCallback, EveRule, LossFeedbackScheduler, SeedRule
from eve_scheduler.scheduler import fused_supported

torch.set_num_threads(1)

LIGHTNING_2_6 = Version(importlib.import_module("lightning.pytorch").__version__) >= Version("2.6")
# EveCallback subclasses lightning.pytorch.Callback here; from Lightning 2.6, a
# pytorch_lightning Trainer takes it too (2.5 refuses it: "Expected a parent").
NAMESPACES = [
    "lightning.pytorch",
    pytest.param(
        "pytorch_lightning",
        marks=pytest.mark.skipif(not LIGHTNING_2_6, reason="Lightning 2.5 takes only its own"),
    ),
]
LR = 0.1
MakeSchedule = Callable[[Optimizer], Any]


def data(batches: int = 6, batch_size: int = 16, *, seed: int = 0) -> DataLoader[Any]:
    """``batches`` fixed batches of scikit-learn's diabetes data (10 features), no shuffling."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(x), generator=generator)[: batches * batch_size]
    features = torch.tensor(x, dtype=torch.float32)[rows] * 10
    target = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32)[rows].unsqueeze(1)
    return DataLoader(TensorDataset(features, target), batch_size=batch_size)


def regressor(
    pl: Any,
    *,
    schedule: MakeSchedule | None = None,
    interval: str = "step",
    lr: float = LR,
) -> Any:
    """A linear model on ``pl.LightningModule`` that records its losses and LRs.

    ``losses``: the loss of every training batch, as ``training_step`` computed it;
    ``batches``: the first feature of that batch.
    ``lrs``: the LR in the param group while each optimizer step runs (read by a
    step pre-hook registered after the callback's).
    """

    class Regressor(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Linear(10, 1)
            self.losses: list[float] = []
            self.lrs: list[float] = []
            self.batches: list[float] = []  # the first feature of each batch, to tell them apart

        def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
            x, y = batch
            loss = functional.mse_loss(self.net(x), y)
            self.batches.append(x[0, 0].item())
            self.losses.append(loss.item())
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            optimizer = SGD(self.parameters(), lr=lr)
            if schedule is None:
                return optimizer
            scheduler = {"scheduler": schedule(optimizer), "interval": interval}
            return {"optimizer": optimizer, "lr_scheduler": scheduler}

        def on_train_start(self) -> None:
            for optimizer in self.trainer.optimizers:
                optimizer.register_step_pre_hook(self._record_lr)

        def _record_lr(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
            self.lrs.append(optimizer.param_groups[0]["lr"])

    return Regressor()


def trainer(pl: Any, callbacks: list[Any], **options: Any) -> Any:
    settings: dict[str, Any] = {
        "max_epochs": 2,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "accelerator": "cpu",
        "devices": 1,
    }
    settings.update(options)
    return pl.Trainer(callbacks=callbacks, **settings)


def schedule_alone(
    make_schedule: MakeSchedule | None,
    steps: int,
    *,
    interval: str = "step",
    steps_per_epoch: int = 6,
    lr: float = LR,
) -> list[float]:
    """The LR of each of ``steps`` optimizer steps with the schedule alone, on a copy."""
    optimizer = SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedule = make_schedule(optimizer) if make_schedule else None
    lrs = []
    for t in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if schedule is not None and (interval == "step" or (t + 1) % steps_per_epoch == 0):
            schedule.step()
    return lrs


def expected_lrs(unscaled: list[float], fed_losses: list[float], **hparams: float) -> list[float]:
    factors = factors_before_each_loss(fed_losses, **hparams)
    return [lr * factor for lr, factor in zip(unscaled, factors, strict=True)]


def warmup_then_cosine(optimizer: Optimizer) -> SequentialLR:
    warmup = LinearLR(optimizer, start_factor=0.25, total_iters=3)
    cosine = CosineAnnealingLR(optimizer, T_max=9)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[3])


def halve_each_epoch(optimizer: Optimizer) -> StepLR:
    return StepLR(optimizer, step_size=1, gamma=0.5)


def inverse_time(optimizer: Optimizer) -> LambdaLR:
    """A schedule that writes its LR outright (not as a change of the LR it finds)."""
    return LambdaLR(optimizer, lambda step: 1 / (1 + step))


# -- the no-argument case, with and without a schedule, in both namespaces ---------


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize(
    ("schedule", "interval"),
    [(None, "step"), (warmup_then_cosine, "step"), (halve_each_epoch, "epoch")],
    ids=["no-schedule", "warmup-cosine-per-step", "halving-per-epoch"],
)
def test_lr_is_the_schedule_times_the_factor_of_the_losses(
    namespace: str, schedule: MakeSchedule | None, interval: str
) -> None:
    pl = importlib.import_module(namespace)
    model = regressor(pl, schedule=schedule, interval=interval)
    callback = EveCallback()
    trainer(pl, [callback]).fit(model, data())

    assert len(model.lrs) == len(model.losses) == 12  # 2 epochs of 6 optimizer steps
    unscaled = schedule_alone(schedule, 12, interval=interval)
    assert model.lrs == expected_lrs(unscaled, model.losses)
    assert callback.schedulers[0].state.t == 12


def test_each_fit_starts_the_feedback_afresh() -> None:
    """A fit builds new optimizers: a reused callback gives them new feedback (factor 1)."""
    pl = importlib.import_module("lightning.pytorch")
    callback = EveCallback()
    first, second = regressor(pl), regressor(pl)
    trainer(pl, [callback], max_epochs=1).fit(first, data())
    trainer(pl, [callback], max_epochs=1).fit(second, data())
    assert second.losses == first.losses  # the same start: the same model, data and LRs
    assert second.lrs == first.lrs == expected_lrs([LR] * 6, second.losses)
    assert callback.schedulers[0].state.t == 6


def test_a_training_step_returning_a_dict_and_no_logging() -> None:
    pl = importlib.import_module("lightning.pytorch")
    base = type(regressor(pl))

    class ReturnsDict(base):
        def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
            return {"loss": super().training_step(batch, batch_idx), "batch_idx": batch_idx}

    model = ReturnsDict()
    fit = trainer(pl, [EveCallback(log_metrics=False)], max_epochs=1)
    fit.fit(model, data())
    assert model.lrs == expected_lrs(schedule_alone(None, 6), model.losses)
    assert not [key for key in fit.callback_metrics if key.startswith("feedback/")]


def test_the_lr_in_the_group_is_the_lr_the_update_used() -> None:
    """Plain SGD moves w by -lr * grad: read the LR back from the parameter update."""
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl, schedule=warmup_then_cosine)
    seen: list[float] = []

    class UpdateProbe(pl.Callback):
        def on_before_optimizer_step(self, trainer: Any, module: Any, optimizer: Any) -> None:
            self.before = module.net.bias.detach().clone()
            self.grad = module.net.bias.grad.detach().clone()

        def on_train_batch_end(self, trainer: Any, module: Any, *args: Any) -> None:
            step = self.before - module.net.bias.detach()
            seen.append(float(step / self.grad))

    trainer(pl, [EveCallback(), UpdateProbe()], max_epochs=1).fit(model, data())
    assert seen == pytest.approx(model.lrs, rel=1e-5)
    assert model.lrs == expected_lrs(schedule_alone(warmup_then_cosine, 6), model.losses)


def test_eve_rule_and_hyper_parameters_reach_the_scheduler() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl)
    callback = EveCallback("eve", c=4.0, beta3=0.9, min_lr=0.0)
    trainer(pl, [callback], max_epochs=1).fit(model, data())
    assert callback.schedulers[0].rule.c == 4.0
    unscaled = schedule_alone(None, 6)
    assert model.lrs == expected_lrs(unscaled, model.losses, rule="eve", c=4.0, beta3=0.9)


def test_a_rule_object_reaches_the_scheduler() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl)
    rule = EveRule(c=4.0, beta3=0.9)
    callback = EveCallback(rule)
    trainer(pl, [callback], max_epochs=1).fit(model, data())
    assert callback.schedulers[0].rule is rule
    unscaled = schedule_alone(None, 6)
    assert model.lrs == expected_lrs(unscaled, model.losses, rule="eve", c=4.0, beta3=0.9)


def test_lag_reads_each_loss_one_step_late() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl)
    trainer(pl, [EveCallback(lag=1)], max_epochs=1).fit(model, data())
    factors = factors_before_each_loss(model.losses)
    assert model.lrs == [LR * f for f in [factors[0], *factors[:-1]]]


# -- gradient accumulation and skipped optimizer steps ---------------------------------


@pytest.mark.parametrize("accumulate", [2, 4])
def test_accumulation_feeds_the_mean_undivided_loss_of_each_step(accumulate: int) -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl, schedule=warmup_then_cosine)
    # f_star breaks the rule's scale invariance, so that a loss fed divided by k shows.
    callback = EveCallback(f_star=-0.5)
    # 5 batches an epoch: the last optimizer step of each epoch has a shorter window.
    trainer(pl, [callback], accumulate_grad_batches=accumulate).fit(model, data(batches=5))

    windows = [list(range(i, min(i + accumulate, 5))) for i in range(0, 5, accumulate)]
    fed = [
        sum(model.losses[5 * epoch + i] for i in window) / len(window)
        for epoch in range(2)
        for window in windows
    ]
    steps = len(fed)
    assert len(model.lrs) == steps == callback.schedulers[0].state.t
    unscaled = schedule_alone(warmup_then_cosine, steps)
    assert model.lrs == expected_lrs(unscaled, fed, f_star=-0.5)


def skipping_regressor(
    pl: Any, skips: dict[int, str], *, by_hand: MakeSchedule | None = None
) -> Any:
    """``regressor`` whose optimizer step does not happen on the batches in ``skips``.

    ``"grad-scaler"``: the gradients are made infinite, so that a real
    ``GradScaler`` skips ``optimizer.step``. ``"no-step"``: ``optimizer_step``
    runs the closure but not the step (Lightning still counts it). ``"raises"``:
    ``optimizer.step`` raises after its pre-hooks and the closure ran, and
    ``optimizer_step`` catches the error (Lightning still counts the step).
    ``by_hand``: a schedule that ``optimizer_step`` steps itself at its end, in
    place of the one that Lightning steps.
    """
    base = type(regressor(pl, schedule=None if by_hand else warmup_then_cosine))

    class Skipping(base):
        def configure_optimizers(self) -> Any:
            optimizers = super().configure_optimizers()
            self.by_hand = by_hand(optimizers) if by_hand else None
            return optimizers

        def on_after_backward(self) -> None:
            if skips.get(len(self.losses) - 1) == "grad-scaler":
                self.net.weight.grad.fill_(math.inf)

        def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, closure: Any) -> None:
            how = skips.get(batch_idx)
            if how == "no-step":
                closure()
            elif how == "raises":

                def failing_closure() -> None:
                    closure()
                    raise RuntimeError("the step failed")

                with contextlib.suppress(RuntimeError):
                    optimizer.step(closure=failing_closure)
            else:
                optimizer.step(closure=closure)
            if self.by_hand is not None:
                self.by_hand.step()

    return Skipping()


@pytest.mark.parametrize("how", ["grad-scaler", "no-step"])
def test_a_skipped_optimizer_step_feeds_nothing(how: str) -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.plugins import MixedPrecision

    skip = 2
    model = skipping_regressor(pl, {skip: how})
    callback = EveCallback()
    plugins = []
    if how == "grad-scaler":  # fp16 AMP with a real GradScaler, on the CPU
        scaler = torch.amp.GradScaler("cpu", init_scale=16.0)
        plugins = [MixedPrecision("16-mixed", "cpu", scaler=scaler)]
    fit = trainer(pl, [callback], max_epochs=1, plugins=plugins)
    fit.fit(model, data())

    assert fit.global_step == 6  # Lightning counts the skipped step
    assert len(model.lrs) == 5  # ... but optimizer.step ran 5 times
    assert callback.schedulers[0].state.t == 5
    # The schedule is stepped by Lightning after every batch, skipped step included;
    # the factor only moves on the steps that happened.
    unscaled = schedule_alone(warmup_then_cosine, 6)
    fed = [loss for i, loss in enumerate(model.losses) if i != skip]
    factors = factors_before_each_loss(fed)
    factors_by_batch = factors[: skip + 1] + factors[skip:]
    expected = [lr * f for lr, f in zip(unscaled, factors_by_batch, strict=True)]
    del expected[skip]  # no optimizer step used the LR of the skipped batch
    assert model.lrs == expected


def test_an_error_caught_in_optimizer_step_is_over_at_the_end_of_its_batch() -> None:
    """After an ``optimizer.step`` that raised (its pre-hooks ran, its post-hooks did
    not), the next batch's skipped step still opens the unscaled window, so that a
    schedule stepped by hand after it changes the unscaled LR, not the scaled one."""
    pl = importlib.import_module("lightning.pytorch")
    skips = {1: "raises", 2: "no-step"}
    model = skipping_regressor(pl, skips, by_hand=inverse_time)
    callback = EveCallback()
    fit = trainer(pl, [callback], max_epochs=1)
    fit.fit(model, data())

    assert fit.global_step == 6
    stepped = [i for i in range(6) if i not in skips]
    assert callback.schedulers[0].state.t == len(stepped)
    unscaled = schedule_alone(inverse_time, 6)
    factors = factors_before_each_loss([model.losses[i] for i in stepped])
    fed_before = [sum(j < i for j in stepped) for i in range(6)]
    # The step pre-hooks ran on every batch but the one that skipped optimizer.step.
    expected = [unscaled[i] * factors[fed_before[i]] for i in range(6) if skips.get(i) != "no-step"]
    assert model.lrs == expected


def test_bf16_mixed_precision() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl, schedule=warmup_then_cosine)
    trainer(pl, [EveCallback()], max_epochs=1, precision="bf16-mixed").fit(model, data())
    assert model.lrs == expected_lrs(schedule_alone(warmup_then_cosine, 6), model.losses)


# -- manual optimization and several optimizers ------------------------------------


def manual_module(pl: Any, *, every: tuple[int, int] = (1, 1), returns: str = "loss") -> Any:
    """Two optimizers on the two halves of a model, stepped by hand.

    Optimizer ``i`` steps on every ``every[i]``-th batch; the first one owns an
    ``ExponentialLR`` that ``training_step`` steps right after the optimizer.
    ``training_step`` logs ``loss_a`` and ``loss_b`` (two different numbers) and
    returns the loss (``returns="loss"``), or nothing (``returns="nothing"``).
    """

    class TwoOptimizers(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            torch.manual_seed(0)
            self.first = nn.Linear(10, 4)
            self.second = nn.Linear(4, 1)
            self.losses: list[float] = []
            self.metrics: list[tuple[float, float]] = []
            self.lrs: list[tuple[float, float]] = []

        def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Any:
            x, y = batch
            opt_a, opt_b = self.optimizers()
            loss = functional.mse_loss(self.second(torch.tanh(self.first(x))), y)
            self.manual_backward(loss)
            self.lrs.append((opt_a.param_groups[0]["lr"], opt_b.param_groups[0]["lr"]))
            if batch_idx % every[0] == 0:
                opt_a.step()
                self.lr_schedulers().step()
            if batch_idx % every[1] == 0:
                opt_b.step()
            opt_a.zero_grad()
            opt_b.zero_grad()
            metric_a, metric_b = loss.detach(), 2.0 * loss.detach() + 1.0
            self.losses.append(loss.item())
            self.metrics.append((metric_a.item(), metric_b.item()))
            self.log_dict({"loss_a": metric_a, "loss_b": metric_b})
            return loss if returns == "loss" else None

        def configure_optimizers(self) -> Any:
            opt_a = SGD(self.first.parameters(), lr=LR)
            opt_b = SGD(self.second.parameters(), lr=0.05)
            return [opt_a, opt_b], [ExponentialLR(opt_a, gamma=0.9)]

    return TwoOptimizers()


def test_manual_optimization_drives_every_optimizer_with_the_returned_loss() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = manual_module(pl)
    callback = EveCallback()
    trainer(pl, [callback], max_epochs=1).fit(model, data())

    factors = factors_before_each_loss(model.losses)
    decay = schedule_alone(lambda opt: ExponentialLR(opt, gamma=0.9), 6)
    assert [a for a, _ in model.lrs] == [lr * f for lr, f in zip(decay, factors, strict=True)]
    assert [b for _, b in model.lrs] == [0.05 * f for f in factors]
    assert [s.state.t for s in callback.schedulers] == [6, 6]


def test_optimizer_idx_drives_one_optimizer_only() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = manual_module(pl)
    callback = EveCallback(optimizer_idx=1)
    trainer(pl, [callback], max_epochs=1).fit(model, data())

    decay = schedule_alone(lambda opt: ExponentialLR(opt, gamma=0.9), 6)
    assert [a for a, _ in model.lrs] == decay  # untouched
    assert [b for _, b in model.lrs] == [0.05 * f for f in factors_before_each_loss(model.losses)]


def test_one_callback_per_optimizer_each_with_its_own_metric() -> None:
    """A GAN-like set-up: the second optimizer steps every other batch on its own loss."""
    pl = importlib.import_module("lightning.pytorch")
    model = manual_module(pl, every=(1, 2), returns="nothing")
    first = EveCallback(optimizer_idx=0, monitor="loss_a")
    second = EveCallback(optimizer_idx=1, monitor="loss_b")
    trainer(pl, [first, second], max_epochs=1).fit(model, data())

    metric_a = [a for a, _ in model.metrics]
    metric_b = [b for _, b in model.metrics]
    decay = schedule_alone(lambda opt: ExponentialLR(opt, gamma=0.9), 6)
    assert [a for a, _ in model.lrs] == expected_lrs(decay, metric_a)
    # The second optimizer's step on batch 2i is fed the mean of batches 2i and 2i + 1
    # (the first step: batch 0 alone, as no batch came before it).
    fed_b = [metric_b[0], (metric_b[1] + metric_b[2]) / 2, (metric_b[3] + metric_b[4]) / 2]
    factors_b = factors_before_each_loss(fed_b)
    assert [b for _, b in model.lrs][0::2] == [0.05 * f for f in factors_b]
    assert second.schedulers[0].state.t == 3


@pytest.mark.parametrize("order", ["first-second", "second-first"])
def test_two_callbacks_leave_the_module_as_it_was(order: str) -> None:
    """Each wraps two module hooks while it trains; in either teardown order, none is
    left behind, and a second fit feeds each callback once an epoch again."""
    pl = importlib.import_module("lightning.pytorch")
    model = manual_module(pl, every=(1, 2), returns="nothing")
    first = EveCallback(optimizer_idx=0, monitor="loss_a", interval="epoch")
    second = EveCallback(optimizer_idx=1, monitor="loss_b", interval="epoch")
    callbacks = [first, second] if order == "first-second" else [second, first]
    for _ in range(2):
        trainer(pl, callbacks, max_epochs=1).fit(model, data())
        assert "lr_scheduler_step" not in model.__dict__
        assert "on_train_epoch_end" not in model.__dict__
        assert [c.schedulers[0].state.t for c in (first, second)] == [1, 1]


def test_lightnings_is_overridden_sees_through_two_wrappers() -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.utilities.model_helpers import is_overridden

    seen: list[bool] = []

    class Probe(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            seen.append(is_overridden("on_train_epoch_end", module))
            seen.append(is_overridden("lr_scheduler_step", module))

    model = manual_module(pl, every=(1, 2), returns="nothing")
    callbacks = [
        EveCallback(optimizer_idx=0, monitor="loss_a"),
        EveCallback(optimizer_idx=1, monitor="loss_b"),
        Probe(),
    ]
    trainer(pl, callbacks, max_epochs=1).fit(model, data())
    assert seen == [False, False]  # the module overrides neither


def test_a_copy_of_the_callback_wraps_nothing() -> None:
    pl = importlib.import_module("lightning.pytorch")
    copies: list[EveCallback] = []

    class CopyCallback(pl.Callback):
        def on_train_start(self, trainer: Any, module: Any) -> None:
            (eve,) = [c for c in trainer.callbacks if isinstance(c, EveCallback)]
            copies.append(copy.deepcopy(eve))

    trainer(pl, [EveCallback(), CopyCallback()], max_epochs=1).fit(regressor(pl), data())
    model = regressor(pl)
    trainer(pl, [copies[0]], max_epochs=1).fit(model, data())  # the copy trains as new
    assert model.lrs == expected_lrs(schedule_alone(None, 6), model.losses)


def test_a_copy_of_the_module_during_fit_holds_none_of_the_callback() -> None:
    """EMA and SWA callbacks deep-copy the module: the copy gets the plain hooks, not
    the trainer and the data behind the callback's wrappers."""
    pl = importlib.import_module("lightning.pytorch")
    copies: list[Any] = []

    class CopyModule(pl.Callback):
        def on_train_start(self, trainer: Any, module: Any) -> None:
            copies.append(copy.deepcopy(module))

    model = regressor(pl, schedule=warmup_then_cosine)
    trainer(pl, [EveCallback(), CopyModule()], max_epochs=1).fit(model, data())
    (duplicate,) = copies
    for name in ("lr_scheduler_step", "on_train_epoch_end"):
        hook = getattr(duplicate, name)
        assert hook.__self__ is duplicate and hook.__func__ is getattr(type(model), name)


class Plain:
    """A module-level class (picklable) with one hook."""

    def hook(self, x: int) -> int:
        return x + 1


def test_wrapped_hooks_nest_unwrap_in_any_order_and_pickle_plain() -> None:
    from eve_scheduler.lightning import _ModuleHooks

    target, calls = Plain(), []
    outer, inner = _ModuleHooks(), _ModuleHooks()
    inner.wrap(target, hook=lambda original, x: calls.append("inner") or original(x))
    outer.wrap(target, hook=lambda original, x: calls.append("outer") or original(x))
    assert target.hook(1) == 2 and calls == ["outer", "inner"]
    copied = pickle.loads(pickle.dumps(target))  # the copy gets the plain hook
    assert copied.hook(1) == 2 and calls == ["outer", "inner"]
    inner.unwrap()  # the inner one first: the outer one keeps working, without it
    assert target.hook(1) == 2 and calls == ["outer", "inner", "outer"]
    outer.unwrap()
    assert "hook" not in target.__dict__ and target.hook(1) == 2


def test_manual_optimization_without_a_returned_loss_says_what_to_do() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = manual_module(pl, returns="nothing")
    with pytest.raises(
        ValueError, match=r"return the loss .* or pass EveCallback\(monitor=\.\.\.\)"
    ):
        trainer(pl, [EveCallback()], max_epochs=1).fit(model, data())


# -- interval and monitor ------------------------------------------------------------


def test_epoch_interval_feeds_the_mean_loss_of_each_epoch() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl, schedule=warmup_then_cosine)
    callback = EveCallback(interval="epoch")
    trainer(pl, [callback], max_epochs=3).fit(model, data())

    epoch_means = [sum(model.losses[6 * e : 6 * e + 6]) / 6 for e in range(3)]
    factors = factors_before_each_loss(epoch_means)
    by_step = [factors[t // 6] for t in range(18)]
    unscaled = schedule_alone(warmup_then_cosine, 18)
    assert model.lrs == [lr * f for lr, f in zip(unscaled, by_step, strict=True)]
    assert callback.schedulers[0].state.t == 3


def with_validation(pl: Any) -> Any:
    """``regressor`` that also logs ``val_loss`` (one validation batch an epoch)."""
    base = type(regressor(pl))

    class Validated(base):
        def __init__(self) -> None:
            super().__init__()
            self.val_losses: list[float] = []

        def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
            x, y = batch
            loss = functional.mse_loss(self.net(x), y)
            self.val_losses.append(loss.item())
            self.log("val_loss", loss)

    return Validated()


def test_monitor_feeds_a_validation_metric_once_per_epoch() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = with_validation(pl)
    callback = EveCallback(interval="epoch", monitor="val_loss")
    fit = trainer(pl, [callback], max_epochs=3, limit_val_batches=1)
    fit.fit(model, train_dataloaders=data(), val_dataloaders=data(batches=1, seed=1))

    assert len(model.val_losses) == 3
    factors = factors_before_each_loss(model.val_losses)
    assert model.lrs == [LR * factors[t // 6] for t in range(18)]


def test_monitor_fed_only_in_the_epochs_that_validate() -> None:
    """``check_val_every_n_epoch=2``: epoch 0 has no ``val_loss`` and epoch 2 still holds
    epoch 1's; neither is fed."""
    pl = importlib.import_module("lightning.pytorch")
    model = with_validation(pl)
    callback = EveCallback(interval="epoch", monitor="val_loss")
    fit = trainer(pl, [callback], max_epochs=4, limit_val_batches=1, check_val_every_n_epoch=2)
    fit.fit(model, train_dataloaders=data(), val_dataloaders=data(batches=1, seed=1))

    assert len(model.val_losses) == 2
    assert callback.schedulers[0].state.t == 2
    factors = factors_before_each_loss(model.val_losses)
    assert model.lrs == [LR * factors[t // 12] for t in range(24)]


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("where", ["training_step", "on_train_epoch_end"])
def test_monitor_a_training_metric_fed_only_in_the_epochs_that_log_it(
    namespace: str, where: str
) -> None:
    """Lightning keeps a metric an epoch did not log (the previous epoch's value)."""
    pl = importlib.import_module(namespace)
    scores = [3.0, 2.0, None, 1.5, 1.0]  # epoch 2 logs nothing
    base = type(regressor(pl))

    class Scored(base):
        def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
            if where == "training_step" and scores[self.current_epoch] is not None:
                self.log("score", scores[self.current_epoch], on_step=False, on_epoch=True)
            loss: Tensor = super().training_step(batch, batch_idx)
            return loss

        def on_train_epoch_end(self) -> None:
            if where == "on_train_epoch_end" and scores[self.current_epoch] is not None:
                self.log("score", scores[self.current_epoch])

    model = Scored()
    callback = EveCallback(interval="epoch", monitor="score")
    trainer(pl, [callback], max_epochs=5).fit(model, data())

    assert callback.schedulers[0].state.t == 4
    factors = factors_before_each_loss([3.0, 2.0, 1.5, 1.0])
    by_epoch = [factors[0], factors[1], factors[2], factors[2], factors[3]]
    assert model.lrs == [LR * by_epoch[t // 6] for t in range(30)]


@pytest.mark.parametrize("validate", [True, False], ids=["validation", "no-validation"])
def test_a_monitored_metric_missing_at_the_epoch_end_lists_the_available_ones(
    validate: bool,
) -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = with_validation(pl)
    fit = trainer(pl, [EveCallback(interval="epoch", monitor="val_los")], max_epochs=1)
    with pytest.raises(ValueError, match=r"no metric 'val_los'; available metrics: \["):
        fit.fit(model, data(), data(batches=1, seed=1) if validate else None)


def test_monitor_a_training_metric_every_step() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl)
    trainer(pl, [EveCallback(monitor="train_loss")], max_epochs=1).fit(model, data())
    assert model.lrs == expected_lrs(schedule_alone(None, 6), model.losses)


def test_a_missing_monitored_metric_lists_the_available_ones() -> None:
    pl = importlib.import_module("lightning.pytorch")
    model = regressor(pl)
    with pytest.raises(
        ValueError, match=r"no metric 'val_loss'; available metrics: \['train_loss'\]"
    ):
        trainer(pl, [EveCallback(monitor="val_loss")], max_epochs=1).fit(model, data())


# -- schedules stepped outside the optimizer step --------------------------------------


def test_reduce_lr_on_plateau_changes_are_kept() -> None:
    """Lightning steps a plateau schedule after the epoch; its cut stays, times the factor."""
    pl = importlib.import_module("lightning.pytorch")
    base = type(regressor(pl))

    class Plateau(base):
        def training_step(self, batch: Any, batch_idx: int) -> Tensor:
            self.log("never_improves", 1.0, on_step=False, on_epoch=True)
            loss: Tensor = super().training_step(batch, batch_idx)
            return loss

        def configure_optimizers(self) -> Any:
            optimizer = SGD(self.parameters(), lr=LR)
            plateau = ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
            scheduler = {"scheduler": plateau, "monitor": "never_improves", "interval": "epoch"}
            return {"optimizer": optimizer, "lr_scheduler": scheduler}

    model = Plateau()
    trainer(pl, [EveCallback()], max_epochs=3).fit(model, data())
    # The plateau schedule alone: best after epoch 0, one cut after each later epoch.
    unscaled = [LR] * 12 + [LR * 0.5] * 6
    expected = expected_lrs(unscaled, model.losses)
    assert model.lrs == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("how", ["none-batch", "skip-rest-of-epoch"])
def test_a_schedule_stepped_in_a_batch_without_an_optimizer_step_keeps_the_factor(
    how: str,
) -> None:
    """Lightning steps the schedules after a batch that made no optimizer step (the
    loader yielded None, or on_train_batch_start returned -1): on the unscaled LR too."""
    pl = importlib.import_module("lightning.pytorch")
    base = type(regressor(pl, schedule=warmup_then_cosine))
    no_step_at = 2  # the third batch of each epoch

    class NoStep(base):
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
            return -1 if how == "skip-rest-of-epoch" and batch_idx == no_step_at else None

    loader = data()
    if how == "none-batch":  # the loader yields None in place of that batch

        def collate(items: list[Any]) -> Any:
            batch = default_collate(items)
            return None if float(batch[0][0, 0]) == first_features[no_step_at] else batch

        first_features = [float(x[0, 0]) for x, _ in loader]
        loader = DataLoader(loader.dataset, batch_size=16, collate_fn=collate)
    model = NoStep()
    trainer(pl, [EveCallback()], max_epochs=2).fit(model, loader)

    per_epoch = no_step_at if how == "skip-rest-of-epoch" else 5
    steps = 2 * per_epoch
    assert len(model.lrs) == len(model.losses) == steps
    # the schedule alone, also stepped once for each batch without an optimizer step
    # (from Lightning 2.6, also for the batch on_train_batch_start skipped)
    steps_the_skipped_batch = how == "none-batch" or LIGHTNING_2_6
    optimizer = SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    schedule, unscaled = warmup_then_cosine(optimizer), []
    for batch_idx in list(range(6 if how == "none-batch" else no_step_at + 1)) * 2:
        if batch_idx != no_step_at:
            unscaled.append(optimizer.param_groups[0]["lr"])
        if batch_idx != no_step_at or steps_the_skipped_batch:
            schedule.step()
    assert model.lrs == pytest.approx(expected_lrs(unscaled, model.losses), rel=1e-12, abs=0)


def test_epoch_interval_feeds_an_epoch_cut_short(tmp_path: Path) -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    base = type(regressor(pl))

    class CutShort(base):
        def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
            return -1 if batch_idx == 3 else None  # three optimizer steps an epoch

    model = CutShort()
    callback = EveCallback(interval="epoch")
    logger = CSVLogger(tmp_path, name="run", version=0)
    trainer(pl, [callback], max_epochs=3, logger=logger, log_every_n_steps=1).fit(model, data())
    epoch_means = [sum(model.losses[3 * e : 3 * e + 3]) / 3 for e in range(3)]
    factors = factors_before_each_loss(epoch_means)
    assert model.lrs == [LR * factors[t // 3] for t in range(9)]

    with open(tmp_path / "run" / "version_0" / "metrics.csv") as stream:
        fed = [row for row in csv.DictReader(stream) if row.get("feedback/loss")]
    assert [int(row["step"]) for row in fed] == [2, 5, 8]  # logged once, at each feed
    assert [float(row["feedback/loss"]) for row in fed] == pytest.approx(epoch_means, rel=1e-6)
    assert callback.schedulers[0].state.t == 3


def test_epoch_interval_feeds_an_epoch_that_a_dataloader_iter_step_ends() -> None:
    """training_step(dataloader_iter) on a loader without a length: Lightning learns of
    the epoch's end only when the data runs out, so no batch is marked the last."""
    pl = importlib.import_module("lightning.pytorch")
    base = type(regressor(pl))

    class Unsized(torch.utils.data.IterableDataset[tuple[Tensor, Tensor]]):
        def __iter__(self) -> Any:
            return iter(data().dataset)

    class FromIterator(base):
        def training_step(self, dataloader_iter: Any) -> Tensor:
            (x, y), _, _ = next(dataloader_iter)
            loss = functional.mse_loss(self.net(x), y)
            self.losses.append(loss.item())
            return loss

    model = FromIterator()
    callback = EveCallback(interval="epoch")
    trainer(pl, [callback], max_epochs=2).fit(model, DataLoader(Unsized(), batch_size=16))
    assert len(model.losses) == 12 and callback.schedulers[0].state.t == 2
    factors = factors_before_each_loss([sum(model.losses[:6]) / 6, sum(model.losses[6:]) / 6])
    # each epoch ends in a seventh optimizer.step whose closure meets the end of the data
    assert model.lrs == [LR * factors[0]] * 7 + [LR * factors[1]] * 7


def test_epoch_interval_keeps_an_unfinished_epoch_for_the_resume(tmp_path: Path) -> None:
    """Training that stops at max_steps mid-epoch does not feed the partial epoch: its
    sum is saved, and after a resume the epoch is fed once, with all its batches.
    (Lightning replays a plain DataLoader from its start on a mid-epoch resume, so the
    losses after it differ from an uninterrupted run's.)"""
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(max_steps: int, ckpt_path: str | None = None) -> tuple[Any, EveCallback]:
        model, callback = regressor(pl), EveCallback(interval="epoch")
        saver = ModelCheckpoint(dirpath=tmp_path / str(max_steps), save_last=True)
        fit = trainer(
            pl, [callback, saver], max_epochs=-1, max_steps=max_steps, enable_checkpointing=True
        )
        fit.fit(model, data(), ckpt_path=ckpt_path)
        return model, callback

    first, first_callback = run(9)  # epoch 0, then 3 of the 6 steps of epoch 1
    assert first_callback.schedulers[0].state.t == 1  # epoch 1 is not fed at step 9
    rest, rest_callback = run(15, str(tmp_path / "9" / "last.ckpt"))
    assert len(rest.lrs) == 6 and rest_callback.schedulers[0].state.t == 2
    epoch_means = [sum(first.losses[:6]) / 6, sum(first.losses[6:9] + rest.losses[:3]) / 6]
    factors = factors_before_each_loss([*epoch_means, 1.0])  # before, after 1, after 2
    assert first.lrs + rest.lrs == [LR * factors[min(t // 6, 2)] for t in range(15)]


def test_monitor_logged_in_the_modules_on_train_epoch_end_is_fed_that_epoch() -> None:
    pl = importlib.import_module("lightning.pytorch")
    base = type(regressor(pl))

    class EpochMetric(base):
        def on_train_epoch_end(self) -> None:
            self.epoch_means = [*getattr(self, "epoch_means", []), sum(self.losses[-6:]) / 6]
            self.log("epoch_loss", self.epoch_means[-1])

    model = EpochMetric()
    trainer(pl, [EveCallback(interval="epoch", monitor="epoch_loss")], max_epochs=3).fit(
        model, data()
    )
    factors = factors_before_each_loss(model.epoch_means)
    assert model.lrs == pytest.approx([LR * factors[t // 6] for t in range(18)], rel=1e-12)
    assert "on_train_epoch_end" not in model.__dict__  # the wrapper is gone after fit


def test_a_gradient_accumulation_schedule_is_followed_epoch_by_epoch() -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import GradientAccumulationScheduler

    model = regressor(pl)
    callback = EveCallback(f_star=-0.5)  # f_star shows a loss fed divided by k
    accumulation = GradientAccumulationScheduler(scheduling={0: 1, 1: 3})
    trainer(pl, [callback, accumulation], max_epochs=2).fit(model, data())
    second = model.losses[6:]
    fed = [*model.losses[:6], sum(second[:3]) / 3, sum(second[3:]) / 3]
    assert model.lrs == pytest.approx(
        expected_lrs(schedule_alone(None, 8), fed, f_star=-0.5), rel=1e-6, abs=0
    )


def test_feedback_twice_on_one_optimizer_is_refused() -> None:
    pl = importlib.import_module("lightning.pytorch")
    base = type(regressor(pl))

    class AlreadyFeedback(base):
        def configure_optimizers(self) -> Any:
            optimizer = SGD(self.parameters(), lr=LR)
            scheduler = {
                "scheduler": LossFeedbackScheduler(optimizer),
                "reduce_on_plateau": True,
                "monitor": "train_loss",
            }
            return {"optimizer": optimizer, "lr_scheduler": scheduler}

    with pytest.raises(ValueError, match="apply the feedback twice"):
        trainer(pl, [EveCallback()], max_epochs=1).fit(AlreadyFeedback(), data())


def test_two_callbacks_on_one_optimizer_are_refused() -> None:
    pl = importlib.import_module("lightning.pytorch")
    callbacks = [EveCallback(), EveCallback(optimizer_idx=0)]
    with pytest.raises(ValueError, match="two EveCallbacks drive the same optimizer"):
        trainer(pl, callbacks, max_epochs=1).fit(regressor(pl), data())


# -- logging -------------------------------------------------------------------------


def test_logs_factor_state_and_the_lr_used(tmp_path: Path) -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    model = regressor(pl, schedule=warmup_then_cosine)
    monitor = LearningRateMonitor(logging_interval="step")
    logger = CSVLogger(tmp_path, name="run", version=0)
    fit = trainer(pl, [EveCallback(), monitor], max_epochs=1, logger=logger, log_every_n_steps=1)
    fit.fit(model, data())

    with open(tmp_path / "run" / "version_0" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    lr_monitor = [float(r["lr-SGD"]) for r in rows if r.get("lr-SGD")]
    assert lr_monitor == pytest.approx(model.lrs, rel=1e-12)  # the LR the steps used

    logged = [r for r in rows if r.get("feedback/factor")]
    assert len(logged) == 6
    sequences = seed_sequences(model.losses)  # index t: after t losses
    for t, row in enumerate(logged, start=1):
        assert float(row["feedback/factor"]) == pytest.approx(sequences["factor"][t], rel=1e-6)
        assert float(row["feedback/d"]) == pytest.approx(sequences["d"][t], rel=1e-6)
        assert float(row["feedback/v"]) == pytest.approx(sequences["v"][t], rel=1e-5, abs=1e-12)
        assert float(row["feedback/loss"]) == pytest.approx(model.losses[t - 1], rel=1e-6)
        assert float(row["feedback/lr"]) == pytest.approx(model.lrs[t - 1], rel=1e-6)


def test_an_epoch_end_feed_is_logged_once_at_the_last_step_of_its_epoch(
    tmp_path: Path,
) -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    model = with_validation(pl)
    logger = CSVLogger(tmp_path, name="run", version=0)
    callback = EveCallback(interval="epoch", monitor="val_loss")
    fit = trainer(
        pl, [callback], max_epochs=3, limit_val_batches=1, logger=logger, log_every_n_steps=1
    )
    fit.fit(model, data(), data(batches=1, seed=1))

    with open(tmp_path / "run" / "version_0" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    fed = [r for r in rows if r.get("feedback/loss")]
    assert [int(r["step"]) for r in fed] == [5, 11, 17]  # each epoch's last optimizer step
    assert [float(r["feedback/loss"]) for r in fed] == pytest.approx(model.val_losses, rel=1e-6)
    sequences = seed_sequences(model.val_losses)
    for t, row in enumerate(fed, start=1):
        assert float(row["feedback/factor"]) == pytest.approx(sequences["factor"][t], rel=1e-6)
        assert float(row["feedback/d"]) == pytest.approx(sequences["d"][t], rel=1e-6)
    stepped = [r for r in rows if r.get("feedback/factor") and not r.get("feedback/loss")]
    assert len(stepped) == 18  # the step logs, one per optimizer step, feed nothing
    assert [float(r["feedback/factor"]) for r in stepped[6:12]] == pytest.approx(
        [sequences["factor"][1]] * 6, rel=1e-6
    )


def test_an_epoch_mean_loss_is_logged_whatever_log_every_n_steps(tmp_path: Path) -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    model = regressor(pl)
    logger = CSVLogger(tmp_path, name="run", version=0)
    callback = EveCallback(interval="epoch")
    # Six steps an epoch, step logs every fourth: of the epochs' last steps (5, 11, 17)
    # only 11 is a logging step.
    trainer(pl, [callback], max_epochs=3, logger=logger, log_every_n_steps=4).fit(model, data())

    with open(tmp_path / "run" / "version_0" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    epoch_means = [sum(model.losses[6 * e : 6 * e + 6]) / 6 for e in range(3)]
    fed = [r for r in rows if r.get("feedback/loss")]
    assert [int(r["step"]) for r in fed] == [5, 11, 17]
    assert [float(r["feedback/loss"]) for r in fed] == pytest.approx(epoch_means, rel=1e-6)
    sequences = seed_sequences(epoch_means)
    for t, row in enumerate(fed, start=1):
        assert float(row["feedback/factor"]) == pytest.approx(sequences["factor"][t], rel=1e-6)
    stepped = [r for r in rows if r.get("feedback/factor") and not r.get("feedback/loss")]
    assert [int(r["step"]) for r in stepped] == [3, 7, 11, 15]


def test_a_checkpoint_at_the_training_epoch_end_can_monitor_the_fed_epoch_mean(
    tmp_path: Path,
) -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    model = with_validation(pl)
    saver = ModelCheckpoint(
        dirpath=tmp_path, monitor="feedback/loss", save_on_train_epoch_end=True, save_top_k=-1
    )
    fit = trainer(
        pl,
        [EveCallback(interval="epoch"), saver],
        max_epochs=3,
        limit_val_batches=1,
        check_val_every_n_epoch=2,  # validation, when it runs, comes before the epoch's end
        enable_checkpointing=True,
        logger=CSVLogger(tmp_path, name="run", version=0),
    )
    fit.fit(model, data(), data(batches=1, seed=1))

    epoch_means = [sum(model.losses[6 * e : 6 * e + 6]) / 6 for e in range(3)]
    scores = sorted((Path(path).name, float(score)) for path, score in saver.best_k_models.items())
    assert [name.split("-")[0] for name, _ in scores] == ["epoch=0", "epoch=1", "epoch=2"]
    assert [score for _, score in scores] == pytest.approx(epoch_means, rel=1e-6)


# -- checkpoints -----------------------------------------------------------------------


def fit_with_checkpoints(
    pl: Any,
    tmp_path: Path,
    *,
    max_epochs: int,
    ckpt_path: str | None = None,
    interval: str = "step",
    validate: bool = False,
    loader: Callable[[], Any] = data,
    **checkpointing: Any,
) -> tuple[Any, EveCallback]:
    """``regressor`` with warmup-cosine trained with checkpoints on the batches of
    ``loader()``; with ``validate``, one validation batch an epoch, and checkpoints
    written at validation end (as ``ModelCheckpoint`` does when validation runs more
    often than once an epoch)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    base = type(with_validation(pl) if validate else regressor(pl))

    class Scheduled(base):
        def configure_optimizers(self) -> Any:
            optimizer = SGD(self.parameters(), lr=LR)
            return [optimizer], [warmup_then_cosine(optimizer)]  # stepped once an epoch

    model = Scheduled()
    callback = EveCallback(interval=interval)
    if validate:
        checkpointing["save_on_train_epoch_end"] = False
    saver = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, **checkpointing)
    fit = trainer(
        pl,
        [callback, saver],
        max_epochs=max_epochs,
        enable_checkpointing=True,
        limit_val_batches=1 if validate else 0,
    )
    val_data = data(batches=1, seed=1) if validate else None
    fit.fit(model, loader(), val_data, ckpt_path=ckpt_path)
    return model, callback


@pytest.mark.parametrize(
    ("interval", "validate"), [("step", False), ("epoch", True)], ids=["step", "epoch-val"]
)
def test_resume_at_an_epoch_boundary_continues_the_same_lr_trajectory(
    tmp_path: Path, interval: str, validate: bool
) -> None:
    """With validation, the checkpoint is written at validation end, before the
    epoch's on_train_epoch_end: the epoch's feed must already be in it."""
    pl = importlib.import_module("lightning.pytorch")
    options = {"interval": interval, "validate": validate}
    whole, _ = fit_with_checkpoints(pl, tmp_path / "whole", max_epochs=3, **options)
    first, _ = fit_with_checkpoints(pl, tmp_path / "part", max_epochs=1, **options)
    checkpoint = tmp_path / "part" / "epoch=0-step=6.ckpt"
    saved = torch.load(checkpoint, weights_only=True)  # plain data only
    assert any(key.startswith("EveCallback") for key in saved["callbacks"])

    rest, callback = fit_with_checkpoints(
        pl, tmp_path / "rest", max_epochs=3, ckpt_path=str(checkpoint), **options
    )
    assert first.lrs + rest.lrs == whole.lrs  # bit for bit
    assert len(set(whole.lrs)) >= 3  # the LR moved, with the schedule and the factor
    assert callback.schedulers[0].state.t == (18 if interval == "step" else 3)


@pytest.mark.parametrize("at_train_epoch_end", [True, False], ids=["epoch-end", "val-end"])
def test_resume_with_a_monitored_validation_metric(
    tmp_path: Path, at_train_epoch_end: bool
) -> None:
    """Logged metrics are not in checkpoints: a checkpoint written at validation end
    (before the epoch's feed) resumes without that epoch's value, with a warning."""
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(folder: str, epochs: int, ckpt_path: str | None = None) -> tuple[Any, EveCallback]:
        model = with_validation(pl)
        callback = EveCallback(interval="epoch", monitor="val_loss")
        saver = ModelCheckpoint(
            dirpath=tmp_path / folder, save_top_k=-1, save_on_train_epoch_end=at_train_epoch_end
        )
        fit = trainer(
            pl, [callback, saver], max_epochs=epochs, enable_checkpointing=True, limit_val_batches=1
        )
        fit.fit(model, data(), data(batches=1, seed=1), ckpt_path=ckpt_path)
        return model, callback

    whole, _ = run("whole", 3)
    first, _ = run("part", 1)
    checkpoint = str(tmp_path / "part" / "epoch=0-step=6.ckpt")
    if at_train_epoch_end:
        rest, callback = run("rest", 3, checkpoint)
        assert first.lrs + rest.lrs == whole.lrs
        assert callback.schedulers[0].state.t == 3
    else:
        with pytest.warns(RuntimeWarning, match="epoch 0's 'val_loss' is not fed"):
            rest, callback = run("rest", 3, checkpoint)
        assert callback.schedulers[0].state.t == 2
        assert rest.lrs[:6] == [LR * 0.5] * 6  # epoch 0's value was lost: still factor_0


@pytest.mark.parametrize(
    "validation",
    [{"check_val_every_n_epoch": 2}, {"check_val_every_n_epoch": None, "val_check_interval": 8}],
    ids=["every-2-epochs", "every-8-steps"],
)
def test_resume_in_an_epoch_without_validation_warns_of_nothing(
    tmp_path: Path, validation: dict[str, Any]
) -> None:
    """Epoch 0 has no ``val_loss`` to lose (validation first runs in epoch 1)."""
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(folder: str, ckpt_path: str | None, **options: Any) -> tuple[Any, EveCallback]:
        model = with_validation(pl)
        callback = EveCallback(interval="epoch", monitor="val_loss")
        saver = ModelCheckpoint(dirpath=tmp_path / folder, every_n_train_steps=3, save_top_k=-1)
        settings = {"limit_val_batches": 1, **validation, **options}
        fit = trainer(pl, [callback, saver], enable_checkpointing=True, **settings)
        fit.fit(model, data(), data(batches=1, seed=1), ckpt_path=ckpt_path)
        return model, callback

    whole, _ = run("whole", None, max_epochs=3)
    first, _ = run("part", None, max_steps=3)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="EveCallback")
        rest, callback = run("rest", str(tmp_path / "part" / "epoch=0-step=3.ckpt"), max_epochs=3)
    assert callback.schedulers[0].state.t == len(whole.val_losses) >= 1
    assert first.lrs + rest.lrs == whole.lrs


@pytest.mark.parametrize("monitor", ["val_loss", "score"])
def test_a_resume_by_steps_from_an_epoch_end_checkpoint_feeds_that_epoch_once(
    tmp_path: Path, monitor: str
) -> None:
    """With ``max_steps``, Lightning runs the end of the checkpoint's epoch again on
    resume; its value (fed before the checkpoint) is not fed again, and nothing warns."""
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    base = type(with_validation(pl))

    class Scored(base):
        def on_train_epoch_end(self) -> None:
            self.log("score", 10.0 - self.current_epoch)

    def run(folder: str, ckpt_path: str | None) -> tuple[Any, EveCallback]:
        model = Scored()
        callback = EveCallback(interval="epoch", monitor=monitor)
        saver = ModelCheckpoint(
            dirpath=tmp_path / folder, save_top_k=-1, save_on_train_epoch_end=True
        )
        fit = trainer(
            pl,
            [callback, saver],
            max_epochs=-1,
            max_steps=18,
            limit_val_batches=1,
            enable_checkpointing=True,
        )
        fit.fit(model, data(), data(batches=1, seed=1), ckpt_path=ckpt_path)
        return model, callback

    whole, _ = run("whole", None)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="EveCallback")
        rest, callback = run("rest", str(tmp_path / "whole" / "epoch=0-step=6.ckpt"))
    assert callback.schedulers[0].state.t == 3
    assert rest.lrs == whole.lrs[6:]


def scored_with_validation(pl: Any) -> Any:
    """``with_validation`` that also logs ``score`` (10, 9, 8, ...) at each epoch's end."""
    base = type(with_validation(pl))

    class Scored(base):
        def on_train_epoch_end(self) -> None:
            self.log("score", 10.0 - self.current_epoch)

    return Scored()


@pytest.mark.parametrize("written_at", ["validation-end", "last-batch"])
def test_resume_feeds_an_epoch_end_metric_unless_lightning_skips_the_epoch_end(
    tmp_path: Path, written_at: str
) -> None:
    """A checkpoint at validation end resumes with the epoch's end still to run: its
    ``score`` is fed. One at the epoch's last batch resumes in the next epoch: Lightning
    never runs that end, and the callback warns that its value is not fed."""
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(folder: str, ckpt_path: str | None = None) -> EveCallback:
        callback = EveCallback(interval="epoch", monitor="score")
        if written_at == "validation-end":
            saver = ModelCheckpoint(tmp_path / folder, save_top_k=-1, save_on_train_epoch_end=False)
        else:
            saver = ModelCheckpoint(tmp_path / folder, save_top_k=-1, every_n_train_steps=6)
        fit = trainer(
            pl, [callback, saver], max_epochs=3, limit_val_batches=1, enable_checkpointing=True
        )
        fit.fit(scored_with_validation(pl), data(), data(batches=1, seed=1), ckpt_path=ckpt_path)
        return callback

    assert run("whole").schedulers[0].state.t == 3
    checkpoint = str(tmp_path / "whole" / "epoch=0-step=6.ckpt")
    if written_at == "validation-end":
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="EveCallback")
            resumed = run("rest", checkpoint)
        assert resumed.schedulers[0].state.t == 3
    else:
        with pytest.warns(RuntimeWarning, match="epoch 0's 'score', if that epoch logged it, is"):
            resumed = run("rest", checkpoint)
        assert resumed.schedulers[0].state.t == 2


def test_a_run_that_max_steps_stopped_mid_epoch_and_a_resume_extends_feeds_every_epoch(
    tmp_path: Path,
) -> None:
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(folder: str, max_steps: int, ckpt_path: str | None = None) -> EveCallback:
        callback = EveCallback(interval="epoch", monitor="val_loss")
        saver = ModelCheckpoint(tmp_path / folder, save_last=True)
        fit = trainer(
            pl,
            [callback, saver],
            max_epochs=-1,
            max_steps=max_steps,
            limit_val_batches=1,
            enable_checkpointing=True,
        )
        fit.fit(with_validation(pl), data(), data(batches=1, seed=1), ckpt_path=ckpt_path)
        return callback

    assert run("whole", 18).schedulers[0].state.t == 3
    assert run("part", 9).schedulers[0].state.t == 1  # epoch 1 stopped after 3 of 6 batches
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="EveCallback")
        extended = run("part", 18, str(tmp_path / "part" / "last.ckpt"))
    assert extended.schedulers[0].state.t == 3


def test_a_validation_after_fit_is_not_taken_for_the_epochs(tmp_path: Path) -> None:
    """``trainer.validate()`` after ``fit``, then a checkpoint: resuming warns of nothing."""
    pl = importlib.import_module("lightning.pytorch")
    model = with_validation(pl)
    options = {"limit_val_batches": 1, "check_val_every_n_epoch": 2}
    fit = trainer(pl, [EveCallback(interval="epoch", monitor="val_loss")], max_epochs=2, **options)
    fit.fit(model, data(), data(batches=1, seed=1))
    fit.validate(model, data(batches=1, seed=1), verbose=False)
    fit.save_checkpoint(tmp_path / "final.ckpt")

    callback = EveCallback(interval="epoch", monitor="val_loss")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="EveCallback")
        resumed = trainer(pl, [callback], max_epochs=3, **options)
        checkpoint = str(tmp_path / "final.ckpt")
        resumed.fit(with_validation(pl), data(), data(batches=1, seed=1), ckpt_path=checkpoint)
    assert callback.schedulers[0].state.t == 1  # epoch 1's; epoch 2 does not validate


def test_resume_keeps_an_lr_change_made_after_the_last_batch_of_the_epoch(
    tmp_path: Path,
) -> None:
    """The module halves the LR in on_train_epoch_end, before the checkpoint is written:
    the checkpoint holds the halved LR, and the callback state must agree."""
    pl = importlib.import_module("lightning.pytorch")
    from lightning.pytorch.callbacks import ModelCheckpoint

    base = type(regressor(pl))

    class HalvesEachEpoch(base):
        def on_train_epoch_end(self) -> None:
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] *= 0.5

    def run(folder: str, epochs: int, ckpt_path: str | None = None) -> Any:
        model = HalvesEachEpoch()
        saver = ModelCheckpoint(dirpath=tmp_path / folder, save_top_k=-1)
        fit = trainer(pl, [EveCallback(), saver], max_epochs=epochs, enable_checkpointing=True)
        fit.fit(model, data(), ckpt_path=ckpt_path)
        return model

    whole = run("whole", 3)
    first = run("part", 1)
    rest = run("rest", 3, str(tmp_path / "part" / "epoch=0-step=6.ckpt"))
    assert first.lrs + rest.lrs == whole.lrs
    unscaled = [LR * 0.5 ** (t // 6) for t in range(18)]
    assert whole.lrs == pytest.approx(expected_lrs(unscaled, whole.losses), rel=1e-12, abs=0)


def test_resume_mid_epoch_loses_no_feedback_state(tmp_path: Path) -> None:
    """Saved after step 4 of 6: the restored state is the saved one, exactly.

    Lightning then runs the remaining 2 steps of the epoch, on batches drawn from
    the start of a (non-resumable) DataLoader, so the losses, and from there the
    LRs, differ from an uninterrupted run; the first LR after the resume does not.
    """
    pl = importlib.import_module("lightning.pytorch")
    whole, _ = fit_with_checkpoints(pl, tmp_path / "whole", max_epochs=2, every_n_train_steps=4)
    checkpoint = tmp_path / "whole" / "epoch=0-step=4.ckpt"
    saved = torch.load(checkpoint, weights_only=True)["callbacks"]
    (saved_state,) = [v for k, v in saved.items() if k.startswith("EveCallback")]

    restored: list[dict[str, Any]] = []
    pl_callback = importlib.import_module("lightning.pytorch").Callback

    class Snapshot(pl_callback):
        def on_train_start(self, trainer: Any, module: Any) -> None:
            (eve,) = [c for c in trainer.callbacks if isinstance(c, EveCallback)]
            restored.append(eve.state_dict())

    from lightning.pytorch.callbacks import ModelCheckpoint

    model = regressor(pl, schedule=warmup_then_cosine)
    fit = trainer(
        pl,
        [EveCallback(), Snapshot(), ModelCheckpoint(dirpath=tmp_path / "rest")],
        max_epochs=2,
        enable_checkpointing=True,
    )
    fit.fit(model, data(), ckpt_path=str(checkpoint))
    assert restored == [saved_state]
    assert model.lrs[0] == whole.lrs[4]
    assert len(model.lrs) == 2 + 6
    assert model.batches[:2] == whole.batches[:2] != whole.batches[4:6]  # replayed from the start


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_resume_mid_epoch_with_a_stateful_data_loader_repeats_the_uninterrupted_run(
    tmp_path: Path, interval: str
) -> None:
    """Saved after step 4 of 6: Lightning resumes a data loader that has a
    ``state_dict`` (torchdata's ``StatefulDataLoader``) at batch 5, so with the
    feedback state restored the rest of the run is the uninterrupted one, exactly."""
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    pl = importlib.import_module("lightning.pytorch")

    def loader() -> Any:
        return stateful.StatefulDataLoader(data().dataset, batch_size=16)

    common: dict[str, Any] = {"max_epochs": 2, "interval": interval, "loader": loader}
    whole, _ = fit_with_checkpoints(pl, tmp_path / "whole", every_n_train_steps=4, **common)
    checkpoint = str(tmp_path / "whole" / "epoch=0-step=4.ckpt")
    rest, _ = fit_with_checkpoints(pl, tmp_path / "rest", ckpt_path=checkpoint, **common)
    assert rest.batches == whole.batches[4:]  # resumed at batch 5, not replayed
    assert rest.losses == whole.losses[4:]
    assert rest.lrs == whole.lrs[4:]
    assert len(rest.lrs) == 2 + 6


def test_state_dict_is_plain_data(tmp_path: Path) -> None:
    pl = importlib.import_module("lightning.pytorch")
    callback = EveCallback(interval="epoch")
    trainer(pl, [callback], max_epochs=1, limit_train_batches=3).fit(regressor(pl), data())
    path = tmp_path / "state.pt"
    torch.save(callback.state_dict(), path)
    assert torch.load(path, weights_only=True) == callback.state_dict()


def test_a_state_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version 99"):
        EveCallback().load_state_dict({"version": 99, "optimizers": []})


# -- construction errors and the optional extra -------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"interval": "batch"}, ValueError, r"interval must be one of \['step', 'epoch'\]"),
        ({"optimizer_idx": -1}, ValueError, r"optimizer_idx must be an integer in \[0, inf\)"),
        ({"log_metrics": "false"}, TypeError, "log_metrics must be True or False"),
        ({"strict": "false"}, TypeError, "strict must be True or False, got strict='false'"),
        ({"min_lr": "1e-4"}, ValueError, r"min_lr must be a real number in \[0, inf\)"),
        ({"rule": "adam"}, ValueError, "rule must be one of"),
        ({"rule": SeedRule(), "beta": 0.95}, ValueError, "the rule object holds its hyper"),
        ({"beta": 1.5}, ValueError, r"beta must be in \[0, 1\)"),
        ({"c": 10.0}, ValueError, "unknown hyper-parameter"),
        ({"min_lr": -1.0}, ValueError, "min_lr must be in"),
        ({"schedule": None}, TypeError, "return the schedule from configure_optimizers"),
    ],
)
def test_bad_options_fail_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        EveCallback(**options)


def test_an_optimizer_index_out_of_range_says_how_many_there_are() -> None:
    pl = importlib.import_module("lightning.pytorch")
    with pytest.raises(ValueError, match=r"optimizer_idx=1\) but the module has 1 optimizer"):
        trainer(pl, [EveCallback(optimizer_idx=1)], max_epochs=1).fit(regressor(pl), data())


def test_without_lightning_the_error_names_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ["lightning", "lightning.pytorch", "pytorch_lightning"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "eve_scheduler.lightning")
    with pytest.raises(ImportError, match=r'pip install "eve-scheduler\[lightning\]"'):
        importlib.import_module("eve_scheduler.lightning")


@pytest.mark.parametrize("namespace", ["lightning.pytorch", "pytorch_lightning"])
def test_a_lightning_older_than_2_5_is_refused_with_the_upgrade_line(
    namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if namespace == "pytorch_lightning":  # the namespace used when lightning is not installed
        monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.setattr(importlib.import_module(namespace), "__version__", "2.4.0")
    monkeypatch.delitem(sys.modules, "eve_scheduler.lightning")
    package = {"lightning.pytorch": "lightning", "pytorch_lightning": "pytorch-lightning"}
    expected = (
        f"EveCallback needs Lightning >= 2.5, this is {package[namespace]} 2.4.0. "
        f'Upgrade it with: pip install -U "{package[namespace]}>=2.5"'
    )
    with pytest.raises(ImportError, match=re.escape(expected)):
        importlib.import_module("eve_scheduler.lightning")


# -- capturable=True (and fused=True): the feedback on the device, through the callback


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_capturable_feedback_gives_the_lrs_of_the_default_path(
    namespace: str, tmp_path: Path
) -> None:
    pl = importlib.import_module(namespace)
    base = type(regressor(pl, schedule=warmup_then_cosine))

    class TensorLR(base):  # type: ignore[valid-type, misc]
        def configure_optimizers(self) -> Any:
            optimizer = SGD(self.parameters(), lr=torch.tensor(LR))
            return {"optimizer": optimizer, "lr_scheduler": warmup_then_cosine(optimizer)}

        def _record_lr(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
            self.lrs.append(optimizer.param_groups[0]["lr"].clone())  # a tensor, updated in place

    kinds: dict[str, dict[str, bool]] = {"default": {}, "capturable": {"capturable": True}}
    if fused_supported():  # torch >= 2.6
        kinds["fused"] = {"capturable": True, "fused": True}
    runs = {}
    for kind, options in kinds.items():
        model = TensorLR()
        callback = EveCallback(**options)
        logger = pl.loggers.CSVLogger(tmp_path, name=kind)
        trainer(pl, [callback], logger=logger, log_every_n_steps=1).fit(model, data())
        runs[kind] = (model, callback)

    host = runs["default"][0]
    for kind in [kind for kind in runs if kind != "default"]:
        device, callback = runs[kind]
        assert isinstance(callback.schedulers[0].factor, Tensor)  # the device path ran
        assert callback.schedulers[0].fused == (kind == "fused")
        assert len(device.lrs) == 12
        assert all(torch.equal(a, b) for a, b in zip(device.lrs, host.lrs, strict=True)), kind
        assert device.losses == host.losses
    callback = runs["capturable"][1]
    with open(next(tmp_path.glob("capturable/*/metrics.csv"))) as file:
        metrics = list(csv.DictReader(file))
    factors = [float(row["feedback/factor"]) for row in metrics if row.get("feedback/factor")]
    assert len(factors) == 12
    assert factors[-1] == pytest.approx(float(callback.schedulers[0].factor), rel=1e-12)
