"""Per-call cost of ``LossFeedbackScheduler.step(loss)`` against ``ReduceLROnPlateau.step``.

Both schedulers are timed in the same process, interleaved in rounds, on the same
kind of optimizer; the ratio of medians is printed for a Python-float loss and a
CPU 0-d tensor loss, with 1 and 10 param groups.

A second table times the device path on CPU tensors for each rule, with one
tensor LR: ``capturable=True`` (separate tensor operations) and
``capturable=True, fused=True`` (one compiled kernel), against the default path
on the same optimizer.

    python benchmarks/step_cost.py            # full run
    python benchmarks/step_cost.py --quick    # fewer rounds
"""

from __future__ import annotations

import argparse
import platform
import statistics
import timeit
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from eve_scheduler import LossFeedbackScheduler


def make_optimizer(groups: int) -> torch.optim.Optimizer:
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1} for _ in range(groups)]
    return torch.optim.SGD(params, lr=0.1)


def per_call_us(step: Callable[[object], None], loss: object, number: int) -> float:
    return timeit.timeit(lambda: step(loss), number=number) / number * 1e6


def measure(groups: int, loss: object, rounds: int, number: int) -> tuple[float, float]:
    plateau = ReduceLROnPlateau(make_optimizer(groups), patience=10**9)
    feedback = LossFeedbackScheduler(make_optimizer(groups))
    ours, theirs = [], []
    for _ in range(rounds):  # interleaved, so drift in machine load hits both alike
        theirs.append(per_call_us(plateau.step, loss, number))
        ours.append(per_call_us(feedback.step, loss, number))
    return statistics.median(ours), statistics.median(theirs)


def device_path_table(rounds: int, number: int) -> None:
    """Per-call cost of the device path on CPU tensors, against the default path."""
    options = {
        "default": {},
        "capturable": {"capturable": True},
        "fused": {"capturable": True, "fused": True},
    }
    print(
        "\n| rule | default path (us) | capturable=True (us) | capturable=True, fused=True (us) "
        "| capturable / default | fused / default |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    loss = torch.tensor(0.5)
    for rule in ["seed", "eve", "trend"]:
        steps = {}
        for kind, kwargs in options.items():
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=torch.tensor(0.1))
            steps[kind] = LossFeedbackScheduler(opt, rule, **kwargs).step
            steps[kind](loss)  # fused=True compiles here
        times: dict[str, list[float]] = {kind: [] for kind in options}
        for _ in range(rounds):
            for kind, step in steps.items():
                times[kind].append(per_call_us(step, loss, number))
        med = {kind: statistics.median(values) for kind, values in times.items()}
        print(
            f"| {rule} | {med['default']:.1f} | {med['capturable']:.1f} | {med['fused']:.1f} "
            f"| {med['capturable'] / med['default']:.1f}x | {med['fused'] / med['default']:.1f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds, number = (5, 2_000) if args.quick else (21, 10_000)
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print(f"median of {rounds} rounds x {number} calls\n")
    print("| loss | param groups | ReduceLROnPlateau (us) | LossFeedbackScheduler (us) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, loss in [("float", 0.5), ("CPU 0-d tensor", torch.tensor(0.5))]:
        for groups in (1, 10):
            ours, theirs = measure(groups, loss, rounds, number)
            print(f"| {name} | {groups} | {theirs:.2f} | {ours:.2f} | {ours / theirs:.2f}x |")
    device_path_table(rounds, number // 20)


if __name__ == "__main__":
    main()
