"""state_dict / load_state_dict: plain data, and a resumed run equal to an unbroken one."""

from __future__ import annotations

import io
import math
import re
import warnings
from typing import Any

import pytest
import torch
from torch.optim import Adam, Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
)

from eve_scheduler import LossFeedbackScheduler, SkippedLossWarning

torch.set_num_threads(1)

STEPS = 1050
WARMUP = 50
NAN_AT = 400  # in the "nan" cases, the loss of this step is fed as NaN (and skipped)
STOPS = [0, NAN_AT + 1, 777, STEPS - 1]  # checkpoints taken after this many steps

# A fixed synthetic regression: 256 samples, 4 features, batches of 32 in a fixed order.
_GEN = torch.Generator().manual_seed(1234)
X = torch.randn(256, 4, generator=_GEN)
Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256, generator=_GEN)


def _round_trip(obj: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


class Run:
    """A tiny model, its optimizer, and a LossFeedbackScheduler, freshly built."""

    def __init__(self, rule: str, composed: bool) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
        )
        self.opt = Adam(
            [
                {"params": self.model[0].parameters(), "lr": 0.02},
                {"params": self.model[2].parameters(), "lr": 0.005},
            ]
        )
        schedule = warmup_cosine(self.opt) if composed else None
        self.scheduler = LossFeedbackScheduler(self.opt, rule, schedule=schedule)
        self.used: list[list[float]] = []
        self.opt.register_step_pre_hook(
            lambda o, args, kwargs: self.used.append([g["lr"] for g in o.param_groups])
        )

    def train(self, start: int, stop: int, nan: bool) -> None:
        for t in range(start, stop):
            rows = slice((t * 32) % 256, (t * 32) % 256 + 32)
            loss = torch.nn.functional.mse_loss(self.model(X[rows]).squeeze(1), Y[rows])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SkippedLossWarning)
                self.scheduler.step(math.nan if nan and t == NAN_AT else loss)

    def checkpoint(self) -> dict[str, Any]:
        return _round_trip(
            {
                "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }
        )

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.opt.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])


def warmup_cosine(opt: Optimizer) -> LRScheduler:
    warmup = LinearLR(opt, start_factor=0.1, total_iters=WARMUP)
    cosine = CosineAnnealingLR(opt, T_max=STEPS - WARMUP)
    return SequentialLR(opt, [warmup, cosine], milestones=[WARMUP])


@pytest.mark.parametrize("nan", [False, True], ids=["clean", "nan"])
@pytest.mark.parametrize("composed", [False, True], ids=["alone", "warmup_cosine"])
@pytest.mark.parametrize("rule", ["seed", "eve"])
def test_resuming_gives_the_same_lrs_bit_for_bit(rule: str, composed: bool, nan: bool) -> None:
    unbroken = Run(rule, composed)
    checkpoints = {}
    for start, stop in zip([0, *STOPS], [*STOPS, STEPS], strict=True):
        unbroken.train(start, stop, nan)
        if stop in STOPS:
            checkpoints[stop] = unbroken.checkpoint()
    assert len(unbroken.used) == STEPS
    assert unbroken.scheduler.skipped == int(nan)
    assert len({lrs[0] for lrs in unbroken.used}) > 100  # the LR really moved
    final_state = unbroken.scheduler.state_dict()

    for stop, checkpoint in checkpoints.items():
        resumed = Run(rule, composed)  # fresh model, optimizer and schedulers
        resumed.restore(checkpoint)
        resumed.train(stop, STEPS, nan)
        assert resumed.used == unbroken.used[stop:], f"stopped after {stop} steps"
        assert resumed.scheduler.state_dict() == final_state
        for a, b in zip(resumed.model.parameters(), unbroken.model.parameters(), strict=True):
            assert torch.equal(a, b)


def test_resuming_from_a_stale_optimizer_lr_still_writes_the_scheduled_lr() -> None:
    # the scheduler's state alone decides the LR: load it after a fresh optimizer
    unbroken = Run("seed", composed=True)
    unbroken.train(0, 300, nan=False)
    saved = unbroken.scheduler.state_dict()
    resumed = Run("seed", composed=True)
    resumed.scheduler.load_state_dict(_round_trip(saved))
    assert [g["lr"] for g in resumed.opt.param_groups] == unbroken.scheduler.get_last_lr()


def test_state_dict_is_plain_versioned_data() -> None:
    run = Run("seed", composed=False)
    run.train(0, 10, nan=True)
    state = run.scheduler.state_dict()
    assert state["version"] == 1
    assert state["rule"] == "seed"
    assert _only_plain(state)
    assert _round_trip(state) == state


@pytest.mark.parametrize(
    ("rule", "names"),
    [("seed", ("beta", "k")), ("eve", ("beta3", "c")), ("trend", ("beta_slow", "gain"))],
)
def test_state_dict_with_numpy_hyper_parameters_loads_with_weights_only(
    rule: str, names: tuple[str, str]
) -> None:
    np = pytest.importorskip("numpy")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    numpy_hparams = {names[0]: np.float64(0.995), names[1]: np.float32(2.0)}
    scheduler = LossFeedbackScheduler(opt, rule, **numpy_hparams)
    scheduler.step(np.float64(2.0))
    scheduler.step(np.float32(1.0))
    state = scheduler.state_dict()
    assert _only_plain(state)
    assert _round_trip(state) == state


def test_state_before_any_loss_round_trips() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    state = _round_trip(LossFeedbackScheduler(opt, "eve").state_dict())
    other = LossFeedbackScheduler(
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), "eve"
    )
    other.load_state_dict(state)
    assert other.state.t == 0 and math.isnan(other.state.prev_loss)
    other.step(2.0)
    other.step(1.0)
    assert other.factor == 1.0  # d = 1 / 1 = 1: dtilde = 0.999 + 0.001


def test_tensor_lrs_resume_in_place() -> None:
    def build() -> tuple[torch.optim.SGD, LossFeedbackScheduler]:
        opt = torch.optim.SGD(
            [torch.zeros(1, requires_grad=True)], lr=torch.tensor(0.1, dtype=torch.float64)
        )
        return opt, LossFeedbackScheduler(opt, schedule=CosineAnnealingLR(opt, T_max=20))

    opt, scheduler = build()
    losses = [4.0, 2.0, 1.0, 1.5, 0.9, 0.8, 0.85]
    for loss in losses[:4]:
        opt.step()
        scheduler.step(loss)
    checkpoint = _round_trip({"opt": opt.state_dict(), "sched": scheduler.state_dict()})
    resumed_opt, resumed = build()
    resumed_opt.load_state_dict(checkpoint["opt"])
    tensor = resumed_opt.param_groups[0]["lr"]
    resumed.load_state_dict(checkpoint["sched"])
    assert resumed_opt.param_groups[0]["lr"] is tensor
    for loss in losses[4:]:
        for o, s in [(opt, scheduler), (resumed_opt, resumed)]:
            o.step()
            s.step(loss)
        assert torch.equal(resumed_opt.param_groups[0]["lr"], opt.param_groups[0]["lr"])


@pytest.mark.parametrize("lr", [0.1, torch.tensor(0.1)], ids=["float-lr", "tensor-lr"])
def test_a_state_loads_into_an_optimizer_whose_last_group_was_added_later(lr: Any) -> None:
    """The usual resume order: build, add_param_group, load; no step in between."""
    saved = _saved(groups=2)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = LossFeedbackScheduler(opt)
    opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)]})
    scheduler.load_state_dict(saved)
    factor = scheduler.factor
    assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx([0.1 * factor] * 2)
    assert scheduler.state_dict()["unscaled_lrs"] == pytest.approx([0.1, 0.1])


def test_a_state_saved_after_add_param_group_and_before_a_step_loads() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = LossFeedbackScheduler(opt)
    scheduler.step(2.0)
    opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 0.5})
    saved = _round_trip(scheduler.state_dict())  # no step since the group was added
    assert saved["unscaled_lrs"] == [0.1, 0.5]
    resumed_opt = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in [0.1, 0.5]]
    )
    resumed = LossFeedbackScheduler(resumed_opt)
    resumed.load_state_dict(saved)
    for s in [scheduler, resumed]:
        s.step(1.0)
    assert lrs_of(resumed_opt) == lrs_of(opt) == [0.1 * resumed.factor, 0.5 * resumed.factor]


@pytest.mark.parametrize("shape", [(1,), (1, 1)])
def test_one_element_lr_tensors_of_any_shape_resume_in_place(shape: tuple[int, ...]) -> None:
    def build() -> tuple[torch.optim.SGD, LossFeedbackScheduler]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=torch.full(shape, 0.1))
        return opt, LossFeedbackScheduler(opt)

    opt, scheduler = build()
    for loss in [4.0, 2.0]:
        scheduler.step(loss)
    resumed_opt, resumed = build()
    kept = resumed.unscaled_lrs[0]
    resumed.load_state_dict(_round_trip(scheduler.state_dict()))
    assert resumed.unscaled_lrs[0] is kept and kept.shape == shape  # copied into, in place
    for s in [scheduler, resumed]:
        s.step(1.0)
    assert torch.equal(resumed_opt.param_groups[0]["lr"], opt.param_groups[0]["lr"])


def test_a_schedule_saved_with_tensor_lrs_resumes_with_float_lrs() -> None:
    def build(lr: float | torch.Tensor) -> tuple[torch.optim.SGD, LossFeedbackScheduler]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        decay = LambdaLR(opt, lambda t: 1 / (t + 1))  # computes from its base_lrs
        return opt, LossFeedbackScheduler(opt, schedule=decay)

    tensor_opt, tensor_lrs = build(torch.tensor(0.1, dtype=torch.float64))
    float_opt, float_lrs = build(0.1)
    for loss in [4.0, 2.0, 1.5]:
        for opt, scheduler in [(tensor_opt, tensor_lrs), (float_opt, float_lrs)]:
            opt.step()
            scheduler.step(loss)
    saved = _round_trip(tensor_lrs.state_dict())
    assert isinstance(saved["schedule"]["base_lrs"][0], torch.Tensor)
    resumed_opt, resumed = build(0.1)
    resumed.load_state_dict(saved)
    for loss in [1.2, 1.0]:
        for opt, scheduler in [(float_opt, float_lrs), (resumed_opt, resumed)]:
            opt.step()
            scheduler.step(loss)
        lr = resumed_opt.param_groups[0]["lr"]
        assert type(lr) is float and lr == pytest.approx(float_opt.param_groups[0]["lr"])


def test_numpy_float32_lrs_resume_bit_for_bit() -> None:
    # the group's LR is a numpy float32: an unbroken run multiplies in float32, so the
    # resumed one must too (the state holds the unscaled LR as a plain float)
    import numpy as np

    def build() -> tuple[torch.optim.SGD, LossFeedbackScheduler]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=np.float32(0.1))
        return opt, LossFeedbackScheduler(opt)

    opt, scheduler = build()
    for loss in [4.0, 2.0, 1.5]:
        scheduler.step(loss)
    resumed_opt, resumed = build()
    resumed.load_state_dict(_round_trip(scheduler.state_dict()))
    for loss in [1.2, 1.0, 0.9]:
        for s in [scheduler, resumed]:
            s.step(loss)
        lr, resumed_lr = opt.param_groups[0]["lr"], resumed_opt.param_groups[0]["lr"]
        assert type(lr) is type(resumed_lr) is np.float32 and lr == resumed_lr


def lrs_of(opt: Optimizer) -> list[Any]:
    return [group["lr"] for group in opt.param_groups]


# -- mismatches are clear errors ------------------------------------------------------


def _saved(rule: str = "seed", groups: int = 1, composed: bool = False) -> dict[str, Any]:
    opt = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)], lr=0.1
    )
    schedule = CosineAnnealingLR(opt, T_max=5) if composed else None
    scheduler = LossFeedbackScheduler(opt, rule, schedule=schedule)
    opt.step()
    scheduler.step(2.0)
    return _round_trip(scheduler.state_dict())


def _fresh(rule: str = "seed", groups: int = 1, composed: bool = False) -> LossFeedbackScheduler:
    opt = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)], lr=0.1
    )
    schedule = CosineAnnealingLR(opt, T_max=5) if composed else None
    return LossFeedbackScheduler(opt, rule, schedule=schedule)


@pytest.mark.parametrize("version", [0, 2, None])
def test_another_version_is_refused(version: Any) -> None:
    state = _saved()
    state["version"] = version
    scheduler = _fresh()
    before = scheduler.state_dict()
    with pytest.raises(ValueError, match=f"version {version!r}.*reads version 1"):
        scheduler.load_state_dict(state)
    assert scheduler.state_dict() == before


def test_another_rule_is_refused() -> None:
    scheduler = _fresh("eve")
    with pytest.raises(ValueError, match=re.escape("rule 'seed' into a scheduler of rule 'eve'")):
        scheduler.load_state_dict(_saved("seed"))
    with pytest.raises(ValueError, match="rule 'eve' into a scheduler of rule 'seed'"):
        _fresh("seed").load_state_dict(_saved("eve"))


def test_another_number_of_param_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="state holds 2 param groups, the optimizer has 1"):
        _fresh(groups=1).load_state_dict(_saved(groups=2))
    with pytest.raises(ValueError, match="state holds 1 param groups, the optimizer has 3"):
        _fresh(groups=3).load_state_dict(_saved(groups=1))


def test_a_schedule_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="whether a schedule is owned"):
        _fresh(composed=True).load_state_dict(_saved(composed=False))
    with pytest.raises(ValueError, match="whether a schedule is owned"):
        _fresh(composed=False).load_state_dict(_saved(composed=True))


def _only_plain(value: Any) -> bool:
    """Only dicts, lists, str, int, float, bool and None, all the way down."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)
