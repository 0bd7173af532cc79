"""``capturable=True`` on CPU tensors: the device-tensor path of the feedback rules.

CI has no GPU, so these tests run the device path (``DeviceFeedback`` and
``LossFeedbackScheduler(capturable=True)``) on CPU tensors. They check that it
computes what the core's float path computes, that ``step(loss)`` never reads a
tensor on the host (a dispatch-mode spy stands in for CUDA's sync detector), that
every tensor a CUDA graph would capture keeps its identity, that ``torch.compile``
traces ``step`` whole without recompiling, that checkpoints move between the
two kinds of scheduler, and that ``fused=True`` compiles the same step into one
kernel. ``tests/test_gpu.py`` runs the same path on CUDA.
"""

from __future__ import annotations

import math
import random
import re
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch._dynamo
from fused_support import OPS_AND_FUSED, needs_fused
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_diabetes
from torch import Tensor
from torch._dynamo.utils import counters
from torch._inductor.utils import run_and_get_code
from torch.utils._python_dispatch import TorchDispatchMode

from eve_scheduler import LossFeedbackScheduler
from eve_scheduler.capturable import DeviceFeedback
from eve_scheduler.core import advance, make_rule, simulate_states

REL = 1e-12  # the documented bound between the device path and the float path
CPU = torch.device("cpu")

# Rules and hyper-parameters: the defaults and non-default ones, edges included.
CONFIGS = [
    ("seed", {}),
    ("seed", {"beta": 0.5, "gamma": 0.9, "k": 3.0, "eps": 1e-4, "f_star": -2.0}),
    ("eve", {}),
    ("eve", {"c": 1.0}),  # clip(d, 1, 1): the factor must stay exactly 1
    ("eve", {"c": 3.0, "beta3": 0.9, "f_star": -2.0}),
    ("trend", {}),
    ("trend", {"beta_fast": 0.0, "beta_slow": 0.9}),  # mean_age(0, n) = 0
    (
        "trend",
        {
            "beta_fast": 0.8,
            "beta_slow": 0.95,
            "clip": 2.0,
            "z0": 2.0,
            "gain": 0.2,
            "eta": 0.05,
            "max_step": 0.3,
            "f_min": 0.2,
            "f_max": 3.0,
            "f_star": -2.0,
        },
    ),
]
CONFIG_IDS = [
    f"{rule}-{'-'.join(f'{k}={v}' for k, v in hp.items()) or 'defaults'}" for rule, hp in CONFIGS
]
RULE_NAMES = ["seed", "eve", "trend"]


def loss_stream(n: int, seed: int, f_star: float = 0.0) -> list[float]:
    """A noisy descent, a rise and a plateau above ``f_star``, with every kind of bad loss.

    The first two losses are bad (before any usable one), and NaN, +-inf, a loss
    exactly at ``f_star``, one below it and two x10 spikes are placed along the way.
    """
    rng = random.Random(seed)
    losses = []
    for t in range(n):
        if t < n // 2:
            level = 2.0 * 0.99**t
        elif t < 3 * n // 4:
            level = 2.0 * 0.99 ** (n // 2) * 1.01 ** (t - n // 2)
        else:
            level = 2.0 * 0.99 ** (n // 2) * 1.01 ** (n // 4)
        losses.append(f_star + level * math.exp(0.05 * rng.gauss(0.0, 1.0)))
    bad = {
        0: math.nan,
        1: f_star,
        n // 10: math.nan,
        n // 5: math.inf,
        n // 5 + 1: -math.inf,
        n // 3: f_star,
        n // 3 + 1: f_star - 0.5,
        2 * n // 3: math.nan,
        7 * n // 8: math.inf,
    }
    for t, value in bad.items():
        losses[t] = value
    for spike in [7, 2 * n // 5]:  # 7: (n >= 80) the sixth usable loss, the first trend clips
        losses[spike] = f_star + 10.0 * (losses[spike] - f_star)
    return losses


def close(a: float, b: float) -> bool:
    """Equal within ``REL`` relative; NaN only equals NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b))


def float_path(rule_name: str, hparams: dict[str, float], losses: list[float]) -> list[Any]:
    """The core's state after each loss, and how many losses it had skipped by then."""
    states = simulate_states(losses, rule_name, **hparams)
    return [(state, step + 1 - state.t) for step, state in enumerate(states)]


def f64(value: float) -> Tensor:
    return torch.tensor(value, dtype=torch.float64)


def one_group(lr: float | Tensor = 0.1) -> torch.optim.Optimizer:
    """SGD with one param group of one small tensor."""
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)  # type: ignore[arg-type]


# -- 1. DeviceFeedback against the core's float path -----------------------------------


@pytest.mark.parametrize(("rule_name", "hparams"), CONFIGS, ids=CONFIG_IDS)
def test_device_feedback_matches_the_float_path_on_long_noisy_streams(
    rule_name: str, hparams: dict[str, float]
) -> None:
    """Factors and state within 1e-12 relative at every step (the documented bound), ``t``
    and the skip count exact, over 600 losses with NaN, +-inf, losses at and below
    ``f_star`` and x10 spikes."""
    rule = make_rule(rule_name, **hparams)
    losses = loss_stream(600, seed=len(hparams), f_star=rule.f_star)
    feedback = DeviceFeedback(rule, CPU)
    assert close(float(feedback.factor), rule.factor(rule.init()))
    factors = []
    for step, (loss, (state, skipped)) in enumerate(
        zip(losses, float_path(rule_name, hparams, losses), strict=True)
    ):
        feedback.update(f64(loss))
        factor = rule.factor(state)
        factors.append(factor)
        assert close(float(feedback.factor), factor), (step, float(feedback.factor), factor)
        values, device_skipped = feedback.snapshot()
        assert device_skipped == skipped, step
        assert values.keys() == state._asdict().keys()
        assert type(values["t"]) is int and values["t"] == state.t, step
        for name, value in state._asdict().items():
            assert close(values[name], value), (step, name, values[name], value)
    assert skipped == 9  # the nine bad losses, none of the good ones
    assert state.t == len(losses) - 9
    if rule_name == "eve" and hparams.get("c") == 1.0:
        assert set(factors) == {1.0}
    else:  # the stream really moves the factor
        assert max(factors) / min(factors) > 1.05


def _hparams(rule_name: str, f_star: float) -> st.SearchStrategy[dict[str, float]]:
    """Hyper-parameters across each rule's range, edges included."""
    if rule_name == "seed":
        return st.fixed_dictionaries(
            {
                "beta": st.sampled_from([0.0, 0.5, 0.9, 0.999]),
                "gamma": st.sampled_from([0.0, 0.9, 0.99]),
                "k": st.sampled_from([0.1, 1.0, 5.0]),
                "eps": st.sampled_from([1e-8, 1e-3]),
                "f_star": st.just(f_star),
            }
        )
    if rule_name == "eve":
        return st.fixed_dictionaries(
            {
                "c": st.sampled_from([1.0, 1.5, 10.0]),
                "beta3": st.sampled_from([0.0, 0.5, 0.999]),
                "f_star": st.just(f_star),
            }
        )
    return st.sampled_from([0.5, 0.9, 0.99, 0.9999]).flatmap(
        lambda slow: st.fixed_dictionaries(
            {
                "beta_slow": st.just(slow),
                "beta_fast": st.sampled_from([0.0, slow / 2, slow - 1e-3]),
                "clip": st.sampled_from([0.5, 3.0]),
                "z0": st.sampled_from([0.5, 4.0]),
                "gain": st.sampled_from([0.0, 0.05, 1.0]),
                "eta": st.sampled_from([0.0, 0.005, 1.0]),
                "max_step": st.sampled_from([0.01, 0.1, 5.0]),
                "f_min": st.sampled_from([0.05, 1.0]),
                "f_max": st.sampled_from([1.0, 10.0]),
                "eps": st.sampled_from([1e-6, 1e-3]),
                "f_star": st.just(f_star),
            }
        )
    )


@st.composite
def rule_and_stream(draw: st.DrawFn) -> tuple[str, dict[str, float], list[float]]:
    rule_name = draw(st.sampled_from(RULE_NAMES))
    f_star = draw(st.sampled_from([0.0, -2.0, 1.5]))
    hparams = draw(_hparams(rule_name, f_star))
    above = st.floats(1e-12, 1e12).map(lambda gap: f_star + gap)
    bad = st.sampled_from([math.nan, math.inf, -math.inf, f_star, f_star - 1.0])
    losses = draw(st.lists(st.one_of(above, above, above, bad), min_size=1, max_size=60))
    return rule_name, hparams, losses


@settings(max_examples=150, deadline=None)
@given(rule_and_stream())
def test_device_factors_match_the_float_path_for_any_stream_and_hyper_parameters(
    case: tuple[str, dict[str, float], list[float]],
) -> None:
    """The documented bound, 1e-12 relative, on every step, except that a ``seed``
    factor below ~1e-300 may be 0 on the device (torch's sigmoid does not return
    subnormal numbers)."""
    rule_name, hparams, losses = case
    rule = make_rule(rule_name, **hparams)
    feedback = DeviceFeedback(rule, CPU)
    path = float_path(rule_name, hparams, losses)
    for loss, (state, _) in zip(losses, path, strict=True):
        feedback.update(f64(loss))
        device, host = float(feedback.factor), rule.factor(state)
        assert close(device, host) or max(device, host) < 1e-300, (device, host)
    values, device_skipped = feedback.snapshot()
    state, skipped = path[-1]
    assert (values["t"], device_skipped) == (state.t, skipped)


@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("fused", OPS_AND_FUSED)
def test_a_loss_that_would_overflow_the_state_is_skipped_as_on_the_float_path(
    fused: bool,
) -> None:
    # seed: 1e-300 after 2.0 gives (r - d)^2 beyond the float range, 1e-310 after 1.0
    # gives r = inf; the float path skips both (core.advance), so must the device
    losses = [4.0, 2.0, 1e-300, 1.0, 1e-310, 0.5, 1e-140]
    float_opt, device_opt = one_group(0.1), one_group(torch.tensor(0.1, dtype=torch.float64))
    on_floats = LossFeedbackScheduler(float_opt)
    on_device = LossFeedbackScheduler(device_opt, capturable=True, fused=fused)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the float path warns on each skip
        for loss in losses:
            on_floats.step(loss)
            on_device.step(f64(loss))
            assert close(float(on_device.factor), on_floats.factor), loss
            assert device_opt.param_groups[0]["lr"].item() == float_opt.param_groups[0]["lr"]
    assert int(on_device.skipped) == on_floats.skipped == 2
    assert_same_state(on_device.state_dict(), on_floats.state_dict())
    assert on_floats.state.t == 5 and on_floats.state.prev_loss == 1e-140  # kept: r = 5e139


def test_a_loss_that_would_make_the_factor_nan_is_skipped_as_on_the_float_path() -> None:
    # k = eps = 1e308, gamma = 0: after 1e154 then 1.0 the score is inf / inf
    rule = make_rule("seed", gamma=0.0, k=1e308, eps=1e308)
    feedback, state = DeviceFeedback(rule, CPU), rule.init()
    for loss in [1e154, 1.0, 2e154]:
        feedback.update(f64(loss))
        state = advance(rule, state, loss) or state
        assert float(feedback.factor) == rule.factor(state)
    assert advance(rule, rule.update(rule.init(), 1e154), 1.0) is None
    assert feedback.snapshot() == (state._asdict(), 1)


@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("fused", OPS_AND_FUSED)
def test_lr_tensors_of_shape_1_1_are_written(fused: bool) -> None:
    opt = one_group(torch.full((1, 1), 0.1))
    scheduler = LossFeedbackScheduler(opt, capturable=True, fused=fused)
    for loss in [4.0, 2.0]:
        scheduler.step(torch.tensor(loss))
    lr = opt.param_groups[0]["lr"]
    assert lr.shape == (1, 1) and lr.item() == pytest.approx(0.1 * float(scheduler.factor))


def test_the_skipped_count_is_a_device_tensor_that_counts_every_kind_of_bad_loss() -> None:
    feedback = DeviceFeedback(make_rule("seed", f_star=1.0), CPU)
    for loss in [2.0, math.nan, math.inf, -math.inf, 1.0, 0.5, 3.0]:
        feedback.update(f64(loss))
    assert feedback.skipped.dtype == torch.int64
    assert feedback.snapshot()[1] == 5
    assert feedback.snapshot()[0]["t"] == 2  # 2.0 and 3.0 entered the rule


# -- 2. hand-worked sequences on the device path ---------------------------------------


def test_seed_by_hand_on_the_device() -> None:
    # seed defaults (beta 0.9, gamma 0.99, k 1, eps 1e-8), losses 4, 2, 1:
    # t=1: r=1,         d = 0.9*1   + 0.1*1 = 1.0,  v = 0.01*(1-1)^2          = 0
    #      factor = sigmoid(0 / sqrt(0 + 1e-8)) = 0.5
    # t=2: r=4/2=2,     d = 0.9*1   + 0.1*2 = 1.1,  v = 0 + 0.01*(2-1.1)^2    = 0.0081
    #      factor = sigmoid(0.1 / sqrt(0.0081 + 1e-8))  = sigmoid(1.111110...) = 0.752336...
    # t=3: r=2/1=2,     d = 0.9*1.1 + 0.1*2 = 1.19, v = 0.99*0.0081 + 0.01*(2-1.19)^2
    #                                                 = 0.008019 + 0.006561   = 0.01458
    #      factor = sigmoid(0.19 / sqrt(0.01458 + 1e-8)) = sigmoid(1.573524...) = 0.828286...
    def sigmoid(z: float) -> float:
        return 1.0 / (1.0 + math.exp(-z))

    expected = [
        (1.0, 0.0, 0.5),
        (1.1, 0.0081, sigmoid(0.1 / math.sqrt(0.0081 + 1e-8))),
        (1.19, 0.01458, sigmoid(0.19 / math.sqrt(0.01458 + 1e-8))),
    ]
    feedback = DeviceFeedback(make_rule("seed"), CPU)
    for loss, (d, v, factor) in zip([4.0, 2.0, 1.0], expected, strict=True):
        feedback.update(f64(loss))
        values, _ = feedback.snapshot()
        assert values["prev_loss"] == loss
        assert values["d"] == pytest.approx(d, rel=1e-14)
        assert values["v"] == pytest.approx(v, rel=1e-12, abs=0.0)
        assert float(feedback.factor) == pytest.approx(factor, rel=1e-12)
    assert [round(f, 6) for _, _, f in expected] == [0.5, 0.752336, 0.828286]


def test_eve_by_hand_on_the_device() -> None:
    # eve defaults (c 10, beta3 0.999, f_star 0):
    # 2.0:  t=1, dtilde = 1                                        factor 1
    # 1.0:  d = |1-2| / min(1,2) = 1, clip(1, 0.1, 10) = 1
    #       dtilde = 0.999*1 + 0.001*1 = 1.0                       factor 1
    # NaN:  skipped, nothing changes
    # 0.99: d = 0.01 / 0.99 = 0.0101, clipped up to 1/c = 0.1
    #       dtilde = 0.999*1 + 0.001*0.1 = 0.9991                  factor 1/0.9991
    # 99.0: d = 98.01 / 0.99 = 99, clipped down to c = 10
    #       dtilde = 0.999*0.9991 + 0.001*10 = 1.0081009           factor 1/1.0081009
    steps = [(2.0, 1.0), (1.0, 1.0), (math.nan, 1.0), (0.99, 0.9991), (99.0, 1.0081009)]
    feedback = DeviceFeedback(make_rule("eve"), CPU)
    for loss, d_tilde in steps:
        feedback.update(f64(loss))
        values, _ = feedback.snapshot()
        assert values["d_tilde"] == pytest.approx(d_tilde, rel=1e-14)
        assert float(feedback.factor) == pytest.approx(1.0 / d_tilde, rel=1e-14)
    assert feedback.snapshot() == (
        {"t": 4, "prev_loss": 99.0, "d_tilde": pytest.approx(1.0081009, rel=1e-14)},
        1,
    )


# -- 3. a real training run: capturable and float path give the same LRs --------------


def diabetes() -> tuple[Tensor, Tensor]:
    """scikit-learn's diabetes regression (442 x 10), standardized."""
    x, y = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


BASE_LRS = [0.02, 0.01, 0.005]
# min_lr of the second group, as a multiple of its base LR: binds for part of the run
MIN_LR_MULTIPLE = {"seed": 0.6, "eve": 1.05, "trend": 1.05}
NAN_AT = 70  # this step's loss is fed as NaN
BATCH = 128


def train(
    rule: str, optimizer: str, capturable: bool, fused: bool = False
) -> tuple[list[list[Tensor]], LossFeedbackScheduler]:
    """150 minibatch steps of a small MLP; the LR tensors each optimizer step used."""
    x, y = diabetes()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    groups = [
        {"params": [model[0].weight], "lr": torch.tensor(BASE_LRS[0])},
        {"params": [model[0].bias], "lr": torch.tensor(BASE_LRS[1])},
        {"params": model[2].parameters(), "lr": torch.tensor(BASE_LRS[2])},
    ]
    opt = (
        torch.optim.Adam(groups)
        if optimizer == "adam"
        else torch.optim.SGD(groups, lr=torch.tensor(0.01), momentum=0.9)
    )
    min_lr = [0.0, BASE_LRS[1] * MIN_LR_MULTIPLE[rule], 0.0]
    scheduler = LossFeedbackScheduler(opt, rule, min_lr=min_lr, capturable=capturable, fused=fused)
    used: list[list[Tensor]] = []
    for t in range(150):
        start = (t * BATCH) % (len(x) - BATCH + 1)
        rows = slice(start, start + BATCH)
        loss = torch.nn.functional.mse_loss(model(x[rows]).squeeze(1), y[rows])
        opt.zero_grad()
        loss.backward()
        used.append([group["lr"].clone() for group in opt.param_groups])
        opt.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the float path warns about the NaN
            scheduler.step(loss.detach() * math.nan if t == NAN_AT else loss)
    return used, scheduler


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("rule", RULE_NAMES)
def test_a_training_run_gets_the_same_lrs_bit_for_bit(rule: str, optimizer: str) -> None:
    float_lrs, float_scheduler = train(rule, optimizer, capturable=False)
    device_lrs, device_scheduler = train(rule, optimizer, capturable=True)
    assert len(device_lrs) == len(float_lrs) == 150
    for step, (a, b) in enumerate(zip(device_lrs, float_lrs, strict=True)):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True)), (step, a, b)
    assert float_scheduler.skipped == int(device_scheduler.skipped) == 1
    assert device_scheduler.last_epoch == 150
    # the run exercises what it claims: the LR moves, and min_lr binds only some of the time
    first_group = {lrs[0].item() for lrs in float_lrs}
    assert len(first_group) > 100
    floor = torch.tensor(BASE_LRS[1] * MIN_LR_MULTIPLE[rule]).item()
    at_floor = sum(lrs[1].item() == floor for lrs in float_lrs)
    assert 0 < at_floor < 150


# -- 4. no host reads ------------------------------------------------------------------


class HostReadSpy(TorchDispatchMode):
    """Records every aten op run inside it, and every host read.

    Reading a tensor on the host (``float(t)``, ``t.item()``, ``bool(t)``) runs
    ``aten._local_scalar_dense``: on CUDA, that is the host waiting for the device.
    ``tolist``, ``numpy`` and ``__array__`` read without an aten op the mode would
    see, so they are patched to be recorded too while the spy is active.
    """

    HOST_READ_OPS = frozenset(
        {"aten._local_scalar_dense.default", "aten.item.default", "aten.is_nonzero.default"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.bulk_reads: list[str] = []
        self._patches = pytest.MonkeyPatch()

    def __enter__(self) -> HostReadSpy:
        for name in ["tolist", "numpy", "__array__"]:
            self._patches.setattr(Tensor, name, self._recording(name, getattr(Tensor, name)))
        return super().__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._patches.undo()

    def _recording(self, name: str, read: Any) -> Any:
        def recorded(tensor: Tensor, *args: Any, **kwargs: Any) -> Any:
            self.bulk_reads.append(name)
            return read(tensor, *args, **kwargs)

        return recorded

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))

    @property
    def host_reads(self) -> list[str]:
        return [op for op in self.ops if op in self.HOST_READ_OPS] + self.bulk_reads


@pytest.mark.parametrize(
    "read",
    [float, int, bool, Tensor.item, lambda t: t.tolist(), lambda t: t.numpy()],
    ids=["float", "int", "bool", "item", "tolist", "numpy"],
)
def test_the_spy_catches_a_host_read(read: Any) -> None:
    loss = torch.tensor(0.5)
    with HostReadSpy() as spy:
        read(loss)
    assert spy.host_reads
    assert "tolist" not in torch.Tensor.__dict__  # the patches are undone


def test_the_spy_sees_the_float_path_read_the_loss() -> None:
    scheduler = LossFeedbackScheduler(one_group(torch.tensor(0.1)))  # capturable=False
    with HostReadSpy() as spy:
        scheduler.step(torch.tensor(1.5))
    assert "aten._local_scalar_dense.default" in spy.host_reads


@pytest.mark.parametrize("bad", [False, True], ids=["usable", "nan"])
@pytest.mark.parametrize("rule", RULE_NAMES)
def test_step_reads_nothing_on_the_host(rule: str, bad: bool) -> None:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=torch.tensor(0.01))
    scheduler = LossFeedbackScheduler(opt, rule, capturable=True)
    for loss in [2.0, 1.9, 1.7]:  # past the first-loss case, with a trend to follow
        scheduler.step(torch.tensor(loss))
    before = scheduler.state_dict()
    loss = torch.tensor(math.nan if bad else 1.5, requires_grad=True) * 1.0
    with HostReadSpy() as spy:
        scheduler.step(loss)
    assert spy.host_reads == []
    assert len(spy.ops) > 10  # the spy saw the step's tensor operations
    after = scheduler.state_dict()
    assert after["skipped"] == before["skipped"] + bad
    assert after["rule_state"]["t"] == before["rule_state"]["t"] + (not bad)
    assert after["last_epoch"] == before["last_epoch"] + 1


# -- 5. what a CUDA graph captures keeps its identity --------------------------------


def captured_tensors(scheduler: LossFeedbackScheduler) -> dict[str, tuple[int, int]]:
    """Every tensor a captured ``step`` reads or writes, by name: (id, data_ptr)."""
    tensors: dict[str, Tensor] = {f"state.{k}": v for k, v in scheduler.state._asdict().items()}
    tensors["factor"] = scheduler.factor  # type: ignore[assignment]
    tensors["skipped"] = scheduler.skipped  # type: ignore[assignment]
    for i, lr in enumerate(scheduler.unscaled_lrs):
        tensors[f"unscaled_lrs[{i}]"] = lr  # type: ignore[assignment]
    for i, group in enumerate(scheduler.optimizer.param_groups):
        tensors[f"group[{i}].lr"] = group["lr"]
    assert all(isinstance(t, Tensor) for t in tensors.values()), tensors
    return {name: (id(t), t.data_ptr()) for name, t in tensors.items()}


@pytest.mark.parametrize("fused", OPS_AND_FUSED)
@pytest.mark.parametrize("rule", RULE_NAMES)
def test_state_factor_and_lr_tensors_keep_their_identity(rule: str, fused: bool) -> None:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    opt = torch.optim.SGD(
        [{"params": [params[0]], "lr": torch.tensor(0.1)}, {"params": [params[1]]}],
        lr=torch.tensor(0.05),
    )
    scheduler = LossFeedbackScheduler(opt, rule, capturable=True, fused=fused)
    expected = captured_tensors(scheduler)
    assert len(expected) == len(scheduler.state) + 2 + 2 * 2
    for loss in loss_stream(60, seed=1):
        scheduler.step(torch.tensor(loss))
        assert captured_tensors(scheduler) == expected

    decay = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    opt.step()  # as in training (no gradients: changes nothing); torch warns otherwise
    with scheduler.unscaled():
        decay.step()
    assert captured_tensors(scheduler) == expected
    assert [lr.item() for lr in scheduler.unscaled_lrs] == pytest.approx([0.05, 0.025])
    factor = float(scheduler.factor)  # type: ignore[arg-type]
    assert opt.param_groups[0]["lr"].item() == pytest.approx(0.05 * factor, rel=1e-6)

    other_opt = torch.optim.SGD(
        [{"params": [params[0]], "lr": 1.0}, {"params": [params[1]], "lr": 0.3}]
    )
    other = LossFeedbackScheduler(other_opt, rule)  # the float path, float LRs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stream's bad losses
        for loss in loss_stream(30, seed=2):
            other.step(loss)
    scheduler.load_state_dict(other.state_dict())
    assert captured_tensors(scheduler) == expected
    assert float(scheduler.factor) == pytest.approx(other.factor, rel=REL)  # type: ignore[arg-type]
    assert [lr.item() for lr in scheduler.unscaled_lrs] == pytest.approx([1.0, 0.3])
    for loss in [1.0, 0.9]:
        scheduler.step(torch.tensor(loss))
    assert captured_tensors(scheduler) == expected


# -- 6. torch.compile traces step whole and never recompiles --------------------------


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    """No compiled code or cache entries from other tests, before or after."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("rule", RULE_NAMES)
def test_compiled_step_has_no_graph_break_no_recompile_and_the_eager_values(rule: str) -> None:
    def build() -> tuple[torch.optim.Optimizer, LossFeedbackScheduler]:
        opt = torch.optim.SGD(
            [torch.nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.1), momentum=0.9
        )
        return opt, LossFeedbackScheduler(opt, rule, capturable=True)

    opt, scheduler = build()
    eager_opt, eager = build()

    def step(loss: Tensor) -> None:
        scheduler.step(loss)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")  # graph break: error
    # float32 losses, as a model gives them: torch 2.13 guards on NaN for 0-d float64
    # CPU inputs (it takes them for wrapped Python floats), which would recompile
    # any compiled function, with or without this library.
    values = [2.0, 1.8, math.nan, 1.7, 1.75, 1.5, 0.0, 1.4, 3.0, 1.3, 1.2, math.inf, 1.1, 1.0, 0.9]
    losses = [torch.tensor(v, dtype=torch.float32) for v in values]
    lrs = []
    with torch._dynamo.config.patch(error_on_recompile=True):
        for loss in losses:
            compiled(loss)
            eager.step(loss)
            lrs.append(opt.param_groups[0]["lr"].clone())
            assert torch.equal(scheduler.factor, eager.factor)  # type: ignore[arg-type]
            assert torch.equal(opt.param_groups[0]["lr"], eager_opt.param_groups[0]["lr"])
            assert torch.equal(scheduler.skipped, eager.skipped)  # type: ignore[arg-type]
    assert scheduler.last_epoch == eager.last_epoch == len(losses)
    assert scheduler.state_dict() == eager.state_dict()
    assert int(scheduler.skipped) == 3  # NaN, 0.0 (at f_star) and inf
    assert len({lr.item() for lr in lrs}) >= 5  # the LR really moved


# -- 7. checkpoints move between the two kinds -----------------------------------------


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Same structure and keys; ints and strings exact, floats within ``REL``."""
    assert type(a) is type(b), (where, a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert close(a, b), (where, a, b)
    else:
        assert a == b, (where, a, b)


def two_group_optimizer() -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        [
            {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": torch.tensor(0.01)},
            {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": torch.tensor(0.003)},
        ]
    )


@pytest.mark.parametrize(("rule_name", "hparams"), CONFIGS, ids=CONFIG_IDS)
def test_checkpoints_move_between_the_two_kinds(
    rule_name: str, hparams: dict[str, float], tmp_path: Any
) -> None:
    f_star = hparams.get("f_star", 0.0)
    losses = loss_stream(300, seed=5, f_star=f_star)
    first, rest = losses[:200], losses[200:]

    def build(capturable: bool) -> tuple[torch.optim.Optimizer, LossFeedbackScheduler]:
        opt = two_group_optimizer()
        scheduler = LossFeedbackScheduler(
            opt, rule_name, min_lr=[0.0, 1e-3], capturable=capturable, **hparams
        )
        return opt, scheduler

    runs = {"device": build(True), "float": build(False)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for loss in first:
            for _, scheduler in runs.values():
                scheduler.step(f64(loss))
    saved = {kind: scheduler.state_dict() for kind, (_, scheduler) in runs.items()}
    assert_same_state(saved["device"], saved["float"])
    assert saved["device"]["last_epoch"] == 200
    torch.save(saved, tmp_path / "schedulers.pt")
    loaded = torch.load(tmp_path / "schedulers.pt", weights_only=True)

    runs["float_from_device"] = build(False)
    runs["float_from_device"][1].load_state_dict(loaded["device"])
    runs["device_from_float"] = build(True)
    device_from_float = runs["device_from_float"][1]
    device_from_float.load_state_dict(loaded["float"])
    assert device_from_float.last_epoch == 200
    assert device_from_float.skipped.item() == saved["float"]["skipped"] == 7  # type: ignore[union-attr]

    lrs: dict[str, list[list[Tensor]]] = {kind: [] for kind in runs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for loss in rest:
            for kind, (opt, scheduler) in runs.items():
                lrs[kind].append([group["lr"].clone() for group in opt.param_groups])
                scheduler.step(f64(loss))
    reference = lrs["float"]
    for kind, trajectory in lrs.items():
        for step, (a, b) in enumerate(zip(trajectory, reference, strict=True)):
            assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True)), (kind, step)
    final = runs["float"][1].state_dict()
    for kind, (_, scheduler) in runs.items():
        assert_same_state(scheduler.state_dict(), final, kind)


# -- 8. errors and the API -------------------------------------------------------------


def test_a_float_lr_is_refused() -> None:
    with pytest.raises(ValueError, match="capturable=True needs tensor LRs in every param group"):
        LossFeedbackScheduler(one_group(0.1), capturable=True)


@pytest.mark.parametrize("option", [{"strict": True}, {"lag": 1}], ids=["strict", "lag"])
def test_strict_and_lag_are_refused(option: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"capturable=True never reads the loss on the host"):
        LossFeedbackScheduler(one_group(torch.tensor(0.1)), capturable=True, **option)


def test_a_group_added_with_a_float_lr_is_refused_at_the_next_step() -> None:
    opt = one_group(torch.tensor(0.1))
    scheduler = LossFeedbackScheduler(opt, capturable=True)
    scheduler.step(torch.tensor(1.0))
    before = scheduler.state_dict()
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.2})
    with pytest.raises(ValueError, match=r"capturable=True needs tensor LRs.*lr=0\.2"):
        scheduler.step(torch.tensor(0.9))
    with pytest.raises(ValueError, match=r"capturable=True needs tensor LRs.*lr=0\.2"):
        scheduler.state_dict()  # which would save the group too
    del opt.param_groups[1]
    assert scheduler.state_dict() == before  # refused before the loss entered the rule


def test_float_lrs_put_back_by_an_optimizer_checkpoint_are_refused_clearly() -> None:
    # loading an optimizer state saved with float LRs replaces the tensor LRs with floats
    opt = one_group(torch.tensor(0.1))
    scheduler = LossFeedbackScheduler(opt, capturable=True)
    scheduler.step(torch.tensor(2.0))
    saved = scheduler.state_dict()
    opt.load_state_dict(one_group(0.1).state_dict())
    assert type(opt.param_groups[0]["lr"]) is float
    for call in [lambda: scheduler.load_state_dict(saved), lambda: scheduler.step(1.0)]:
        with pytest.raises(ValueError, match=r"capturable=True needs tensor LRs.*lr=0\.1"):
            call()
    assert opt.param_groups[0]["lr"] == 0.1
    opt.param_groups[0]["lr"] = torch.tensor(0.1)  # the fix the message gives
    scheduler.load_state_dict(saved)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.05)  # seed: 0.5 at t = 1
    assert scheduler.state_dict() == saved  # the refused calls changed nothing


def test_a_loss_on_another_device_than_cpu_lrs_is_refused() -> None:
    # On a GPU this is a CUDA loss with CPU LR tensors, which would be read on the host
    # at every step; the "meta" device stands in for the other device here.
    scheduler = LossFeedbackScheduler(one_group(torch.tensor(0.1)), capturable=True)
    scheduler.step(torch.tensor(1.0))  # a finite prev_loss, so that states compare equal
    before = scheduler.state_dict()
    with pytest.raises(ValueError, match="would be read on the host at every step"):
        scheduler.step(torch.tensor(1.0, device="meta"))
    assert scheduler.state_dict() == before


def test_lr_tensors_on_two_devices_are_refused() -> None:
    # "meta" stands in for a second device: a group whose LR is elsewhere would be
    # copied across devices at every step (a host sync, and no capture).
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    opt = torch.optim.SGD(
        [
            {"params": [params[0]], "lr": torch.tensor(0.1)},
            {"params": [params[1]], "lr": torch.tensor(0.1, device="meta")},
        ]
    )
    with pytest.raises(ValueError, match=r"all on one device \(cpu\)"):
        LossFeedbackScheduler(opt, capturable=True)
    opt = one_group(torch.tensor(0.1))
    scheduler = LossFeedbackScheduler(opt, capturable=True)
    opt.add_param_group({"params": [params[2]], "lr": torch.tensor(0.2, device="meta")})
    with pytest.raises(ValueError, match="all on one device"):
        scheduler.step(torch.tensor(1.0))


def test_a_group_added_with_a_tensor_lr_is_scaled() -> None:
    opt = one_group(torch.tensor(0.1))
    scheduler = LossFeedbackScheduler(opt, "eve", capturable=True)
    for loss in [2.0, 1.0, 0.99]:
        scheduler.step(torch.tensor(loss))
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": torch.tensor(0.2)})
    scheduler.step(torch.tensor(99.0))
    # the eve hand-worked sequence: dtilde = 1.0081009 after 2, 1, 0.99, 99
    expected = torch.tensor(0.2) * torch.tensor(1 / 1.0081009, dtype=torch.float32)
    assert torch.allclose(opt.param_groups[1]["lr"], expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("loss", "error", "message"),
    [
        (torch.ones(3), ValueError, "scalar"),
        (torch.ones(2, 2), ValueError, "scalar"),
        (np.ones(2), ValueError, "scalar"),
        ("0.5", TypeError, "real scalar"),
        (None, TypeError, "needs the loss"),
        (torch.tensor(True), TypeError, "real number"),
        (torch.tensor(1j), TypeError, "real number"),
    ],
    ids=["vector", "matrix", "numpy-vector", "string", "none", "bool", "complex"],
)
def test_a_non_scalar_is_an_error_at_once_and_changes_nothing(
    loss: Any, error: type[Exception], message: str
) -> None:
    opt = one_group(torch.tensor(0.1))
    scheduler = LossFeedbackScheduler(opt, "trend", capturable=True)
    for value in [2.0, 1.5, 1.2]:
        scheduler.step(torch.tensor(value))
    before, lr = scheduler.state_dict(), opt.param_groups[0]["lr"].clone()
    with pytest.raises(error, match=message):
        scheduler.step(loss)
    assert scheduler.state_dict() == before
    assert torch.equal(opt.param_groups[0]["lr"], lr)


@pytest.mark.parametrize(
    "as_loss",
    [float, np.float64, np.float32, lambda x: np.array([x]), lambda x: torch.tensor([[x]])],
    ids=["python-float", "numpy-float64", "numpy-float32", "numpy-array", "tensor-1x1"],
)
def test_python_and_numpy_scalars_are_accepted(as_loss: Any) -> None:
    values = [2.0, 1.75, 1.5, 1.6, 1.2]
    device = LossFeedbackScheduler(one_group(torch.tensor(0.1)), capturable=True)
    host = LossFeedbackScheduler(one_group(torch.tensor(0.1)))
    for value in values:
        loss = as_loss(value)  # the same object to both: a float32 value reads the same
        device.step(loss)
        host.step(loss)
        assert float(device.factor) == pytest.approx(host.factor, rel=REL)  # type: ignore[arg-type]
    assert device.state_dict()["rule_state"]["t"] == len(values)


def test_last_epoch_counts_step_calls_can_be_set_and_is_restored() -> None:
    opt = one_group(torch.tensor(0.1))
    scheduler = LossFeedbackScheduler(opt, capturable=True)
    assert scheduler.last_epoch == 0
    for loss in [2.0, math.nan, 1.0]:  # a skipped loss is a step call too
        scheduler.step(torch.tensor(loss))
    assert scheduler.last_epoch == 3
    saved = scheduler.state_dict()
    scheduler.last_epoch = 10
    assert scheduler.last_epoch == 10
    scheduler.step(torch.tensor(0.5))
    assert scheduler.last_epoch == 11
    scheduler.load_state_dict(saved)
    assert scheduler.last_epoch == 3
    assert saved["last_epoch"] == 3 and type(saved["last_epoch"]) is int


def test_get_last_lr_returns_tensors_equal_to_the_group_lrs() -> None:
    opt = torch.optim.SGD(
        [
            {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": torch.tensor(0.1)},
            {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": torch.tensor(0.02)},
        ]
    )
    scheduler = LossFeedbackScheduler(opt, capturable=True)
    for loss in [None, 4.0, 2.0, 1.0]:
        if loss is not None:
            scheduler.step(torch.tensor(loss))
        last = scheduler.get_last_lr()
        assert len(last) == 2
        for lr, group in zip(last, opt.param_groups, strict=True):
            assert isinstance(lr, Tensor)
            assert lr is not group["lr"]  # a copy, as for tensor LRs on the float path
            assert torch.equal(lr, group["lr"])
    # seed after 4, 2, 1: factor 0.828286 (hand-worked above)
    assert [lr.item() for lr in scheduler.get_last_lr()] == pytest.approx(
        [0.0828286, 0.01656572], rel=1e-6
    )


def test_factor_state_and_skipped_are_live_device_tensors() -> None:
    opt = one_group(torch.tensor(0.1, dtype=torch.float64))
    scheduler = LossFeedbackScheduler(opt, "eve", capturable=True)
    factor, skipped = scheduler.factor, scheduler.skipped
    assert isinstance(factor, Tensor) and factor.dtype == torch.float64
    assert isinstance(skipped, Tensor) and skipped.dtype == torch.int64
    assert all(isinstance(v, Tensor) and v.shape == (1,) for v in scheduler.state)
    for loss in [2.0, 1.0, math.nan, 0.99, 99.0]:
        scheduler.step(torch.tensor(loss))
    assert factor.item() == pytest.approx(1 / 1.0081009, rel=1e-14)  # the same tensor, updated
    assert skipped.item() == 1
    # a float64 LR tensor: the LR is the float64 product, as on the float path
    assert opt.param_groups[0]["lr"].item() == 0.1 * factor.item()


# -- 9. fused=True: the same step, compiled into one kernel ---------------------------


def aten_ops(run: Any) -> list[str]:
    """The aten ops the profiler sees while ``run()`` runs (a host read is one of them:
    ``aten::_local_scalar_dense``)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    return [event.name for event in prof.events() if event.name.startswith("aten::")]


@needs_fused
@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("rule", RULE_NAMES)
def test_fused_gives_the_float_path_lrs_bit_for_bit(rule: str) -> None:
    float_lrs, float_scheduler = train(rule, "adam", capturable=False)
    fused_lrs, fused = train(rule, "adam", capturable=True, fused=True)
    for step, (a, b) in enumerate(zip(fused_lrs, float_lrs, strict=True)):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True)), (step, a, b)
    assert int(fused.skipped) == float_scheduler.skipped == 1
    assert fused.last_epoch == 150
    assert_same_state(fused.state_dict(), float_scheduler.state_dict())
    assert [lr.item() for lr in fused.get_last_lr()] == [  # type: ignore[union-attr]
        group["lr"].item() for group in fused.optimizer.param_groups
    ]


@needs_fused
@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("rule", RULE_NAMES)
def test_a_fused_step_runs_one_compiled_kernel_and_no_other_op(rule: str) -> None:
    def build(fused: bool) -> LossFeedbackScheduler:
        return LossFeedbackScheduler(two_group_optimizer(), rule, capturable=True, fused=fused)

    loss = torch.tensor(1.5)
    fused = build(True)
    result, codes = run_and_get_code(fused.step, loss)  # the first step compiles
    assert result is None
    assert sum(code.count("async_compile.cpp_pybinding(") for code in codes) == 1
    for value in [1.4, math.nan, 1.3]:
        fused.step(torch.tensor(value))
    # one aten op: the loss's detach, a view (no kernel); no host read
    assert aten_ops(lambda: fused.step(loss)) == ["aten::detach"]
    assert len(aten_ops(lambda: build(False).step(loss))) > 40  # what it replaces


@needs_fused
@pytest.mark.usefixtures("fresh_dynamo")
def test_fused_schedulers_of_the_same_configuration_share_one_compiled_step() -> None:
    def run(lr: float, losses: list[float]) -> None:
        opt = one_group(torch.tensor(lr))
        scheduler = LossFeedbackScheduler(opt, "seed", capturable=True, fused=True)
        for loss in losses:
            scheduler.step(torch.tensor(loss))
        checkpoint = scheduler.state_dict()
        scheduler.load_state_dict(checkpoint)
        scheduler.step(torch.tensor(0.5))

    run(0.1, [2.0, 1.0])
    with torch._dynamo.config.patch(error_on_recompile=True):  # a recompile is an error
        for lr in [0.2, 0.3, 0.4]:
            run(lr, [3.0, math.nan, 2.0, 1.5])


@needs_fused
@pytest.mark.usefixtures("fresh_dynamo")
def test_fused_schedulers_with_other_hyper_parameters_compile_once_more_and_stay_exact() -> None:
    counters.clear()
    losses = [2.0, 1.9, math.nan, 1.7, 1.75, 1.5]
    for beta in [0.5 + 0.05 * i for i in range(10)]:
        opts = [one_group(torch.tensor(0.1)) for _ in range(2)]
        fused = LossFeedbackScheduler(opts[0], "seed", capturable=True, fused=True, beta=beta)
        default = LossFeedbackScheduler(opts[1], "seed", beta=beta)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the default path warns about the NaN
            for loss in losses:
                fused.step(torch.tensor(loss))
                default.step(torch.tensor(loss))
                assert torch.equal(opts[0].param_groups[0]["lr"], opts[1].param_groups[0]["lr"])
        assert_same_state(fused.state_dict(), default.state_dict(), f"beta={beta}")
    assert counters["stats"]["unique_graphs"] == 2  # torch 2.13: then beta is an input


@needs_fused
@pytest.mark.usefixtures("fresh_dynamo")
def test_past_the_recompile_limit_a_fused_scheduler_warns_and_steps_uncompiled() -> None:
    # each value of min_lr is a compiled variant; past torch's limit, fullgraph=True
    # raises instead of falling back, so the scheduler runs the same step uncompiled
    losses = [2.0, 1.9, math.nan, 1.7]
    with torch._dynamo.config.patch(recompile_limit=2):
        for i, min_lr in enumerate([1e-6, 2e-6, 3e-6, 4e-6]):
            opts = [one_group(torch.tensor(0.1)) for _ in range(2)]
            fused = LossFeedbackScheduler(opts[0], capturable=True, fused=True, min_lr=min_lr)
            alone = LossFeedbackScheduler(opts[1], capturable=True, min_lr=min_lr)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for loss in losses:
                    fused.step(torch.tensor(loss))
                    alone.step(torch.tensor(loss))
                    assert torch.equal(opts[0].param_groups[0]["lr"], opts[1].param_groups[0]["lr"])
            limit = [w for w in caught if "recompile_limit" in str(w.message)]
            assert fused.fused is (i < 2) and len(limit) == (i >= 2), min_lr  # warned once
            assert_same_state(fused.state_dict(), alone.state_dict(), f"min_lr={min_lr}")


@needs_fused
@pytest.mark.usefixtures("fresh_dynamo")
def test_fused_inside_a_callers_compiled_step_is_traced_whole() -> None:
    def build(fused: bool) -> tuple[torch.optim.Optimizer, LossFeedbackScheduler]:
        opt = one_group(torch.tensor(0.1))
        return opt, LossFeedbackScheduler(opt, "eve", capturable=True, fused=fused)

    opt, fused = build(True)
    eager_opt, eager = build(False)
    compiled = torch.compile(fused.step, fullgraph=True, backend="aot_eager")
    with torch._dynamo.config.patch(error_on_recompile=True):
        for value in [2.0, 1.8, math.nan, 1.7, 1.5]:
            loss = torch.tensor(value)
            compiled(loss)
            eager.step(loss)
            assert torch.equal(opt.param_groups[0]["lr"], eager_opt.param_groups[0]["lr"])
    assert fused.state_dict() == eager.state_dict()


@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize(
    "how",
    [
        "ops",
        pytest.param("fused", marks=needs_fused),
        "caller-compiled",
        pytest.param("caller-compiled-fused", marks=needs_fused),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_lr_tensors_of_every_float_dtype_are_written(how: str, dtype: torch.dtype) -> None:
    # torch.compile (2.13) drops an in-place write to a 0-d float64 input; the LRs
    # must still change, to what the float path gives rounded to the LR's dtype
    opt = one_group(torch.tensor(0.1, dtype=dtype))
    scheduler = LossFeedbackScheduler(opt, capturable=True, fused=how.endswith("fused"))
    step = scheduler.step
    if how.startswith("caller-compiled"):
        step = torch.compile(scheduler.step, fullgraph=True, backend="aot_eager")
    on_floats = LossFeedbackScheduler(one_group(float(torch.tensor(0.1, dtype=dtype))))
    for value in [4.0, 2.0, 1.0]:
        step(torch.tensor(value))
        on_floats.step(value)
        expected = torch.tensor(on_floats.get_last_lr()[0], dtype=dtype)
        assert opt.param_groups[0]["lr"].dtype == dtype
        assert torch.equal(opt.param_groups[0]["lr"], expected), value


@needs_fused
@pytest.mark.usefixtures("fresh_dynamo")
def test_a_fused_step_that_would_compile_during_a_capture_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opt = one_group(torch.tensor(0.1))
    scheduler = LossFeedbackScheduler(opt, "seed", capturable=True, fused=True)
    untouched = scheduler.state_dict()
    with monkeypatch.context() as during_capture:
        during_capture.setattr("eve_scheduler.scheduler._capturing", lambda: True)
        with pytest.raises(RuntimeError, match=re.escape("Run scheduler.step(loss) once before")):
            scheduler.step(torch.tensor(2.0))  # the first step would compile
    assert_same_state(scheduler.state_dict(), untouched)  # nothing ran
    scheduler.step(torch.tensor(2.0))  # the warm-up compiles
    before = opt.param_groups[0]["lr"].item()
    with monkeypatch.context() as during_capture:
        during_capture.setattr("eve_scheduler.scheduler._capturing", lambda: True)
        scheduler.step(torch.tensor(1.0))  # compiled already: runs
        assert opt.param_groups[0]["lr"].item() != before
        other = LossFeedbackScheduler(one_group(torch.tensor(0.1)), "seed", beta=0.5)
        with pytest.warns(UserWarning, match=r"settings replace this scheduler's: beta=0\.5"):
            scheduler.load_state_dict(other.state_dict())  # other hyper-parameters
        loaded = scheduler.state_dict()
        with pytest.raises(RuntimeError, match="after a change of hyper-parameters"):
            scheduler.step(torch.tensor(1.0))
        assert_same_state(scheduler.state_dict(), loaded)


def test_fused_needs_capturable() -> None:
    with pytest.raises(ValueError, match=re.escape("pass both (capturable=True, fused=True)")):
        LossFeedbackScheduler(one_group(torch.tensor(0.1)), fused=True)


def test_fused_needs_a_torch_with_compile_stances(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.compiler, "set_stance", raising=False)  # absent before 2.6
    with pytest.raises(ValueError, match=re.escape("fused=True needs torch >= 2.6")):
        LossFeedbackScheduler(one_group(torch.tensor(0.1)), capturable=True, fused=True)
