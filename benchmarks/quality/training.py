"""One training run: a task, a schedule, an LR multiplier, a seed -> its measurements.

What is measured (the same for every schedule):

- ``curve``: the training loss of the current weights, measured every
  ``EVAL_EVERY`` steps on the whole training set (char_lm: a fixed subset of
  2,048 training windows), without dropout or other noise.
- ``final_loss``: the mean of ``curve`` over the last 5% of the steps.
- ``test_metric``: the task's test metric of the final weights.
- ``steps_to_target``: the first measured step whose training loss is at or
  below the task's target, or ``None`` if the run never gets there.
- ``diverged``: the minibatch loss or a measured loss became NaN or infinite; the
  run stops there and its final loss and test metric are ``None``.
- ``mean_lr_ratio``: the mean over steps of the applied LR / (multiplier x base LR),
  i.e. the average factor the schedule applied.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import torch
from torch import nn

from benchmarks.quality.schedules import build_schedule
from benchmarks.quality.tasks import TASKS, Data, Task, minibatches, steps_per_epoch

EVAL_EVERY = 10
FINAL_WINDOW = 0.05  # fraction of the run averaged into final_loss


@dataclass(frozen=True)
class RunSpec:
    """What identifies one run."""

    task: str
    schedule: str
    lr_mult: float
    seed: int
    steps: int | None = None  # None: the task's own number of steps


@cache
def task_data(name: str) -> Data:
    """Each task's data, loaded once per process."""
    return TASKS[name].load()


def measured_loss(task: Task, model: nn.Module, data: Data) -> float:
    """Training loss of the current weights on the evaluation part of the training set."""
    with torch.no_grad():
        return float(task.objective(model, data.x_eval, data.y_eval))


def run(spec: RunSpec) -> dict[str, Any]:
    """Train once and return the measurements as plain data (see the module docstring)."""
    torch.set_num_threads(1)
    task = TASKS[spec.task]
    data = task_data(spec.task)
    steps = spec.steps or task.steps
    torch.manual_seed(spec.seed)
    model = task.build_model(data)
    lr = task.base_lr * spec.lr_mult
    optimizer = task.build_optimizer(list(model.parameters()), lr)
    schedule = build_schedule(
        spec.schedule,
        optimizer,
        total_steps=steps,
        steps_per_epoch=steps_per_epoch(task, data),
    )
    batches = minibatches(data, task.batch_size, spec.seed)
    curve: list[tuple[int, float]] = []
    lr_sum = 0.0
    diverged_at: int | None = None
    started = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = next(batches)
        lr_sum += float(optimizer.param_groups[0]["lr"])
        loss = task.objective(model, x, y)
        value = loss.item()
        if not math.isfinite(value):
            diverged_at = step
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.after_step(value)
        if step % EVAL_EVERY == 0 or step == steps:
            measured = measured_loss(task, model, data)
            curve.append((step, measured))
            if not math.isfinite(measured):
                diverged_at = step
                break
    steps_done = step if diverged_at is None else diverged_at
    final_window = [
        loss for at, loss in curve if at > steps - max(EVAL_EVERY, FINAL_WINDOW * steps)
    ]
    diverged = diverged_at is not None
    reached = [at for at, loss in curve if loss <= task.target_loss]
    with torch.no_grad():
        test = None if diverged else task.test_metric(model, data.x_test, data.y_test)
    return {
        **asdict(spec),
        "steps": steps,
        "base_lr": task.base_lr,
        "lr": lr,
        "diverged": diverged,
        "diverged_at": diverged_at,
        "final_loss": None if diverged else sum(final_window) / len(final_window),
        "test_metric": test if test is None or math.isfinite(test) else None,
        "steps_to_target": reached[0] if reached else None,
        "target_loss": task.target_loss,
        "mean_lr_ratio": lr_sum / steps_done / lr,
        "final_lr_ratio": float(optimizer.param_groups[0]["lr"]) / lr,
        "skipped_losses": schedule.skipped_losses(),
        "seconds": time.perf_counter() - started,
        "curve": [(at, float(f"{loss:.5g}")) for at, loss in curve],
    }
