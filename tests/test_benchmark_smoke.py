"""Smoke test: the training-quality benchmark runs end to end on a tiny grid.

One task (breast_cancer, full batch, so every run is deterministic), two
schedules, two LR multipliers, one seed, 30 steps: the command line writes its
JSON, CSV, markdown and plot, and the loss it reports for the constant-LR run
matches a training loop written out here independently of the harness.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("sklearn.datasets")
model_selection = pytest.importorskip("sklearn.model_selection")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
STEPS = 30
BASE_LR = 0.05  # breast_cancer's base LR in benchmarks/quality/tasks.py


def reference_final_loss(lr: float, steps: int, seed: int = 0) -> float:
    """Full-batch AdamW on standardized breast_cancer, written out literally."""
    cancer = datasets.load_breast_cancer()
    x_train, _, y_train, _ = model_selection.train_test_split(
        cancer.data, cancer.target, test_size=0.25, random_state=0, stratify=cancer.target
    )
    x = torch.tensor(x_train, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(y_train, dtype=torch.long)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(30, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(x), y))


@pytest.mark.slow
def test_quality_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "benchmarks.quality",
        "--tasks", "breast_cancer", "--schedules", "constant,seed", "--mults", "1,8",
        "--seeds", "1", "--steps", str(STEPS), "--workers", "1",
        "--out", str(tmp_path), "--name", "smoke",
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr

    runs = json.loads((tmp_path / "smoke.json").read_text())["runs"]
    assert [(r["schedule"], r["lr_mult"]) for r in runs] == [
        ("constant", 1.0),
        ("constant", 8.0),
        ("seed", 1.0),
        ("seed", 8.0),
    ]
    for run in runs:
        assert run["steps"] == STEPS and not run["diverged"]
        assert [at for at, _ in run["curve"]] == [10, 20, 30]  # measured every 10 steps
        # the last 5% of 30 steps hold one measurement (the curve is stored to 5 digits)
        assert run["final_loss"] == pytest.approx(run["curve"][-1][1], rel=1e-4)
        assert 0 < run["test_metric"] <= 1  # accuracy

    constant, seed = runs[0], runs[2]
    assert constant["final_loss"] == pytest.approx(reference_final_loss(BASE_LR, STEPS), rel=1e-4)
    assert constant["mean_lr_ratio"] == pytest.approx(1.0)
    assert 0 < seed["mean_lr_ratio"] < 1  # the seed rule only ever lowers the LR

    with (tmp_path / "smoke.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(math.isfinite(float(row["final_loss"])) for row in rows)
    tables = (tmp_path / "smoke.md").read_text()
    for expected in ("| constant |", "| seed |", "| 1x | 8x |", "Final training loss"):
        assert expected in tables
    assert (tmp_path / "smoke_final_loss.png").read_bytes()[:4] == b"\x89PNG"
