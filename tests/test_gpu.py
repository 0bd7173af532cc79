"""GPU behaviour: stepping on a CUDA loss without host-device synchronization.

These tests need CUDA and are skipped without it (CI has no GPU). They were
written without access to a GPU and have not been run yet (docs/gpu.md says so);
tests/test_capturable.py checks the device-tensor path on the CPU in CI.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from fused_support import OPS_AND_FUSED

from eve_scheduler import LossFeedbackScheduler

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def mlp(device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)).to(
        device
    )


def data(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 32, generator=g)
    return x.to(device), x.sum(dim=1, keepdim=True).to(device)


def optimizer(model: torch.nn.Module, tensor_lr: bool, kind: str) -> torch.optim.Optimizer:
    lr: float | torch.Tensor = torch.tensor(1e-3, device="cuda") if tensor_lr else 1e-3
    flags = {"capturable": {"capturable": True}, "fused": {"fused": True}}[kind]
    return torch.optim.AdamW(model.parameters(), lr=lr, **flags)  # type: ignore[arg-type]


def capture(train_step: Callable[[], torch.Tensor]) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Warm up on a side stream, as CUDA graphs require, then capture one step."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            train_step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = train_step()
    return graph, static_loss


def train_without_syncs(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    scheduler: LossFeedbackScheduler,
    steps: int,
    nan_at: int | None = None,
) -> None:
    """Warm up for 3 steps, then train ``steps`` steps with any host sync an error.

    The scheduler is fed a NaN instead of the loss at step ``nan_at``.
    """
    x, y = data("cuda")
    bad = torch.tensor(float("nan"), device="cuda")

    def step(feed_nan: bool) -> None:
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        scheduler.step(bad if feed_nan else loss)

    for _ in range(3):  # warm-up: allocator, pinned buffers, lazy CUDA state
        step(False)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for t in range(steps):
            step(t == nan_at)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@cuda
@pytest.mark.parametrize("rule", ["seed", "eve"])
@pytest.mark.parametrize(
    ("tensor_lr", "kind"), [(False, "fused"), (True, "capturable"), (True, "fused")]
)
def test_stepping_on_a_cuda_loss_never_syncs(rule: str, tensor_lr: bool, kind: str) -> None:
    model = mlp("cuda")
    opt = optimizer(model, tensor_lr, kind)
    lr_tensor = opt.param_groups[0]["lr"]
    scheduler = LossFeedbackScheduler(opt, rule=rule, lag=1)
    train_without_syncs(model, opt, scheduler, 300)
    if tensor_lr:
        assert opt.param_groups[0]["lr"] is lr_tensor
    assert scheduler.state.t == 302  # every loss but the one still queued was fed


@cuda
def test_cuda_losses_give_the_factors_of_the_float_path() -> None:
    model = mlp("cuda")
    x, y = data("cuda")
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    scheduler = LossFeedbackScheduler(opt, lag=1)
    losses = []
    for _ in range(100):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        scheduler.step(loss)
        losses.append(loss.detach())
    host = [float(v) for v in losses]
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    replay = LossFeedbackScheduler(opt2)
    for value in host[:-1]:  # the last loss is still queued in the lagged scheduler
        replay.step(value)
    assert scheduler.factor == replay.factor  # the same float64 arithmetic on the same values


@cuda
def test_a_cuda_graph_replay_follows_the_eager_lr_trajectory() -> None:
    model = mlp("cuda")
    x, y = data("cuda")
    opt = torch.optim.Adam(
        model.parameters(), lr=torch.tensor(1e-3, device="cuda"), capturable=True
    )
    scheduler = LossFeedbackScheduler(opt, lag=1)

    def train_step() -> torch.Tensor:
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    graph, static_loss = capture(train_step)

    lrs, losses = [], []
    for _ in range(50):
        lrs.append(float(opt.param_groups[0]["lr"]))  # the LR the replay will use
        graph.replay()
        scheduler.step(static_loss)  # reads the replay's loss one step later
        losses.append(float(static_loss))

    # Eager reference: the same losses through a host-side scheduler with the same lag.
    host_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    host = LossFeedbackScheduler(host_opt, lag=1)
    expected = []
    for loss in losses:
        expected.append(host_opt.param_groups[0]["lr"])
        host.step(loss)
    assert losses[-1] < losses[0]  # the replayed graph really trains
    assert lrs == pytest.approx(expected, rel=1e-6)  # the LR tensor is float32


def capturable_setup(
    rule: str, fused: bool
) -> tuple[torch.nn.Module, torch.optim.Optimizer, LossFeedbackScheduler]:
    model = mlp("cuda")
    opt = torch.optim.AdamW(
        model.parameters(), lr=torch.tensor(1e-3, device="cuda"), capturable=True
    )
    return model, opt, LossFeedbackScheduler(opt, rule=rule, capturable=True, fused=fused)


FUSED = pytest.mark.parametrize("fused", OPS_AND_FUSED)


@cuda
@FUSED
@pytest.mark.parametrize("rule", ["seed", "eve", "trend"])
def test_capturable_stepping_never_syncs(rule: str, fused: bool) -> None:
    model, opt, scheduler = capturable_setup(rule, fused)
    train_without_syncs(model, opt, scheduler, 300, nan_at=100)
    assert int(scheduler.state.t) == 302
    assert int(scheduler.skipped) == 1
    assert scheduler.last_epoch == 303


@cuda
@FUSED
@pytest.mark.parametrize("rule", ["seed", "eve", "trend"])
def test_a_captured_step_with_the_scheduler_follows_the_float_path(rule: str, fused: bool) -> None:
    model, opt, scheduler = capturable_setup(rule, fused)
    x, y = data("cuda")

    def train_step() -> torch.Tensor:
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        scheduler.step(loss)  # inside the graph
        return loss

    graph, static_loss = capture(train_step)

    before = scheduler.state_dict()  # the state the first replay starts from
    lrs, losses = [], []
    for _ in range(100):
        graph.replay()
        losses.append(float(static_loss))
        lrs.append(float(opt.param_groups[0]["lr"]))  # written by this replay's step(loss)

    host_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(1e-3))
    host = LossFeedbackScheduler(host_opt, rule=rule)
    host.load_state_dict(before)
    expected = []
    for loss in losses:
        host.step(loss)
        expected.append(float(host_opt.param_groups[0]["lr"]))
    assert losses[-1] < losses[0]  # the replayed graph really trains
    assert lrs == pytest.approx(expected, rel=1e-6)  # float32 LR tensors
    assert scheduler.last_epoch == before["last_epoch"] + 100  # counted on the device
