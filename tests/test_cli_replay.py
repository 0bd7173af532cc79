"""``eve-scheduler replay``: each input format, each option, and each kind of bad input.

Reference factors are worked by hand from the equations (short sequences) or come
from the slow literal reference in ``tests/reference.py`` (longer curves), never
from ``eve_scheduler.core``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import reference

from eve_scheduler.cli.main import main


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# The seed rule with its defaults (beta=0.9, gamma=0.99, k=1, eps=1e-8) on the
# losses 4, 2, 1, worked by hand:
#   t=1: r=1, d=1, v=0                                     factor = sigmoid(0) = 0.5
#   t=2: r=4/2=2, d=0.9*1+0.1*2=1.1, v=0.01*(2-1.1)^2=0.0081
#   t=3: r=2/1=2, d=0.9*1.1+0.1*2=1.19, v=0.99*0.0081+0.01*(2-1.19)^2=0.01458
SEED_4_2_1 = [
    0.5,
    sigmoid(0.1 / math.sqrt(0.0081 + 1e-8)),  # 0.75234
    sigmoid(0.19 / math.sqrt(0.01458 + 1e-8)),  # 0.82829
]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    status = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def column(rows: list[dict[str, str]], name: str) -> list[float]:
    return [float(row[name]) for row in rows]


# -- the formats ---------------------------------------------------------------------


def test_one_number_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("# losses of a run\n4\n\n2.0\n  1e0 \n")
    status, out, err = run(capsys, "replay", curve, "--lr", "0.1", "--csv", "-")
    assert (status, err) == (0, "")
    rows = csv_rows(out)
    assert [row["step"] for row in rows] == ["1", "2", "3"]
    assert column(rows, "loss") == [4.0, 2.0, 1.0]
    assert column(rows, "factor") == pytest.approx(SEED_4_2_1, rel=1e-12)
    assert column(rows, "lr") == pytest.approx([0.1 * f for f in SEED_4_2_1], rel=1e-12)
    assert column(rows, "d") == pytest.approx([1.0, 1.1, 1.19], rel=1e-12)
    assert column(rows, "v") == pytest.approx([0.0, 0.0081, 0.01458], rel=1e-12)


def test_sparse_csv_as_lightning_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # CSVLogger: one row per logging call, empty cells for metrics not logged in it.
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(
        "epoch,lr-Adam,step,train_loss,val_loss\n"
        ",0.001,0,,\n"
        "0,,0,4.0,\n"
        ",0.001,1,,\n"
        "0,,1,2.0,\n"
        "0,,1,,3.5\n"
        "1,,7,1.0,\n"
    )
    status, out, err = run(capsys, "replay", metrics, "--csv", "-")
    assert (status, err) == (0, "")
    rows = csv_rows(out)
    assert [row["step"] for row in rows] == ["0", "1", "7"]  # the file's step column
    assert column(rows, "factor") == pytest.approx(SEED_4_2_1, rel=1e-12)
    assert column(rows, "lr") == pytest.approx([1e-3 * f for f in SEED_4_2_1], rel=1e-12)

    status, out, _ = run(capsys, "replay", metrics, "--column", "val_loss", "--csv", "-")
    assert status == 0
    assert [(row["step"], row["loss"]) for row in csv_rows(out)] == [("1", "3.5")]


def test_real_csvlogger_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(tmp_path, name="run")
    for step, loss in enumerate([4.0, 2.0, 1.0]):
        logger.log_metrics({"lr-Adam": 0.01}, step=step)
        logger.log_metrics({"epoch": 0, "train_loss_step": loss}, step=step)
    logger.log_metrics({"epoch": 0, "val_loss": 9.0}, step=2)
    logger.save()
    metrics = Path(logger.log_dir) / "metrics.csv"
    # No train_loss column: the default falls back to train_loss_step.
    status, out, err = run(capsys, "replay", metrics, "--lr", "0.01", "--csv", "-")
    assert (status, err) == (0, "")
    rows = csv_rows(out)
    assert [row["step"] for row in rows] == ["0", "1", "2"]
    assert column(rows, "factor") == pytest.approx(SEED_4_2_1, rel=1e-12)


def test_csv_without_a_step_column_numbers_the_losses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    losses = tmp_path / "losses.csv"
    losses.write_text("loss\n4\n2\n1\n")
    status, out, _ = run(capsys, "replay", losses, "--csv", "-")
    assert status == 0
    assert [row["step"] for row in csv_rows(out)] == ["1", "2", "3"]


def noisy_descent(n: int) -> list[float]:
    rng = random.Random(7)
    return [2.0 * 0.99**t * (1.0 + 0.05 * rng.gauss(0.0, 1.0)) for t in range(n)]


def test_tensorboard_event_file_and_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    losses = noisy_descent(50)
    writer = SummaryWriter(tmp_path / "run")
    for step, loss in enumerate(losses):
        writer.add_scalar("train_loss", loss, step * 10)
        writer.add_scalar("lr", 0.1, step * 10)
    writer.close()
    (events,) = (tmp_path / "run").iterdir()
    assert "tfevents" in events.name
    renamed = tmp_path / "losses.bin"  # tensorboard itself reads only *tfevents* files
    renamed.write_bytes(events.read_bytes())
    # TensorBoard stores float32; the reference sees the same float32 values.
    stored = [float(numpy.float32(loss)) for loss in losses]
    expected = reference.factors(stored, "seed")
    for target, options in [
        (events, []),
        (tmp_path / "run", []),
        (renamed, ["--format", "tensorboard"]),
    ]:
        status, out, err = run(capsys, "replay", target, *options, "--csv", "-")
        assert (status, err) == (0, "")
        rows = csv_rows(out)
        assert [int(row["step"]) for row in rows] == [10 * t for t in range(50)]
        assert column(rows, "loss") == stored
        assert column(rows, "factor") == pytest.approx(expected, rel=1e-12)


def test_tensorboard_tensor_scalars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # TensorFlow 2 writes scalars as one-element tensors tagged with the "scalars" plugin.
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.types_pb2 import DT_DOUBLE, DT_STRING
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    scalars = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    writer = EventFileWriter(str(tmp_path))
    for step, loss in enumerate([4.0, 2.0, 1.0]):
        value = Summary.Value(
            tag="epoch_loss",
            metadata=scalars,
            tensor=TensorProto(dtype=DT_DOUBLE, double_val=[loss]),
        )
        text = Summary.Value(tag="notes", tensor=TensorProto(dtype=DT_STRING, string_val=[b"hi"]))
        writer.add_event(
            Event(step=step, wall_time=1.0 + step, summary=Summary(value=[value, text]))
        )
    writer.close()
    status, out, err = run(capsys, "replay", tmp_path, "--column", "epoch_loss", "--csv", "-")
    assert (status, err) == (0, "")
    assert column(csv_rows(out), "factor") == pytest.approx(SEED_4_2_1, rel=1e-12)
    # A text summary is not offered as a loss.
    status, _, err = run(capsys, "replay", tmp_path, "--column", "notes")
    assert status == 2
    assert "no scalar tag 'notes' (scalar tags: 'epoch_loss')" in err


# -- rules, hyper-parameters, skipped losses -------------------------------------------


def test_eve_rule_with_a_hyper_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("4\n3\n3.3\n")
    status, out, _ = run(capsys, "replay", curve, "--rule", "eve", "-p", "beta3=0.9", "--csv", "-")
    assert status == 0
    # eve, c=10, beta3=0.9, worked by hand:
    #   t=1: dtilde=1
    #   t=2: d=|3-4|/min(3,4)=1/3, dhat=1/3, dtilde=0.9*1+0.1/3=0.93333
    #   t=3: d=|3.3-3|/3=0.1, dhat=0.1, dtilde=0.9*0.93333+0.1*0.1=0.85
    dtilde = [1.0, 0.9 + 0.1 / 3, 0.9 * (0.9 + 0.1 / 3) + 0.01]
    rows = csv_rows(out)
    assert column(rows, "d_tilde") == pytest.approx(dtilde, rel=1e-12)
    assert column(rows, "factor") == pytest.approx([1 / x for x in dtilde], rel=1e-12)


def test_unusable_losses_are_skipped_as_the_scheduler_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("4\nnan\n2\ninf\n0\n1\n")
    status, out, _ = run(capsys, "replay", curve, "--csv", "-")
    assert status == 0
    rows = csv_rows(out)
    assert [row["skipped"] for row in rows] == ["0", "1", "0", "1", "1", "0"]
    a, b, c = SEED_4_2_1
    assert column(rows, "factor") == pytest.approx([a, a, b, b, b, c], rel=1e-12)
    status, out, _ = run(capsys, "replay", curve)
    assert "skipped: 3 (NaN, infinite, at or below f_star=0, or overflowing" in out


def test_f_star_moves_the_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("5\n3\n2\n1\n")  # with f_star=1: 4, 2, 1 above the bound; 1 is skipped
    status, out, _ = run(capsys, "replay", curve, "-p", "f_star=1", "--csv", "-")
    assert status == 0
    rows = csv_rows(out)
    assert column(rows, "factor") == pytest.approx([*SEED_4_2_1, SEED_4_2_1[-1]], rel=1e-12)
    assert rows[-1]["skipped"] == "1"


# -- the outputs -----------------------------------------------------------------------


def test_table_summary_csv_file_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curve = tmp_path / "curve.txt"
    losses = noisy_descent(10)
    curve.write_text("".join(f"{loss!r}\n" for loss in losses))
    out_csv, out_png = tmp_path / "out" / "replay.csv", tmp_path / "out" / "replay.png"
    status, out, err = run(
        capsys, "replay", curve, "--rows", "3", "--csv", out_csv, "--plot", out_png, "--lr", "2"
    )
    assert (status, err) == (0, "")
    assert f"Replayed 10 losses from the lines of {curve}" in out
    assert "seed(beta=0.9, gamma=0.99, k=1, eps=1e-08, f_star=0), base LR 2." in out
    lines = out.splitlines()
    header = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["step", "loss", "skipped"]
    )
    table = lines[header + 2 : header + 5]
    assert [line.split()[0] for line in table] == ["1", "5", "10"]  # evenly spaced, both ends
    assert lines[header + 5] == ""
    expected = reference.factors(losses, "seed")
    assert float(table[-1].split()[3]) == pytest.approx(expected[-1], rel=1e-5)
    assert f"CSV written to {out_csv}" in out and f"Plot written to {out_png}" in out

    rows = csv_rows(out_csv.read_text())
    assert column(rows, "loss") == losses  # full precision
    assert column(rows, "factor") == pytest.approx(expected, rel=1e-12)
    assert column(rows, "lr") == pytest.approx([2 * f for f in expected], rel=1e-12)

    import matplotlib.image

    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(out_png).shape[:2] == (600, 800)


def test_csv_on_stdout_keeps_the_notes_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("4\n2\n1\n")
    plot = tmp_path / "replay.png"
    status, out, err = run(capsys, "replay", curve, "--csv", "-", "--plot", plot)
    assert status == 0
    assert out.splitlines()[0] == "step,loss,skipped,factor,lr,d,v"
    assert len(out.splitlines()) == 4
    assert err == f"Plot written to {plot}\n"
    assert plot.exists()


def test_all_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("".join(f"{loss}\n" for loss in noisy_descent(30)))
    status, out, _ = run(capsys, "replay", curve, "--rows", "0")
    assert status == 0
    table = [line for line in out.splitlines() if line[:1].isdigit()]
    assert [int(line.split()[0]) for line in table] == list(range(1, 31))


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    from eve_scheduler import __version__

    assert run(capsys, "--version")[:2] == (0, f"eve-scheduler {__version__}\n")
    status, out, _ = run(capsys, "replay", "--help")
    assert status == 0 and "--column" in out and "--hparam" in out
    status, _, err = run(capsys)
    assert status == 2 and "COMMAND" in err


# -- bad input: exit status 2, one clear line on stderr, no traceback --------------------

BAD_FILES = [
    # (file name, content, extra arguments, what the message must say)
    ("curve.txt", "4\n2\nabc\n", [], ["curve.txt, line 3: 'abc' is not a number"]),
    (
        "curve.txt",
        "loss\n4\n",
        [],
        ["curve.txt, line 1: 'loss' is not a number (use --format csv for a CSV file)"],
    ),
    ("curve.txt", "4\n2 3\n", [], ["curve.txt, line 2: '2 3' is not a number"]),
    # a form feed is no line end: the line number counts newlines only
    ("curve.txt", "4\n2\x0c3\nabc\n", [], ["curve.txt, line 2: '2\\x0c3' is not a number"]),
    ("curve.txt", "", [], ["curve.txt: no losses found"]),
    ("curve.txt", "4\n", ["--column", "loss"], ["--column applies to CSV files"]),
    (
        "metrics.csv",
        "step,train_loss\n0,4\n1,oops\n",
        [],
        ["metrics.csv, line 3, column 'train_loss': 'oops' is not a number"],
    ),
    (
        "metrics.csv",
        "step,train_loss\n0,4\n1,2,9\n",
        [],
        ["metrics.csv, line 3: 3 fields, but the header has 2"],
    ),
    ("metrics.csv", 'step,train_loss\n0,4\n1,"2\n', [], ["metrics.csv, line 3: malformed CSV"]),
    (
        "metrics.csv",
        "step,train_loss\n0.5,4\n",
        [],
        ["metrics.csv, line 2, column 'step': '0.5' is not a whole number"],
    ),
    (
        "metrics.csv",
        "step,train_loss\n0,4\n",
        ["--column", "val_loss"],
        ["metrics.csv: no column 'val_loss' (columns: 'step', 'train_loss')"],
    ),
    (
        "metrics.csv",
        "step,val_acc\n0,0.5\n",
        [],
        ["no column named 'train_loss', 'train_loss_step', 'loss'", "choose one with --column"],
    ),
    ("metrics.csv", "", [], ["metrics.csv: the file is empty"]),
    ("metrics.csv", "step,train_loss\n0,\n", [], ["metrics.csv: no losses found"]),
    ("curve.bin", b"\xff\xfe\x00\x81", [], ["curve.bin: not a UTF-8 text file"]),
    ("run.tfevents.1", b"not an event file", [], ["run.tfevents.1: no scalar summaries"]),
]


@pytest.mark.parametrize(("name", "content", "extra", "messages"), BAD_FILES)
def test_bad_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes,
    extra: list[str],
    messages: list[str],
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    status, out, err = run(capsys, "replay", path, *extra)
    assert (status, out) == (2, "")
    assert err.startswith("eve-scheduler replay: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    for message in messages:
        assert message in err


def test_missing_file_and_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "replay", tmp_path / "nope.csv")
    assert status == 2 and f"{tmp_path / 'nope.csv'}: no such file or directory" in err
    status, _, err = run(capsys, "replay", tmp_path, "--format", "csv")
    assert status == 2 and "is a folder" in err
    status, _, err = run(capsys, "replay", tmp_path)  # a folder is read as TensorBoard logs
    assert status == 2 and "no TensorBoard event files (named *tfevents*) in this folder" in err


def test_two_runs_in_one_tensorboard_folder_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    for run_losses in [[4.0, 3.0, 2.0], [5.0, 4.0]]:  # two writers, steps from 0 each
        with SummaryWriter(tmp_path) as writer:
            for step, loss in enumerate(run_losses):
                writer.add_scalar("train_loss", loss, step)
    status, _, err = run(capsys, "replay", tmp_path)
    assert status == 2
    assert "the steps of tag 'train_loss' go back from 2 to 0" in err


def test_a_comment_line_does_not_make_a_csv_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("# losses, one per line\n4\n2\n")
    status, out, _ = run(capsys, "replay", curve, "--csv", "-")
    assert status == 0 and column(csv_rows(out), "loss") == [4.0, 2.0]


@pytest.mark.skipif(not Path("/dev/stdin").exists(), reason="needs /dev/stdin")
@pytest.mark.parametrize("content", ["4\n2\n1\n", "step,train_loss\n0,4\n1,2\n2,1\n"])
def test_a_pipe_is_read_once(content: str) -> None:
    # `cat curve | eve-scheduler replay /dev/stdin`: a pipe can be read only once
    result = subprocess.run(
        [sys.executable, "-m", "eve_scheduler", "replay", "/dev/stdin", "--csv", "-"],
        input=content,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert column(csv_rows(result.stdout), "loss") == [4.0, 2.0, 1.0]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_failed_write_to_stdout_is_an_error_without_a_traceback(tmp_path: Path) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("4\n2\n")
    with open("/dev/full", "w") as full:  # every write fails: no space left on device
        result = subprocess.run(
            [sys.executable, "-m", "eve_scheduler", "replay", str(curve), "--csv", "-"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr == ("eve-scheduler replay: error: [Errno 28] No space left on device\n")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_as_tensorboard_events_is_refused_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ["losses.pipe", "events.out.tfevents.pipe"]:  # with or without the alias
        pipe = tmp_path / name
        os.mkfifo(pipe)  # never opened: tensorboard needs a file it can seek in
        status, _, err = run(capsys, "replay", pipe, "--format", "tensorboard")
        assert status == 2
        assert err == (
            f"eve-scheduler replay: error: {pipe}: cannot read it (not a regular file or a "
            "folder)\n"
        )


def test_missing_tensorboard_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path) as writer:
        writer.add_scalar("loss/train", 1.0, 0)
    status, _, err = run(capsys, "replay", tmp_path)
    assert status == 2
    assert "no scalar tag named 'train_loss'" in err and "(scalar tags: 'loss/train')" in err
    status, out, _ = run(capsys, "replay", tmp_path, "--column", "loss/train")
    assert status == 0 and "Replayed 1 losses from tag 'loss/train'" in out


def test_without_tensorboard_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events.out.tfevents.1"
    events.write_bytes(b"")
    for name in [n for n in sys.modules if n == "tensorboard" or n.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    status, _, err = run(capsys, "replay", events)
    assert status == 2
    assert 'pip install "eve-scheduler[tensorboard]"' in err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--hparam", "beta=2"], "beta must be in [0, 1), got beta=2.0"),
        (["--hparam", "beta"], "--hparam 'beta': expected NAME=VALUE"),
        (["--hparam", "beta=fast"], "--hparam 'beta=fast': 'fast' is not a number"),
        (["--hparam", "c=5"], "unknown hyper-parameter(s) ['c'] for rule 'seed'"),
        (["--rule", "eve", "--hparam", "c=0.5"], "c must be in [1, inf), got c=0.5"),
        (["--lr", "0"], "--lr must be a positive number, got 0.0"),
        (["--lr", "nan"], "--lr must be a positive number, got nan"),
        (["--rows", "-1"], "--rows must be 0 (all) or more, got -1"),
        (["--rule", "adam"], "invalid choice: 'adam'"),
    ],
)
def test_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    curve = tmp_path / "curve.txt"
    curve.write_text("4\n2\n")
    status, out, err = run(capsys, "replay", curve, *arguments)
    assert (status, out) == (2, "")
    assert message in err and "Traceback" not in err


def test_python_dash_m_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eve_scheduler", "replay", str(tmp_path / "missing.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"eve-scheduler replay: error: {tmp_path / 'missing.txt'}: no such file or directory\n"
    )


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # `eve-scheduler replay FILE --csv - | head -1`: the reader leaves early.
    curve = tmp_path / "curve.txt"
    curve.write_text("".join(f"{loss!r}\n" for loss in noisy_descent(20_000)))
    process = subprocess.Popen(
        [sys.executable, "-m", "eve_scheduler", "replay", str(curve), "--csv", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == b"step,loss,skipped,factor,lr,d,v\n"
    process.stdout.close()
    assert process.wait(timeout=120) == 1
    assert process.stderr.read() == b""


def test_heavy_packages_are_imported_only_when_a_command_needs_them(tmp_path: Path) -> None:
    # The library never imports the command line; the command line imports Lightning,
    # scikit-learn, matplotlib and TensorBoard only inside the commands that use them.
    curve = tmp_path / "curve.txt"
    curve.write_text("4\n2\n1\n")
    script = f"""
import sys
import eve_scheduler
assert not [m for m in sys.modules if m.startswith("eve_scheduler.cli")]
from eve_scheduler.cli.main import main
assert main(["replay", {str(curve)!r}]) == 0
heavy = ("lightning", "pytorch_lightning", "sklearn", "matplotlib", "tensorboard")
print(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
