"""What torch.compile does with a training step that calls ``scheduler.step(loss)``.

For each way of stepping the scheduler, compiles a whole training step (forward,
backward, optimizer step, ``scheduler.step(loss)``) with ``torch.compile`` and
reports, over 30 steps, the graphs compiled at the first step, the graph breaks,
and the graphs compiled after the first step (recompiles); then whether
``scheduler.step(loss)`` alone compiles with ``fullgraph=True`` (30 calls):

    python benchmarks/compile_behaviour.py              # CPU, inductor (needs a C++ compiler)
    python benchmarks/compile_behaviour.py --backend aot_eager
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
import torch._dynamo
from torch._dynamo.utils import counters

from eve_scheduler import LossFeedbackScheduler

MODES: dict[str, dict[str, Any]] = {
    "lag=0 (default)": {"lag": 0},
    "lag=1": {"lag": 1},
    "capturable=True": {"capturable": True},
    "capturable=True, trend": {"capturable": True, "rule": "trend"},
}


def training_step(
    options: dict[str, Any] | None, float_lr: bool = False
) -> Callable[[], torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    x = torch.randn(64, 16)
    y = x.sum(dim=1, keepdim=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01 if float_lr else torch.tensor(0.01))
    scheduler = None if options is None else LossFeedbackScheduler(opt, **options)

    def step() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step(loss)
        return loss

    return step


def behaviour(
    options: dict[str, Any] | None, backend: str, float_lr: bool = False
) -> tuple[int, int, int]:
    """Graphs at the first step, graph breaks, and graphs compiled after it (30 steps)."""
    torch._dynamo.reset()
    counters.clear()
    step = torch.compile(training_step(options, float_lr), backend=backend)
    step()
    first = counters["stats"]["unique_graphs"]
    for _ in range(29):
        step()
    breaks = sum(counters["graph_break"].values())
    recompiles = counters["stats"]["unique_graphs"] - first
    torch._dynamo.reset()
    return first, breaks, recompiles


def fullgraph_outcome(options: dict[str, Any], backend: str) -> str:
    """Whether ``scheduler.step(loss)`` alone compiles with ``fullgraph=True``."""
    torch._dynamo.reset()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.01))
    scheduler = LossFeedbackScheduler(opt, **options)
    step = torch.compile(scheduler.step, backend=backend, fullgraph=True)
    try:
        for t in range(30):
            step(torch.tensor(2.0 * 0.99**t))
        outcome = "compiles"
    except Exception as error:  # report what Dynamo says, whatever it is
        outcome = f"fails ({type(error).__name__})"
    torch._dynamo.reset()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="inductor")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, backend {args.backend}, 30 training steps\n")
    print("| in the compiled training step | graphs | graph breaks | recompiles |", end="")
    print(" `step(loss)` alone, fullgraph=True |")
    print("|---|---:|---:|---:|---|")
    graphs, breaks, recompiles = behaviour(None, args.backend)
    print(f"| no scheduler | {graphs} | {breaks} | {recompiles} | - |")
    for name, options in MODES.items():
        graphs, breaks, recompiles = behaviour(options, args.backend)
        outcome = fullgraph_outcome(options, args.backend)
        print(f"| {name} | {graphs} | {breaks} | {recompiles} | {outcome} |")
    print("\nThe same with a float LR (SGD's default), which the compiled optimizer step")
    print("guards on: every change of the LR recompiles it, up to Dynamo's recompile limit.\n")
    print("| in the compiled training step | graphs | graph breaks | recompiles |")
    print("|---|---:|---:|---:|")
    for name, float_options in {"no scheduler": None, "lag=0 (default)": {"lag": 0}}.items():
        graphs, breaks, recompiles = behaviour(float_options, args.backend, float_lr=True)
        print(f"| {name}, float LR | {graphs} | {breaks} | {recompiles} |")


if __name__ == "__main__":
    main()
