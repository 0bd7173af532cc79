"""The ``lag`` option: feedback read ``lag`` steps late, identical values, deterministic."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

import pytest
import torch
import torch._dynamo

from eve_scheduler import LossFeedbackScheduler
from eve_scheduler.losses import DeferredLosses, check_scalar, loss_to_float


def noisy_descent(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [2.0 * 0.995**t * math.exp(0.1 * rng.gauss(0.0, 1.0)) for t in range(n)]


def lr_trajectory(losses: list[object], lag: int, **options: object) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = LossFeedbackScheduler(opt, lag=lag, **options)  # type: ignore[arg-type]
    lrs = []
    for loss in losses:
        lrs.append(opt.param_groups[0]["lr"])
        scheduler.step(loss)
    return lrs


def test_queue_hands_back_each_loss_lag_pushes_later() -> None:
    queue = DeferredLosses(lag=3)
    out = [queue.push(x) for x in [1.0, 2.0, 3.0, 4.0, 5.0]]
    assert out == [None, None, None, 1.0, 2.0]
    assert queue.pending() == [3.0, 4.0, 5.0]


def test_lag_zero_reads_at_once() -> None:
    assert DeferredLosses(lag=0).push(torch.tensor(0.5)) == 0.5


@pytest.mark.parametrize("lag", [-1, 1.5, True, "2"])
def test_bad_lag_is_rejected(lag: object) -> None:
    with pytest.raises(ValueError, match="lag must be an integer in"):
        DeferredLosses(lag=lag)  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", ["seed", "eve"])
@pytest.mark.parametrize("lag", [1, 2, 5])
def test_lagged_trajectory_is_the_undeferred_one_shifted(rule: str, lag: int) -> None:
    losses = noisy_descent(300, seed=lag)
    plain = lr_trajectory(losses, lag=0, rule=rule)
    lagged = lr_trajectory([torch.tensor(x, dtype=torch.float64) for x in losses], lag, rule=rule)
    # The first lag + 1 steps run at the initial LR; after that, step t uses what
    # the undeferred scheduler used at step t - lag, bit for bit.
    assert lagged[: lag + 1] == [plain[0]] * (lag + 1)
    assert lagged[lag:] == plain[: len(plain) - lag]


def test_lagged_trajectory_is_deterministic() -> None:
    losses = [torch.tensor(x) for x in noisy_descent(200, seed=7)]
    assert lr_trajectory(losses, lag=2) == lr_trajectory(losses, lag=2)


def test_a_non_scalar_is_refused_at_once_even_when_lagged() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = LossFeedbackScheduler(opt, lag=3)
    with pytest.raises(ValueError, match="scalar"):
        scheduler.step(torch.ones(3))
    with pytest.raises(TypeError, match="real scalar"):
        scheduler.step("0.5")
    assert scheduler.last_epoch == 0


def test_a_bad_loss_is_skipped_when_it_is_read() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = LossFeedbackScheduler(opt, lag=1)
    scheduler.step(2.0)
    scheduler.step(math.nan)  # read at the next step
    assert scheduler.skipped == 0
    with pytest.warns(RuntimeWarning, match="not finite"):
        scheduler.step(1.0)
    assert scheduler.skipped == 1
    assert scheduler.state.t == 1  # only the loss 2.0 entered the rule


def test_pending_losses_survive_a_checkpoint_bit_for_bit(tmp_path: object) -> None:
    losses = noisy_descent(400, seed=3)
    reference = lr_trajectory(losses, lag=3)

    def fresh() -> tuple[torch.optim.Optimizer, LossFeedbackScheduler]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, LossFeedbackScheduler(opt, lag=3)

    opt, scheduler = fresh()
    lrs = []
    for t, loss in enumerate(losses):
        if t == 157:  # stop with three losses still queued
            path = f"{tmp_path}/ckpt.pt"
            torch.save({"opt": opt.state_dict(), "sched": scheduler.state_dict()}, path)
            saved = torch.load(path, weights_only=True)
            opt, scheduler = fresh()
            opt.load_state_dict(saved["opt"])
            scheduler.load_state_dict(saved["sched"])
        lrs.append(opt.param_groups[0]["lr"])
        scheduler.step(torch.tensor(loss, dtype=torch.float64))
    assert lrs == reference


def test_loading_a_state_with_another_lag_is_refused() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    state = LossFeedbackScheduler(opt, lag=2).state_dict()
    with pytest.raises(ValueError, match="lag=2"):
        LossFeedbackScheduler(opt, lag=1).load_state_dict(state)


@pytest.mark.parametrize(
    "loss", [0.5, 1, torch.tensor(0.5, dtype=torch.float16), torch.tensor([0.5]), torch.tensor(2)]
)
def test_check_scalar_accepts_real_scalars(loss: object) -> None:
    check_scalar(loss)
    assert loss_to_float(loss) == float(loss)  # type: ignore[arg-type]


@pytest.mark.parametrize("loss", [True, torch.tensor(True), torch.tensor(1j), None, [0.5]])
def test_check_scalar_refuses_non_reals(loss: object) -> None:
    with pytest.raises(TypeError):
        check_scalar(loss)


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    """No compiled code or cache entries from other tests, before or after."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def one_parameter_sgd() -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def compiled_training_step(scheduler: LossFeedbackScheduler) -> Callable[[float], torch.Tensor]:
    """A compiled step that computes the loss ``value`` in its graph and feeds it."""

    def train_step(x: torch.Tensor) -> torch.Tensor:
        loss = (x * x).sum()
        scheduler.step(loss)
        return loss

    compiled = torch.compile(train_step, backend="aot_eager")
    return lambda value: compiled(torch.tensor([math.sqrt(value)]))


@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("lag", [0, 1])
def test_inside_a_compiled_step_the_host_path_runs_eagerly_and_never_recompiles(
    lag: int,
) -> None:
    opt, eager_opt = one_parameter_sgd(), one_parameter_sgd()
    scheduler = LossFeedbackScheduler(opt, lag=lag)
    eager = LossFeedbackScheduler(eager_opt, lag=lag)
    train_step = compiled_training_step(scheduler)
    eager.step(train_step(4.0))  # compiles
    # Dynamo would otherwise specialize on the rule's float state (and the step count)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for value in noisy_descent(30, seed=3):
            eager.step(train_step(value))
            assert opt.param_groups[0]["lr"] == eager_opt.param_groups[0]["lr"]
    assert scheduler.state_dict() == eager.state_dict()
    assert scheduler.state.t == 31 - lag


class CountingScheduler(LossFeedbackScheduler):
    """A subclass whose ``step`` does more than its parent's (counts, shifts the loss)."""

    calls = 0

    def step(self, loss: object = None, epoch: None = None) -> None:
        self.calls += 1
        super().step(loss + 1.0)  # type: ignore[operator]


@pytest.mark.usefixtures("fresh_dynamo")
def test_inside_a_compiled_step_a_subclass_step_runs_once() -> None:
    opt, eager_opt = one_parameter_sgd(), one_parameter_sgd()
    scheduler, eager = CountingScheduler(opt), CountingScheduler(eager_opt)
    train_step = compiled_training_step(scheduler)
    for value in noisy_descent(10, seed=4):
        eager.step(train_step(value))
        assert opt.param_groups[0]["lr"] == eager_opt.param_groups[0]["lr"]
    assert scheduler.calls == eager.calls == 10
    assert scheduler.state_dict() == eager.state_dict()


@pytest.mark.usefixtures("fresh_dynamo")
def test_eager_code_that_runs_while_dynamo_compiles_steps_as_usual() -> None:
    # A compiler backend runs while Dynamo compiles, outside its tracing (as another
    # thread's eager code would): there, step is the plain eager step.
    scheduler = LossFeedbackScheduler(one_parameter_sgd())

    def backend(graph: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> object:
        scheduler.step(2.0)
        scheduler.step(1.0)
        return graph.forward

    torch.compile(lambda x: x + 1, backend=backend)(torch.ones(1))
    assert scheduler.state.t == 2 and scheduler.last_epoch == 2
