"""LossFeedbackScheduler(opt, schedule=other): the LR used is other's LR times the factor, exactly.

For each schedule, the reference LRs come from the same schedule built on a separate,
identical optimizer and stepped alone; the factors come from ``tests/reference.py``.
The LR actually used is recorded by an optimizer step pre-hook, inside
``optimizer.step()``, and must equal ``other_lr(t) * factor_t`` bit for bit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import pytest
import torch
from reference import factors_before_each_loss
from torch.optim import SGD, Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    SequentialLR,
)

from eve_scheduler import LossFeedbackScheduler, SkippedLossWarning

torch.set_num_threads(1)

STEPS = 200
BASE_LRS = (0.1, 0.03)  # two param groups: the weight and the bias of the model
SKIP_AT = 77  # the step whose loss is replaced by NaN in the "skip" cases


def warmup_cosine(opt: Optimizer) -> LRScheduler:
    warmup = LinearLR(opt, start_factor=0.1, total_iters=20)
    cosine = CosineAnnealingLR(opt, T_max=STEPS - 20)
    return SequentialLR(opt, [warmup, cosine], milestones=[20])


def lambda_lr(opt: Optimizer) -> LRScheduler:
    return LambdaLR(opt, [lambda t: 1 / (1 + 0.05 * t), lambda t: 0.99**t])


def one_cycle(opt: Optimizer) -> LRScheduler:
    return OneCycleLR(opt, max_lr=[0.2, 0.05], total_steps=STEPS)


def cosine_restarts(opt: Optimizer) -> LRScheduler:
    # the recursive (chainable) form, over several periods, with eta_min > 0
    return CosineAnnealingLR(opt, T_max=30, eta_min=1e-3)


SCHEDULES = {
    "warmup_cosine": warmup_cosine,
    "lambda": lambda_lr,
    "one_cycle": one_cycle,
    "cosine": cosine_restarts,
}


def _optimizer(model: torch.nn.Linear) -> SGD:
    weight, bias = BASE_LRS
    return SGD(
        [{"params": [model.weight], "lr": weight}, {"params": [model.bias], "lr": bias}],
        momentum=0.9,
    )


def schedule_alone(make: Callable[[Optimizer], LRScheduler]) -> list[list[float]]:
    """The LRs of each optimizer step under the schedule alone, on an identical optimizer."""
    opt = _optimizer(torch.nn.Linear(3, 1))
    schedule = make(opt)
    used = []
    for _ in range(STEPS):
        used.append([group["lr"] for group in opt.param_groups])
        opt.step()  # no gradients: parameters stay, but the step is counted
        schedule.step()
    return used


def train_with_feedback(
    make: Callable[[Optimizer], LRScheduler], rule: str, skip: bool
) -> tuple[list[float], list[list[float]], list[list[float]]]:
    """Train a tiny regression model; return the losses fed, the LRs used, the LRs shown."""
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    model = torch.nn.Linear(3, 1)
    opt = _optimizer(model)
    scheduler = LossFeedbackScheduler(opt, rule, schedule=make(opt))
    used: list[list[float]] = []
    opt.register_step_pre_hook(
        lambda o, args, kwargs: used.append([group["lr"] for group in o.param_groups])
    )
    fed, shown = [], []
    for t in range(STEPS):
        rows = slice((t * 16) % 64, (t * 16) % 64 + 16)
        loss = torch.nn.functional.mse_loss(model(x[rows]).squeeze(1), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = math.nan if skip and t == SKIP_AT else loss
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedLossWarning)
            scheduler.step(value)
        fed.append(math.nan if value is not loss else loss.item())
        shown.append([group["lr"] for group in opt.param_groups])
        assert scheduler.get_last_lr() == shown[-1]
    assert scheduler.skipped == int(skip)
    return fed, used, shown


@pytest.mark.parametrize("skip", [False, True], ids=["clean", "skip"])
@pytest.mark.parametrize("rule", ["seed", "eve"])
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_lr_used_is_the_schedule_lr_times_the_factor(name: str, rule: str, skip: bool) -> None:
    make = SCHEDULES[name]
    alone = schedule_alone(make)
    fed, used, shown = train_with_feedback(make, rule, skip)
    factor = factors_before_each_loss(fed, rule)
    expected = [[lr * factor[t] for lr in alone[t]] for t in range(STEPS)]
    for t in range(STEPS):
        assert used[t] == expected[t], f"step {t}: used {used[t]}, expected {expected[t]}"
    # the LR the param groups show after each step is the LR the next step uses
    assert shown[:-1] == used[1:]
    # and the test can fail: the schedule moved and the factor moved
    assert len({lr[0] for lr in alone}) > 10
    assert len(set(factor)) > 10
    assert any(used[t] != alone[t] for t in range(STEPS))


def test_schedule_lrs_are_not_the_configured_lrs() -> None:
    # guard against a vacuous reference: each schedule really changes the LR
    for make in SCHEDULES.values():
        alone = schedule_alone(make)
        assert alone[0] != list(BASE_LRS) or alone[-1] != list(BASE_LRS)


@pytest.mark.parametrize("where", ["before", "inside unscaled()"])
def test_a_schedule_stepped_by_hand_is_built_before_or_inside_unscaled(where: str) -> None:
    # A torch schedule takes the LR it finds as its base (initial_lr): built after the
    # feedback scheduler, outside unscaled(), it would take the scaled LR (0.5 x for seed).
    opt = _optimizer(torch.nn.Linear(3, 1))
    if where == "before":
        schedule = lambda_lr(opt)
        scheduler = LossFeedbackScheduler(opt)
    else:
        scheduler = LossFeedbackScheduler(opt)
        with scheduler.unscaled():
            schedule = lambda_lr(opt)
    alone = schedule_alone(lambda_lr)
    losses = [2.0, 1.0, 1.5, 0.2, 0.21, 0.3]
    factor = factors_before_each_loss(losses)
    for t, loss in enumerate(losses):
        assert [group["lr"] for group in opt.param_groups] == [lr * factor[t] for lr in alone[t]]
        opt.step()
        with scheduler.unscaled():
            schedule.step()
        scheduler.step(loss)


def test_a_scheduler_that_steps_it_without_a_loss_gets_an_error_naming_schedule() -> None:
    opt = _optimizer(torch.nn.Linear(3, 1))
    feedback = LossFeedbackScheduler(opt)
    cosine = CosineAnnealingLR(opt, T_max=10)
    with pytest.raises(TypeError, match="give the other schedule to it as schedule="):
        SequentialLR(opt, [feedback, cosine], milestones=[5])  # steps its first at once


def test_unscaled_context_steps_a_schedule_by_hand() -> None:
    # stepping another schedule by hand inside `unscaled()` composes the same way
    opt = _optimizer(torch.nn.Linear(3, 1))
    schedule = lambda_lr(opt)
    scheduler = LossFeedbackScheduler(opt, "eve")
    alone = schedule_alone(lambda_lr)
    losses = [2.0, 1.0, 1.5, 0.2, 0.21, 0.3]
    factor = factors_before_each_loss(losses, "eve")
    for t, loss in enumerate(losses):
        assert [group["lr"] for group in opt.param_groups] == [lr * factor[t] for lr in alone[t]]
        opt.step()
        with scheduler.unscaled():
            assert [group["lr"] for group in opt.param_groups] == alone[t]
            schedule.step()
        scheduler.step(loss)
