"""Smoke tests: the GPU-overhead and torch.compile scripts run on the CPU and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gpu_overhead_script_runs_on_the_cpu() -> None:
    out = run("benchmarks/gpu_overhead.py", "--device", "cpu", "--quick")
    assert "| 256 x 2 |" in out


def test_compile_behaviour_script_reports_each_mode() -> None:
    out = run("benchmarks/compile_behaviour.py", "--backend", "aot_eager")
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert rows["capturable=True"].rstrip().endswith("| 0 | compiles |")
    assert "fails" in rows["lag=0 (default)"]
