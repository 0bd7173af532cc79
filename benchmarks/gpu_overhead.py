"""Training-step overhead of the scheduler on a GPU: none / ReduceLROnPlateau / ours.

Median milliseconds per training step of an MLP (batch 128, AdamW), all variants
in one process, interleaved in rounds:

- ``none``: no scheduler;
- ``plateau``: ``ReduceLROnPlateau.step(loss.item())`` every step (one host sync);
- ``ours eager``: ``LossFeedbackScheduler(opt, lag=1).step(loss)`` (no host sync);
- ``none, graph`` / ``ours, graph``: the whole step captured in a CUDA graph
  (capturable AdamW, tensor LR) and replayed; ours is
  ``LossFeedbackScheduler(opt, capturable=True).step(loss)`` captured in the same
  graph, so a replay runs the feedback on the device and writes the LR tensor.

    python benchmarks/gpu_overhead.py                  # on CUDA
    python benchmarks/gpu_overhead.py --device cpu --quick   # smoke run: one size, few steps
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from eve_scheduler import LossFeedbackScheduler


def build(
    width: int, depth: int, device: str, graph: bool, feedback: bool
) -> tuple[Callable[[], torch.Tensor], torch.optim.Optimizer]:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Linear(64, width), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1)).to(device)
    x = torch.randn(128, 64, device=device)
    y = torch.randn(128, 1, device=device)
    if graph:
        opt = torch.optim.AdamW(
            model.parameters(), lr=torch.tensor(1e-3, device=device), capturable=True
        )
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device == "cuda")
    scheduler = LossFeedbackScheduler(opt, capturable=True) if graph and feedback else None

    def train_step() -> torch.Tensor:
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step(loss)
        return loss

    if not graph:
        return train_step, opt
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            train_step()
    torch.cuda.current_stream().wait_stream(stream)
    cuda_graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cuda_graph):
        static_loss = train_step()

    def replay() -> torch.Tensor:
        cuda_graph.replay()
        return static_loss

    return replay, opt


def variant(name: str, width: int, depth: int, device: str) -> Callable[[], None]:
    graph = name.endswith("graph")
    step, opt = build(width, depth, device, graph, feedback=name.startswith("ours"))
    if name.startswith("none") or graph:

        def plain() -> None:
            step()

        return plain
    if name == "plateau":
        plateau = ReduceLROnPlateau(opt)
        return lambda: plateau.step(step().item())
    feedback = LossFeedbackScheduler(opt, lag=1)
    return lambda: feedback.step(step())


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
    names = ["none", "plateau", "ours eager"]
    if device == "cuda":
        names += ["none, graph", "ours, graph"]
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"median ms per training step, {rounds} rounds x {steps} steps\n")
    print("| width x depth | " + " | ".join(names) + " | eager ratio | graph ratio |")
    print("|---|" + "---:|" * (len(names) + 2))
    sizes = [(256, 2)] if args.quick else [(256, 2), (512, 4), (1024, 8)]
    for width, depth in sizes:
        runs = {name: variant(name, width, depth, device) for name in names}
        for run in runs.values():  # warm-up
            time_ms(run, 10, device)
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(rounds):
            for name, run in runs.items():
                times[name].append(time_ms(run, steps, device))
        med = {name: statistics.median(values) for name, values in times.items()}
        eager = med["ours eager"] / med["none"]
        graph = med["ours, graph"] / med["none, graph"] if device == "cuda" else float("nan")
        cells = " | ".join(f"{med[n]:.3f}" for n in names)
        print(f"| {width} x {depth} | {cells} | {eager:.3f}x | {graph:.3f}x |")


if __name__ == "__main__":
    main()
