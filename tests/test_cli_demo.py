"""``eve-scheduler demo``: short real runs, checked against the literal reference rules."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import reference
import torch

from eve_scheduler.cli import demo
from eve_scheduler.cli.main import main


def history(path: Path) -> dict[str, dict[str, list[float]]]:
    """The demo's history.csv as {run: {"lr": [...], "loss": [...]}}."""
    runs: dict[str, dict[str, list[float]]] = {}
    with path.open(newline="") as stream:
        for row in csv.DictReader(stream):
            run = runs.setdefault(row["run"], {"step": [], "lr": [], "loss": []})
            for name in ("step", "lr", "loss"):
                run[name].append(float(row[name]))
    return runs


def test_demo_trains_both_runs_and_reports_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = torch.get_num_threads()
    status = main(
        ["demo", "--steps", "40", "--batch-size", "32", "--lr", "0.01", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert torch.get_num_threads() == threads  # restored after training

    runs = history(tmp_path / "history.csv")
    assert sorted(runs) == ["EveCallback (seed)", "constant LR"]
    feedback, constant = runs["EveCallback (seed)"], runs["constant LR"]
    assert feedback["step"] == constant["step"] == [float(s) for s in range(1, 41)]
    assert constant["lr"] == [0.01] * 40
    # Same seed: same initial weights and first batch, so the same first loss.
    assert feedback["loss"][0] == constant["loss"][0]
    # The LR of each step is base x the factor after the losses of the steps before,
    # as the literal reference computes it from the recorded losses; 0.5 x base first.
    expected = reference.factors_before_each_loss(feedback["loss"], "seed")
    assert feedback["lr"][0] == 0.005
    assert feedback["lr"] == pytest.approx([0.01 * f for f in expected], rel=1e-9)

    table = out[out.index("run ") :].splitlines()
    assert re.split(r"\s{2,}", table[0]) == [
        "run",
        "final train loss",
        "test accuracy",
        "mean LR",
        "train time",
    ]
    mean_factor = sum(expected) / len(expected)
    assert table[2].startswith("EveCallback (seed)") and f"({mean_factor:.2f}x)" in table[2]
    assert table[3].startswith("constant LR") and "0.01 (1.00x)" in table[3]
    text = " ".join(out.split())  # the notes are wrapped
    first_last = f"to 0.50 x base at the first step and {expected[-1]:.2f} x base at the last"
    assert first_last in text
    assert "starts at 0.5: it only ever lowers the LR below base" in text
    assert f"Plot of loss and LR per step: {tmp_path / 'demo.png'}" in out

    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "demo.png").shape[:2] == (650, 800)


def test_demo_passes_rule_and_hyper_parameters_to_the_callback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = [
        "demo",
        "--rule",
        "eve",
        "-p",
        "beta3=0.5",
        "--steps",
        "12",
        "--out",
        str(tmp_path),
    ]
    assert main(arguments) == 0
    assert "EveCallback with eve(c=10, beta3=0.5, f_star=0)" in capsys.readouterr().out
    feedback = history(tmp_path / "history.csv")["EveCallback (eve)"]
    expected = reference.factors_before_each_loss(feedback["loss"], "eve", beta3=0.5)
    assert feedback["lr"] == pytest.approx([1e-3 * f for f in expected], rel=1e-9)
    assert max(expected) > 1.5  # beta3=0.5 makes the factor move: the option took effect


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--steps", "0"], "--steps must be at least 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--lr", "-1"], "--lr must be a positive float32 number, got -1.0"),
        (["--lr", "1e39"], "--lr must be a positive float32 number, got 1e+39"),
        (["--seed", "-1"], "--seed must be in [0, 2**32 - 1], got -1"),
        (["--seed", "4294967296"], "--seed must be in [0, 2**32 - 1], got 4294967296"),
        (["--hparam", "gamma=1"], "gamma must be in [0, 1), got gamma=1.0"),
    ],
)
def test_bad_options_fail_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    status = main(["demo", "--out", str(tmp_path / "out"), *arguments])
    captured = capsys.readouterr()
    assert (status, captured.out) == (2, "")
    assert captured.err == f"eve-scheduler demo: error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_missing_demo_extra_names_the_install_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "DEMO_PACKAGES", ("lightning", "a_package_that_is_not_there"))
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "eve-scheduler[demo]"' in err
    assert "(missing: a_package_that_is_not_there)" in err
    assert not (tmp_path / "out").exists()


def test_console_script_runs_the_demo(tmp_path: Path) -> None:
    script = shutil.which("eve-scheduler", path=str(Path(sys.executable).parent))
    assert script is not None, "the eve-scheduler console script is not installed"
    result = subprocess.run(
        [script, "demo", "--steps", "5", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"Plot of loss and LR per step: {tmp_path / 'demo.png'}" in result.stdout
    assert "Traceback" not in result.stderr
    assert (tmp_path / "demo.png").stat().st_size > 0
