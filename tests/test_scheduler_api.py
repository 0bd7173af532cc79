"""LossFeedbackScheduler: the torch scheduler API, loss types, param groups, bad input."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import factors
from torch.optim.lr_scheduler import LRScheduler

from eve_scheduler import (
    BadLossError,
    EveRule,
    LossFeedbackScheduler,
    SeedRule,
    SkippedLossWarning,
    TrendRule,
)

torch.set_num_threads(1)


def sgd(*lrs: float | torch.Tensor) -> torch.optim.SGD:
    """An SGD optimizer with one param group per LR, each holding one small tensor."""
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=1.0)


def lrs(optimizer: Any) -> list[Any]:
    return [group["lr"] for group in optimizer.param_groups]


# -- the torch scheduler API -----------------------------------------------------------


def test_is_a_torch_lr_scheduler_with_its_attributes() -> None:
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt)
    assert isinstance(scheduler, LRScheduler)
    assert scheduler.optimizer is opt
    assert scheduler.last_epoch == 0
    # seed: factor_0 = sigmoid(0) = 0.5 before any loss, so the first step uses 0.05
    assert scheduler.factor == 0.5
    assert scheduler.get_last_lr() == [0.05] == lrs(opt)
    losses = [4.0, 2.0, 1.0, 1.5]
    for t, loss in enumerate(losses, start=1):
        scheduler.step(loss)
        assert scheduler.last_epoch == t
        assert scheduler.get_last_lr() == lrs(opt) == [0.1 * factors(losses[:t])[-1]]
    assert scheduler.skipped == 0


def test_eve_starts_at_the_base_lr() -> None:
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt, "eve")
    assert scheduler.get_last_lr() == [0.1]
    for loss in [10.0, 5.0, 4.9, 100.0]:
        scheduler.step(loss)
    # dtilde = 1.0081009 after these losses (hand-worked in test_core_rules)
    assert lrs(opt)[0] == pytest.approx(0.1 / 1.0081009, rel=1e-12)


def test_step_needs_the_loss_and_takes_no_epoch() -> None:
    scheduler = LossFeedbackScheduler(sgd(0.1))
    with pytest.raises(TypeError, match=r"needs the loss: call scheduler\.step\(loss\)"):
        scheduler.step()
    with pytest.raises(TypeError, match="no epoch"):
        scheduler.step(1.0, epoch=3)  # type: ignore[arg-type]
    assert scheduler.last_epoch == 0


def test_several_param_groups_with_different_lrs() -> None:
    opt = sgd(0.1, 0.01, 1.0)
    scheduler = LossFeedbackScheduler(opt, "eve", c=3.0, beta3=0.5)
    losses = [2.0, 1.0, 1.2, 0.3, 0.31]
    for t, loss in enumerate(losses, start=1):
        scheduler.step(loss)
        factor = factors(losses[:t], "eve", c=3.0, beta3=0.5)[-1]
        assert lrs(opt) == [0.1 * factor, 0.01 * factor, 1.0 * factor]
        assert scheduler.get_last_lr() == lrs(opt)


def test_add_param_group_after_construction() -> None:
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt, min_lr=1e-4)
    losses = [4.0, 2.0, 1.0, 0.9]
    scheduler.step(losses[0])
    scheduler.step(losses[1])
    opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "lr": 0.3})
    # the new group's 0.3 is its unscaled LR; the scheduler scales it from its next step
    for t in [3, 4]:
        scheduler.step(losses[t - 1])
        factor = factors(losses[:t])[-1]
        assert lrs(opt) == [0.1 * factor, 0.3 * factor]
        assert scheduler.get_last_lr() == lrs(opt)
    assert scheduler.min_lrs == [1e-4, 1e-4]  # a scalar min_lr applies to new groups too


@pytest.mark.parametrize("capturable", [False, True], ids=["float-path", "capturable"])
def test_a_group_added_with_the_default_lr_tensor_takes_its_owners_unscaled_lr(
    capturable: bool,
) -> None:
    # torch gives a group added without "lr" the optimizer's default LR object, which
    # is group 0's LR tensor, already scaled: it must not become the new unscaled LR
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=torch.tensor(0.1))
    scheduler = LossFeedbackScheduler(opt, capturable=capturable)
    losses = [4.0, 2.0, 1.0, 1.0, 1.0]
    for loss in losses[:3]:
        scheduler.step(torch.tensor(loss))
    opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)]})
    assert opt.param_groups[1]["lr"] is opt.param_groups[0]["lr"]
    for t in [4, 5]:
        scheduler.step(torch.tensor(losses[t - 1]))
        expected = torch.tensor(0.1) * factors(losses[:t])[-1]
        assert [float(lr) for lr in lrs(opt)] == pytest.approx([float(expected)] * 2, rel=1e-6)
    assert [float(lr) for lr in scheduler.unscaled_lrs] == pytest.approx([0.1, 0.1])


def test_groups_that_hold_one_lr_tensor_cannot_have_different_min_lr() -> None:
    lr = torch.tensor(0.1)
    groups = [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(2)]
    opt = torch.optim.SGD(groups, lr=lr)  # both groups hold `lr` itself
    with pytest.raises(ValueError, match="param groups 0 and 1 hold the same LR tensor"):
        LossFeedbackScheduler(opt, min_lr=[0.0, 0.08])
    scheduler = LossFeedbackScheduler(opt, min_lr=[0.08, 0.08])  # one LR, one min_lr: fine
    scheduler.step(2.0)
    assert float(lr) == pytest.approx(0.08)  # max(0.1 * 0.5, 0.08), in float32
    assert [float(x) for x in scheduler.get_last_lr()] == [float(lr)] * 2


def test_a_group_added_inside_unscaled_is_adopted_with_its_lr_as_unscaled() -> None:
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt, min_lr=[0.0])
    scheduler.step(4.0)
    with scheduler.unscaled():
        opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 0.5})
    assert scheduler.unscaled_lrs == [0.1, 0.5] and scheduler.min_lrs == [0.0, 0.0]
    scheduler.step(2.0)
    assert lrs(opt) == [0.1 * scheduler.factor, 0.5 * scheduler.factor]


@pytest.mark.parametrize(
    ("lr", "what"),
    [(torch.tensor(1), "dtype torch.int64"), (torch.tensor([0.1, 0.2]), "shape (2,)")],
    ids=["integer", "two-elements"],
)
def test_an_lr_tensor_that_is_not_one_float_is_refused(lr: torch.Tensor, what: str) -> None:
    holder = type("Holder", (), {"param_groups": [{"lr": lr}]})()
    with pytest.raises(TypeError, match=f"one-element floating-point tensor.*{re.escape(what)}"):
        LossFeedbackScheduler(holder)


def test_a_callable_that_builds_the_schedule_is_called_with_the_optimizer() -> None:
    opt = sgd(0.1)
    make_cosine = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=10)
    scheduler = LossFeedbackScheduler(opt, "eve", schedule=make_cosine)
    assert isinstance(scheduler.schedule, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert scheduler.schedule.optimizer is opt
    opt.step()
    scheduler.step(1.0)
    assert lrs(opt) == [pytest.approx(0.1 * (1 + math.cos(math.pi / 10)) / 2)]  # eve: 1 at t=1


def test_a_scheduler_class_builds_the_schedule_with_its_defaults() -> None:
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt, "eve", schedule=torch.optim.lr_scheduler.ConstantLR)
    assert isinstance(scheduler.schedule, torch.optim.lr_scheduler.ConstantLR)
    assert scheduler.schedule.optimizer is opt
    assert lrs(opt) == [pytest.approx(0.1 / 3)]  # ConstantLR: factor 1/3 for 5 steps
    for _ in range(5):
        opt.step()
        scheduler.step(1.0)
    assert scheduler.unscaled_lrs == [pytest.approx(0.1)]
    with pytest.raises(ValueError, match="ReduceLROnPlateau needs a metric"):
        LossFeedbackScheduler(sgd(0.1), schedule=torch.optim.lr_scheduler.ReduceLROnPlateau)


@pytest.mark.parametrize(
    "schedule",
    [object(), 0.5, lambda opt: None, lambda opt: torch.optim.lr_scheduler.ConstantLR],
    ids=["object", "number", "builder-of-none", "builder-of-a-class"],
)
def test_a_schedule_that_is_no_scheduler_is_refused_at_construction(schedule: Any) -> None:
    with pytest.raises(TypeError, match="schedule must be an LR scheduler built on this optimizer"):
        LossFeedbackScheduler(sgd(0.1), schedule=schedule)


@pytest.mark.parametrize(
    "options", [{"beta": 1.5}, {"lag": -1}, {"min_lr": -1.0}, {"fused": True}, {"strict": 1}]
)
def test_a_refused_argument_leaves_the_optimizer_as_it_was(options: dict[str, Any]) -> None:
    # the schedule is built only once every other argument is checked: building it
    # changes the LRs (a warm-up starts low), and a corrected retry would compound that
    opt = sgd(0.1)
    warmup = functools.partial(torch.optim.lr_scheduler.LinearLR, start_factor=0.1)
    with pytest.raises((ValueError, TypeError)):
        LossFeedbackScheduler(opt, "eve", schedule=warmup, **options)
    assert lrs(opt) == [0.1] and "initial_lr" not in opt.param_groups[0]
    scheduler = LossFeedbackScheduler(opt, "eve", schedule=warmup)
    for _ in range(5):
        opt.step()
        scheduler.step(1.0)
    assert scheduler.unscaled_lrs == [pytest.approx(0.1)]  # the warm-up ends at the LR


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"strict": "false"}, TypeError, "strict must be True or False, got strict='false'"),
        ({"capturable": 1}, TypeError, "capturable must be True or False"),
        ({"fused": None}, TypeError, "fused must be True or False"),
        ({"min_lr": "1e-4"}, ValueError, "min_lr must be a real number in [0, inf)"),
        ({"lag": 1.0}, ValueError, "lag must be an integer in [0, inf), got lag=1.0"),
    ],
)
def test_options_of_the_wrong_type_are_refused(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        LossFeedbackScheduler(sgd(0.1), **options)


def test_numpy_options_are_accepted() -> None:
    scheduler = LossFeedbackScheduler(
        sgd(0.1, 0.2), lag=np.int64(1), strict=np.bool_(False), min_lr=np.array([0.0, 0.01])
    )
    assert scheduler.state_dict()["lag"] == 1 and type(scheduler.state_dict()["lag"]) is int
    assert scheduler.min_lrs == [0.0, 0.01] and scheduler.strict is False
    for zero_d in [np.array(0.01), torch.tensor(0.01)]:  # one value, not a list of them
        with pytest.raises(ValueError, match="min_lr must be a real number"):
            LossFeedbackScheduler(sgd(0.1), min_lr=zero_d)


def test_loading_a_state_with_other_settings_says_which_it_replaces() -> None:
    saved = LossFeedbackScheduler(sgd(0.1), beta=0.95, min_lr=1e-4).state_dict()
    scheduler = LossFeedbackScheduler(sgd(0.1), beta=0.5, min_lr=0.009)
    with pytest.warns(UserWarning, match=r"beta=0\.95 \(was 0\.5\), min_lr=\[0\.0001\]"):
        scheduler.load_state_dict(saved)
    assert scheduler.rule.beta == 0.95 and scheduler.min_lrs == [1e-4]  # as torch does
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same settings: no warning
        LossFeedbackScheduler(sgd(0.1), beta=0.95, min_lr=1e-4).load_state_dict(saved)


def test_reduce_on_plateau_as_the_owned_schedule_is_refused() -> None:
    opt = sgd(0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="ReduceLROnPlateau needs a metric"):
        LossFeedbackScheduler(opt, schedule=plateau)


def test_step_load_and_a_nested_block_are_refused_inside_unscaled() -> None:
    # on exit the block takes the groups' LRs as unscaled: a factor written inside it
    # would be applied twice
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt)  # seed: 0.5 before any loss
    saved = scheduler.state_dict()
    with scheduler.unscaled():
        with pytest.raises(RuntimeError, match=r"scheduler.step\(\) inside"):
            scheduler.step(1.0)
        with pytest.raises(RuntimeError, match=r"scheduler.load_state_dict\(\) inside"):
            scheduler.load_state_dict(saved)
        nested = pytest.raises(RuntimeError, match=r"scheduler.unscaled\(\) inside")
        with nested, scheduler.unscaled():
            pass
        assert lrs(opt) == [0.1]
    assert lrs(opt) == [0.05] and scheduler.unscaled_lrs == [0.1]
    assert scheduler.last_epoch == 0
    scheduler.step(1.0)  # the block is closed: usable again
    with scheduler.unscaled():
        pass
    assert scheduler.unscaled_lrs == [0.1]


def test_a_group_lr_set_to_a_kept_unscaled_lr_does_not_compound_the_factor() -> None:
    lr = torch.tensor(0.1)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = LossFeedbackScheduler(opt)  # seed: factor 0.5 before any loss
    with scheduler.unscaled():  # hand the group the very tensor the scheduler keeps
        opt.param_groups[0]["lr"] = scheduler.unscaled_lrs[0]
    losses = [1.0, 1.0, 1.0, 1.0]  # a flat loss keeps seed's factor at 0.5
    for loss in losses:
        scheduler.step(loss)
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.05)
        assert float(scheduler.unscaled_lrs[0]) == pytest.approx(0.1)


def test_lr_tensors_are_updated_in_place_and_reported_as_copies() -> None:
    opt = sgd(torch.tensor(0.1), torch.tensor(0.02, dtype=torch.float64))
    tensors = lrs(opt)
    scheduler = LossFeedbackScheduler(opt)
    losses = [4.0, 2.0, 1.0, 3.0]
    for t, loss in enumerate(losses, start=1):
        scheduler.step(loss)
        assert lrs(opt)[0] is tensors[0] and lrs(opt)[1] is tensors[1]
        factor = factors(losses[:t])[-1]
        assert tensors[0].item() == pytest.approx(0.1 * factor, rel=1e-6)  # float32
        assert tensors[1].item() == pytest.approx(0.02 * factor, rel=1e-14)
    last = scheduler.get_last_lr()
    assert all(isinstance(lr, torch.Tensor) for lr in last)
    assert last[0] is not tensors[0] and last[1] is not tensors[1]
    assert torch.equal(last[0], tensors[0]) and torch.equal(last[1], tensors[1])
    tensors[0].fill_(123.0)  # changing the optimizer's LR does not change the report
    assert last[0].item() != 123.0


def test_lr_tensor_with_a_composed_schedule_keeps_its_identity() -> None:
    opt = sgd(torch.tensor(0.1, dtype=torch.float64))
    tensor = lrs(opt)[0]
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    scheduler = LossFeedbackScheduler(opt, "eve", schedule=cosine)
    for _ in range(5):
        opt.step()
        scheduler.step(1.0)
    assert lrs(opt)[0] is tensor
    # constant loss: d = 0 clips to 1/c, so dtilde_5 = 0.1 + 0.9 * 0.999^4
    cosine_lr = 0.1 * (1 + math.cos(math.pi * 5 / 10)) / 2
    assert tensor.item() == pytest.approx(cosine_lr / (0.1 + 0.9 * 0.999**4), rel=1e-12)


def test_an_object_with_only_param_groups_works() -> None:
    class ParamGroups:
        def __init__(self) -> None:
            self.param_groups = [{"lr": 0.1}, {"lr": 0.2, "other": "kept"}]

    holder = ParamGroups()
    scheduler = LossFeedbackScheduler(holder, "seed")
    for loss in [4.0, 2.0, 1.0]:
        scheduler.step(loss)
    factor = factors([4.0, 2.0, 1.0])[-1]
    assert lrs(holder) == [0.1 * factor, 0.2 * factor]
    assert holder.param_groups[1]["other"] == "kept"


def test_an_object_without_param_groups_is_refused() -> None:
    with pytest.raises(TypeError, match="param_groups"):
        LossFeedbackScheduler(object())


def test_a_schedule_on_another_optimizer_is_refused() -> None:
    other = torch.optim.lr_scheduler.LambdaLR(sgd(0.1), lambda t: 1.0)
    with pytest.raises(ValueError, match="same optimizer"):
        LossFeedbackScheduler(sgd(0.1), schedule=other)


# -- the loss: every kind of real scalar, without a warning -----------------------------


def _tensor_losses() -> list[Any]:
    cases = []
    for dtype in [torch.float16, torch.bfloat16, torch.float32, torch.float64]:
        name = str(dtype).removeprefix("torch.")
        cases.append(pytest.param(lambda v, d=dtype: torch.tensor(v, dtype=d), id=name))
        cases.append(
            pytest.param(
                lambda v, d=dtype: torch.tensor(v, dtype=d, requires_grad=True),
                id=f"{name}-leaf-requires-grad",
            )
        )
        cases.append(
            pytest.param(
                lambda v, d=dtype: (torch.tensor([v, 0.0], dtype=d, requires_grad=True) * 1).sum(),
                id=f"{name}-from-a-graph",
            )
        )
    return cases


LOSS_KINDS = [
    pytest.param(float, id="float"),
    pytest.param(lambda v: int(v * 4), id="int"),  # 6 and 3: the same ratio as 1.5, 0.75
    pytest.param(np.float16, id="np.float16"),
    pytest.param(np.float32, id="np.float32"),
    pytest.param(np.float64, id="np.float64"),
    pytest.param(np.array, id="np.array-0d"),
    pytest.param(lambda v: np.array(v, dtype=np.float32), id="np.array-0d-float32"),
    *_tensor_losses(),
]


@pytest.mark.parametrize("make", LOSS_KINDS)
@pytest.mark.parametrize("rule", ["seed", "eve"])
def test_step_takes_any_real_scalar_without_a_warning(
    make: Callable[[float], Any], rule: str
) -> None:
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt, rule)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for value in [1.5, 0.75, 1.5]:  # exact in float16 and bfloat16
            scheduler.step(make(value))
    expected = factors([1.5, 0.75, 1.5], rule)[-1]
    assert scheduler.factor == expected
    assert lrs(opt) == [0.1 * expected]


NOT_SCALARS = [
    pytest.param(torch.ones(2), ValueError, id="tensor-2"),
    pytest.param(torch.ones(1, 3), ValueError, id="tensor-1x3"),
    pytest.param(torch.ones(0), ValueError, id="tensor-empty"),
    pytest.param(np.ones(2), ValueError, id="array-2"),
    pytest.param(np.ones((2, 2)), ValueError, id="array-2x2"),
    pytest.param([1.0], TypeError, id="list"),
    pytest.param("1.5", TypeError, id="str"),
    pytest.param(None, TypeError, id="None"),
    pytest.param(True, TypeError, id="bool-True"),
    pytest.param(False, TypeError, id="bool-False"),
    pytest.param(torch.tensor(True), TypeError, id="tensor-bool"),
    pytest.param(complex(1, 1), TypeError, id="complex"),
    pytest.param(np.bool_(True), TypeError, id="np.bool_"),
    pytest.param(np.array("1.5"), TypeError, id="np-str-array"),
    pytest.param(10**400, ValueError, id="int-beyond-float"),
]


@pytest.mark.parametrize(("loss", "error"), NOT_SCALARS)
@pytest.mark.parametrize("strict", [False, True])
def test_a_non_scalar_is_an_error_at_once_in_both_modes(
    loss: Any, error: type[Exception], strict: bool
) -> None:
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt, strict=strict)
    scheduler.step(2.0)
    before = scheduler.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error):
            scheduler.step(loss)
    assert scheduler.state_dict() == before
    assert scheduler.skipped == 0


# -- bad losses: skipped with a warning, or an error in strict mode ---------------------

BAD_LOSSES = [
    pytest.param(math.nan, 0.0, "not finite", id="nan"),
    pytest.param(math.inf, 0.0, "not finite", id="+inf"),
    pytest.param(-math.inf, 0.0, "not finite", id="-inf"),
    pytest.param(torch.tensor(math.nan), 0.0, "not finite", id="tensor-nan"),
    pytest.param(np.float32(math.inf), 0.0, "not finite", id="np.float32-inf"),
    pytest.param(0.0, 0.0, "at or below f_star", id="zero"),
    pytest.param(-2.0, 0.0, "at or below f_star", id="negative"),
    pytest.param(-1.0, -1.0, "at or below f_star", id="at-f_star"),
    pytest.param(-1.5, -1.0, "at or below f_star", id="below-f_star"),
]


@pytest.mark.parametrize(("loss", "f_star", "reason"), BAD_LOSSES)
@pytest.mark.parametrize("rule", ["seed", "eve"])
def test_a_bad_loss_is_skipped_with_a_warning(
    loss: Any, f_star: float, reason: str, rule: str
) -> None:
    opt = sgd(0.1, 0.2)
    scheduler = LossFeedbackScheduler(opt, rule, f_star=f_star)
    scheduler.step(4.0)
    scheduler.step(2.0)
    state, factor, lr = scheduler.state, scheduler.factor, lrs(opt)
    with pytest.warns(SkippedLossWarning, match=reason):
        scheduler.step(loss)
    assert (scheduler.state, scheduler.factor, lrs(opt)) == (state, factor, lr)
    assert scheduler.get_last_lr() == lr
    assert scheduler.skipped == 1
    assert scheduler.state_dict()["skipped"] == 1
    assert scheduler.last_epoch == 3  # the step is counted; the loss is not
    with pytest.warns(SkippedLossWarning, match="2 skipped so far"):
        scheduler.step(loss)
    scheduler.step(1.0)  # and the next good loss goes on from the state before the skips
    assert scheduler.factor == factors([4.0, 2.0, 1.0], rule, f_star=f_star)[-1]


@pytest.mark.parametrize(("loss", "f_star", "reason"), BAD_LOSSES)
def test_strict_mode_raises_and_changes_nothing(loss: Any, f_star: float, reason: str) -> None:
    opt = sgd(0.1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    scheduler = LossFeedbackScheduler(opt, schedule=cosine, strict=True, f_star=f_star)
    opt.step()
    scheduler.step(3.0)
    before, lr = scheduler.state_dict(), lrs(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BadLossError, match=f"{reason}.*strict"):
            scheduler.step(loss)
    assert scheduler.state_dict() == before  # the owned schedule did not step either
    assert lrs(opt) == lr
    assert scheduler.skipped == 0
    assert isinstance(BadLossError("x"), ValueError)


def test_strict_mode_with_lag_refuses_the_bad_loss_and_goes_on() -> None:
    # with lag=1 the NaN is read, and refused, at the next step, which queues its own loss
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt, strict=True, lag=1)
    scheduler.step(2.0)
    scheduler.step(math.nan)
    state, lr = scheduler.state, lrs(opt)
    with pytest.raises(BadLossError, match="loss=nan is not finite"):
        scheduler.step(1.0)
    assert (scheduler.state, lrs(opt), scheduler.skipped) == (state, lr, 0)
    assert scheduler.state_dict()["pending_losses"] == [1.0]
    scheduler.step(0.5)  # feeds 1.0, as if the NaN had never been passed
    assert scheduler.factor == factors([2.0, 1.0])[-1]


def test_a_loss_that_would_overflow_the_seed_state_is_skipped_or_refused() -> None:
    # after 2.0, a loss of 1e-300 gives r = 2e300 and (r - d)^2 beyond the float range
    opt = sgd(0.1, 0.2)
    scheduler = LossFeedbackScheduler(opt)
    scheduler.step(4.0)
    scheduler.step(2.0)
    state, factor, lr = scheduler.state, scheduler.factor, lrs(opt)
    with pytest.warns(SkippedLossWarning, match=r"loss=1e-300 would put inf or NaN into"):
        scheduler.step(1e-300)
    assert (scheduler.state, scheduler.factor, lrs(opt), scheduler.skipped) == (
        state,
        factor,
        lr,
        1,
    )
    scheduler.step(1.0)  # compared with 2.0, the last accepted loss
    assert scheduler.factor == factors([4.0, 2.0, 1.0])[-1]

    strict = LossFeedbackScheduler(sgd(0.1), strict=True)
    strict.step(2.0)
    before = strict.state_dict()
    with pytest.raises(BadLossError, match=r"would put inf or NaN.*strict"):
        strict.step(1e-300)
    assert strict.state_dict() == before


@settings(max_examples=40, deadline=None)
@given(
    losses=st.lists(
        st.one_of(
            st.floats(min_value=1e-6, max_value=1e6),
            st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0]),
        ),
        min_size=1,
        max_size=30,
    ),
    rule=st.sampled_from(["seed", "eve"]),
)
def test_skips_through_the_scheduler_leave_state_and_state_dict_unchanged(
    losses: list[float], rule: str
) -> None:
    opt = sgd(0.1)
    scheduler = LossFeedbackScheduler(opt, rule)
    expected = factors(losses, rule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedLossWarning)
        for t, loss in enumerate(losses):
            before = scheduler.state_dict()
            scheduler.step(loss)
            after = scheduler.state_dict()
            if not (math.isfinite(loss) and loss > 0):
                assert after["skipped"] == before["skipped"] + 1
                assert after["last_epoch"] == before["last_epoch"] + 1
                for key in ["skipped", "last_epoch"]:
                    del before[key], after[key]
                assert _same(after, before)
            assert scheduler.factor == expected[t]
            assert lrs(opt) == [0.1 * expected[t]]
    assert scheduler.skipped == sum(not (math.isfinite(x) and x > 0) for x in losses)


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (the state holds prev_loss = NaN before any loss)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


# -- min_lr -------------------------------------------------------------------------------


def test_min_lr_scalar_bounds_every_group() -> None:
    opt = sgd(0.1, 0.01)
    scheduler = LossFeedbackScheduler(opt, min_lr=2e-3)
    losses = [1.05**t for t in range(40)]  # a clean rise drives the seed factor to 0
    for t in range(1, len(losses) + 1):
        scheduler.step(losses[t - 1])
        factor = factors(losses[:t])[-1]
        assert lrs(opt) == [max(0.1 * factor, 2e-3), max(0.01 * factor, 2e-3)]
    assert factors(losses)[-1] < 0.02  # so both bounds were reached
    assert lrs(opt) == [2e-3, 2e-3]


def test_min_lr_per_group() -> None:
    opt = sgd(0.1, 0.01, 0.5)
    scheduler = LossFeedbackScheduler(opt, min_lr=[1e-3, 0.0, 0.4])
    losses = [1.05**t for t in range(40)]
    for t in range(1, len(losses) + 1):
        scheduler.step(losses[t - 1])
        factor = factors(losses[:t])[-1]
        assert lrs(opt) == [max(0.1 * factor, 1e-3), 0.01 * factor, max(0.5 * factor, 0.4)]
    assert lrs(opt)[0] == 1e-3 and lrs(opt)[1] < 1e-4 and lrs(opt)[2] == 0.4


# -- hyper-parameters: checked at construction, with the name, the range and the value ----

BAD_RULE = "rule must be one of ['eve', 'seed', 'trend'] or a SeedRule, EveRule or TrendRule"
BAD_HPARAMS = [
    ("seed", {"beta": 1.0}, "beta must be in [0, 1), got beta=1.0"),
    ("seed", {"beta": -0.1}, "beta must be in [0, 1), got beta=-0.1"),
    ("seed", {"beta": math.nan}, "beta must be in [0, 1), got beta=nan"),
    ("seed", {"beta": "0.9"}, "beta must be a real number in [0, 1), got beta='0.9'"),
    ("seed", {"beta": True}, "beta must be a real number in [0, 1), got beta=True"),
    ("seed", {"gamma": 1.5}, "gamma must be in [0, 1), got gamma=1.5"),
    ("seed", {"gamma": -1}, "gamma must be in [0, 1), got gamma=-1"),
    ("seed", {"k": 0.0}, "k must be in (0, inf), got k=0.0"),
    ("seed", {"k": -2.0}, "k must be in (0, inf), got k=-2.0"),
    ("seed", {"k": math.inf}, "k must be in (0, inf), got k=inf"),
    ("seed", {"eps": 0.0}, "eps must be in (0, inf), got eps=0.0"),
    ("seed", {"eps": math.inf}, "eps must be in (0, inf), got eps=inf"),
    ("seed", {"f_star": math.nan}, "f_star must be in (-inf, inf), got f_star=nan"),
    ("seed", {"f_star": math.inf}, "f_star must be in (-inf, inf), got f_star=inf"),
    ("eve", {"f_star": -math.inf}, "f_star must be in (-inf, inf), got f_star=-inf"),
    ("eve", {"c": 0.5}, "c must be in [1, inf), got c=0.5"),
    ("eve", {"c": math.inf}, "c must be in [1, inf), got c=inf"),
    ("eve", {"c": math.nan}, "c must be in [1, inf), got c=nan"),
    ("eve", {"beta3": 1.0}, "beta3 must be in [0, 1), got beta3=1.0"),
    ("eve", {"beta3": -0.5}, "beta3 must be in [0, 1), got beta3=-0.5"),
    ("seed", {"min_lr": -1e-3}, "min_lr must be in [0, inf), got min_lr=-0.001"),
    ("seed", {"min_lr": math.inf}, "min_lr must be in [0, inf), got min_lr=inf"),
    ("seed", {"min_lr": math.nan}, "min_lr must be in [0, inf), got min_lr=nan"),
    ("eve", {"min_lr": [0.1, -1.0]}, "min_lr must be in [0, inf), got min_lr=-1.0"),
    ("eve", {"min_lr": [0.1]}, "min_lr must have one value per param group (2), got 1"),
    ("seed", {"betaa": 0.9}, "unknown hyper-parameter(s) ['betaa'] for rule 'seed'"),
    ("seed", {"c": 10.0}, "unknown hyper-parameter(s) ['c'] for rule 'seed'"),
    ("eve", {"beta": 0.9}, "unknown hyper-parameter(s) ['beta'] for rule 'eve'"),
    ("adam", {}, f"{BAD_RULE} (not a subclass), got rule='adam'"),
    (["seed"], {}, f"{BAD_RULE} (not a subclass), got rule=['seed']"),
    (SeedRule, {}, f"{BAD_RULE} (not a subclass), got rule=<class "),
    (SeedRule(), {"beta": 0.9}, "the rule object holds its hyper-parameters: got SeedRule("),
    (SeedRule(), {"lagg": 1}, "unknown hyper-parameter(s) ['lagg'] for rule 'seed'; it takes"),
    (EveRule(), {"min_lr": -1.0}, "min_lr must be in [0, inf), got min_lr=-1.0"),
]


@pytest.mark.parametrize(("rule", "hparams", "message"), BAD_HPARAMS)
def test_bad_hyper_parameters_are_refused_at_construction(
    rule: Any, hparams: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LossFeedbackScheduler(sgd(0.1, 0.2), rule, **hparams)


@pytest.mark.parametrize("capturable", [False, True], ids=["floats", "capturable"])
@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("seed", SeedRule(beta=0.95, k=2.0)),
        ("eve", EveRule(c=5.0, f_star=0.1)),
        ("trend", TrendRule(beta_fast=0.9, gain=0.1)),
    ],
)
def test_a_rule_object_is_its_name_with_its_hyper_parameters(
    name: str, rule: Any, capturable: bool
) -> None:
    hparams = {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)}
    by_name = sgd(torch.tensor(0.1)) if capturable else sgd(0.1)
    by_object = sgd(torch.tensor(0.1)) if capturable else sgd(0.1)
    named = LossFeedbackScheduler(by_name, name, capturable=capturable, **hparams)
    built = LossFeedbackScheduler(by_object, rule, capturable=capturable)
    assert built.rule is rule
    for loss in [3.0, 2.5, 2.6, 1.9, 1.2, 1.25, 0.9, 0.8, 0.85, 0.5]:
        named.step(loss)
        built.step(loss)
        assert float(lrs(by_object)[0]) == float(lrs(by_name)[0])
    named_state, built_state = named.state_dict(), built.state_dict()
    assert built_state["rule"] == name and built_state["hparams"] == hparams
    assert built_state.keys() == named_state.keys()


class TunedSeedRule(SeedRule):
    pass


def test_a_rule_object_of_another_class_is_refused() -> None:
    # the device path and checkpoints know the three rules, by their classes and names
    with pytest.raises(ValueError, match=re.escape("(not a subclass), got rule=TunedSeedRule(")):
        LossFeedbackScheduler(sgd(0.1), TunedSeedRule())


def test_boundary_hyper_parameters_are_accepted() -> None:
    opt = sgd(0.1)
    LossFeedbackScheduler(opt, "seed", beta=0.0, gamma=0.0, k=1e-9, eps=1e-300, f_star=-1e300)
    LossFeedbackScheduler(opt, "eve", c=1.0, beta3=0.0, min_lr=0.0)
