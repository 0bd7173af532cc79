"""Training-step overhead of the scheduler on a GPU: none / ReduceLROnPlateau / ours.

Median milliseconds per training step of an MLP (batch 128, AdamW), all variants
in one process, interleaved in rounds. Each row is compared with the baseline
of its block, the same training step with no scheduler:

- eager, float LR (fused AdamW): ``none``; ``ReduceLROnPlateau.step(loss.item())``
  every step (one host sync); ours with ``lag=1`` (no host sync);
- eager, tensor LR (fused AdamW): ``none``; ours with ``capturable=True``, as
  separate tensor operations and with ``fused=True``;
- CUDA graph (capturable AdamW, tensor LR, the whole step captured and replayed):
  ``none``; ours with ``capturable=True`` and with ``capturable=True, fused=True``,
  its ``step(loss)`` captured in the same graph.

    python benchmarks/gpu_overhead.py                        # on CUDA
    python benchmarks/gpu_overhead.py --device cpu --quick   # smoke run: one size, few steps
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from eve_scheduler import LossFeedbackScheduler
from eve_scheduler.scheduler import fused_supported


class Variant(NamedTuple):
    block: str  # rows of a block are compared with the block's "none"
    scheduler: str  # "none", "plateau", "lag=1", "capturable" or "fused"


VARIANTS = [
    Variant("eager, float LR", "none"),
    Variant("eager, float LR", "plateau"),
    Variant("eager, float LR", "lag=1"),
    Variant("eager, tensor LR", "none"),
    Variant("eager, tensor LR", "capturable"),
    Variant("eager, tensor LR", "fused"),
    Variant("CUDA graph", "none"),
    Variant("CUDA graph", "capturable"),
    Variant("CUDA graph", "fused"),
]
LABELS = {
    "none": "no scheduler",
    "plateau": "ReduceLROnPlateau.step(loss.item())",
    "lag=1": "ours, lag=1",
    "capturable": "ours, capturable=True",
    "fused": "ours, capturable=True, fused=True",
}


def build(width: int, depth: int, device: str, variant: Variant) -> Callable[[], None]:
    """One training step of ``variant``, ready to run (captured, for the graph block)."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Linear(64, width), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1)).to(device)
    x = torch.randn(128, 64, device=device)
    y = torch.randn(128, 1, device=device)
    graph = variant.block == "CUDA graph"
    if variant.block == "eager, float LR":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device == "cuda")
    else:
        flags = {"capturable": True} if graph else {"fused": device == "cuda"}
        lr = torch.tensor(1e-3, device=device)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, **flags)  # type: ignore[arg-type]
    feed = feedback(opt, variant.scheduler)

    def train_step() -> None:
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        feed(loss)

    if not graph:
        return train_step
    stream = torch.cuda.Stream()  # warm up on a side stream, as CUDA graphs require
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            train_step()
    torch.cuda.current_stream().wait_stream(stream)
    cuda_graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cuda_graph):
        train_step()
    return cuda_graph.replay


def feedback(opt: torch.optim.Optimizer, scheduler: str) -> Callable[[torch.Tensor], None]:
    """What the training step does with its loss."""
    if scheduler == "none":
        return lambda loss: None
    if scheduler == "plateau":
        plateau = ReduceLROnPlateau(opt)
        return lambda loss: plateau.step(loss.item())
    if scheduler == "lag=1":
        return LossFeedbackScheduler(opt, lag=1).step
    fused = scheduler == "fused"
    return LossFeedbackScheduler(opt, capturable=True, fused=fused).step


def time_ms(run: Callable[[], None], steps: int, device: str) -> float:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    sync()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    device = args.device
    rounds, steps = (3, 20) if args.quick else (15, 200)
    variants = [v for v in VARIANTS if device == "cuda" or v.block != "CUDA graph"]
    if not fused_supported():
        print(f"torch {torch.__version__}: fused=True needs torch >= 2.6, its rows are left out")
        variants = [v for v in variants if v.scheduler != "fused"]
    if device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"median ms per training step, {rounds} rounds x {steps} steps, interleaved\n")
    print("| width x depth | step | scheduler | ms per step | ratio to no scheduler |")
    print("|---|---|---|---:|---:|")
    sizes = [(256, 2)] if args.quick else [(256, 2), (512, 4), (1024, 8)]
    for width, depth in sizes:
        runs = {v: build(width, depth, device, v) for v in variants}
        for run in runs.values():  # warm-up (fused=True compiles on its first step)
            time_ms(run, 10, device)
        times: dict[Variant, list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for v, run in runs.items():
                times[v].append(time_ms(run, steps, device))
        median = {v: statistics.median(values) for v, values in times.items()}
        for v in variants:
            ratio = median[v] / median[Variant(v.block, "none")]
            print(
                f"| {width} x {depth} | {v.block} | {LABELS[v.scheduler]} "
                f"| {median[v]:.3f} | {ratio:.3f}x |"
            )


if __name__ == "__main__":
    main()
