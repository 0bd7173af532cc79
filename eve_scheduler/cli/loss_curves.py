"""Reading a recorded loss curve: a CSV file, one number per line, or TensorBoard events.

* CSV, as Lightning's ``CSVLogger`` writes ``metrics.csv``: a header row, then one
  row per logging call. Its rows are sparse (a row that logs ``val_loss`` leaves
  ``train_loss`` empty), so rows where the chosen column is empty are skipped.
  The ``step`` column, when there is one, gives each loss its step.
* One number per line; blank lines and lines starting with ``#`` are skipped.
* TensorBoard event files (an events file, or the folder that holds them), read
  with the optional ``tensorboard`` package.

Values that parse as numbers but are not usable losses (``nan``, ``inf``, zero or
negative) are kept: replaying them shows that the scheduler would skip them.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eve_scheduler.cli.options import CliError

FORMATS = ("auto", "csv", "lines", "tensorboard")
DEFAULT_COLUMNS = ("train_loss", "train_loss_step", "loss")
TENSORBOARD_MISSING = (
    "reading TensorBoard event files needs the tensorboard package: "
    'pip install "eve-scheduler[tensorboard]"'
)


@dataclass(frozen=True)
class LossCurve:
    """The losses of a recorded run, in the order they were logged.

    Attributes:
        steps: the step of each loss: the file's ``step`` column or event step,
            else its position (1, 2, ...).
        losses: the losses, as floats (``nan`` and ``inf`` included).
        source: where they came from, e.g. ``column 'train_loss' of metrics.csv``.
    """

    steps: list[int]
    losses: list[float]
    source: str


def read_loss_curve(
    path: Path, *, column: str | None = None, file_format: str = "auto"
) -> LossCurve:
    """Read the losses of ``path`` in the given format (``auto`` guesses it).

    Args:
        path: a CSV file, a one-number-per-line file, a TensorBoard events file or
            a folder of them.
        column: the CSV column or TensorBoard tag; by default the first of
            ``train_loss``, ``train_loss_step``, ``loss`` that exists.
        file_format: one of ``auto``, ``csv``, ``lines``, ``tensorboard``.

    Raises:
        CliError: the file is missing, unreadable or malformed, has no such column,
            holds a value that is not a number, or holds no losses at all.
    """
    if file_format not in FORMATS:
        raise CliError(f"format must be one of {list(FORMATS)}, got {file_format!r}")
    if not path.exists():
        raise CliError(f"{path}: no such file or directory")
    if file_format == "auto" and (path.is_dir() or "tfevents" in path.name):
        file_format = "tensorboard"
    if file_format == "tensorboard":
        curve = _read_tensorboard(path, column)
    elif path.is_dir():
        raise CliError(f"{path}: is a folder; give a file (or --format tensorboard)")
    else:
        text = _read_text(path)  # once: a pipe cannot be read twice
        if file_format == "auto":
            file_format = _guess_format(path, text)
        if file_format == "csv":
            curve = _read_csv(path, text, column)
        elif column is not None:
            raise CliError(
                f"{path}: --column applies to CSV files and TensorBoard tags, not to a "
                "one-number-per-line file (use --format csv if this is a CSV file)"
            )
        else:
            curve = _read_lines(path, text)
    if not curve.losses:
        raise CliError(f"{path}: no losses found ({curve.source} is empty)")
    return curve


def _guess_format(path: Path, text: str) -> str:
    """``csv`` for a ``.csv`` file or one whose first line (not a comment) has a comma."""
    if path.suffix.lower() == ".csv":
        return "csv"
    lines = (line.strip() for line in text.split("\n"))
    first = next((line for line in lines if line and not line.startswith("#")), "")
    return "csv" if "," in first else "lines"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise CliError(
            f"{path}: not a UTF-8 text file (byte {error.start}); "
            "TensorBoard event files need 'tfevents' in their name or --format tensorboard"
        ) from None
    except OSError as error:
        raise CliError(f"{path}: cannot read it ({error.strerror})") from None


def _parse_float(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CliError(f"{where}: {text!r} is not a number") from None


def _read_lines(path: Path, text: str) -> LossCurve:
    losses: list[float] = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: \f is no line end
        value = line.strip()
        if not value or value.startswith("#"):
            continue
        try:
            losses.append(float(value))
        except ValueError:
            header_or_csv = not losses or "," in value
            hint = " (use --format csv for a CSV file)" if header_or_csv else ""
            raise CliError(f"{path}, line {number}: {value!r} is not a number{hint}") from None
    return LossCurve(list(range(1, len(losses) + 1)), losses, f"the lines of {path}")


def _read_csv(path: Path, text: str, column: str | None) -> LossCurve:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = _csv_rows(reader, path)
    header = next(rows, None)
    if header is None:
        raise CliError(f"{path}: the file is empty (a CSV file needs a header row)")
    names = [name.strip() for name in header]
    name = _choose(column, names, f"{path}: no column", "columns")
    index = names.index(name)
    step_index = names.index("step") if "step" in names and name != "step" else None
    steps: list[int] = []
    losses: list[float] = []
    for row in rows:
        where = f"{path}, line {reader.line_num}"
        if not row:
            continue
        if len(row) != len(names):
            raise CliError(f"{where}: {len(row)} fields, but the header has {len(names)}")
        value = row[index].strip()
        if not value:
            continue  # sparse rows: this row logged other metrics
        losses.append(_parse_float(value, f"{where}, column {name!r}"))
        step = row[step_index].strip() if step_index is not None else ""
        steps.append(_parse_step(step, f"{where}, column 'step'") if step else len(losses))
    return LossCurve(steps, losses, f"column {name!r} of {path}")


def _csv_rows(reader: Any, path: Path) -> Iterator[list[str]]:
    """The reader's rows, with the csv module's errors turned into a CliError."""
    try:
        yield from reader
    except csv.Error as error:
        raise CliError(f"{path}, line {reader.line_num}: malformed CSV ({error})") from None


def _parse_step(text: str, where: str) -> int:
    value = _parse_float(text, where)
    if not value.is_integer():
        raise CliError(f"{where}: {text!r} is not a whole number")
    return int(value)


def _choose(requested: str | None, available: list[str], missing: str, kind: str) -> str:
    """The requested column or tag, or the first default one that exists."""
    shown = ", ".join(repr(name) for name in available) or "none"
    if requested is not None:
        if requested not in available:
            raise CliError(f"{missing} {requested!r} ({kind}: {shown})")
        return requested
    for name in DEFAULT_COLUMNS:
        if name in available:
            return name
    defaults = ", ".join(repr(name) for name in DEFAULT_COLUMNS)
    raise CliError(f"{missing} named {defaults} ({kind}: {shown}); choose one with --column")


def _read_tensorboard(path: Path, tag: str | None) -> LossCurve:
    try:
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.util import tensor_util
    except ImportError:
        raise CliError(f"{path}: {TENSORBOARD_MISSING}") from None
    if not path.is_dir() and not path.is_file():  # tensorboard would block on a pipe
        raise CliError(f"{path}: cannot read it (not a regular file or a folder)")
    if path.is_dir() and not any("tfevents" in child.name for child in path.iterdir()):
        raise CliError(
            f"{path}: no TensorBoard event files (named *tfevents*) in this folder; "
            "give the folder of one run (e.g. lightning_logs/version_0) or its events file"
        )
    with tempfile.TemporaryDirectory() as folder:
        source = path
        if not path.is_dir() and "tfevents" not in path.name:
            # tensorboard reads a file as events only if its name says so: give it an alias
            source = Path(folder) / f"events.out.tfevents.{path.name}"
            try:
                shutil.copyfile(path, source)
            except OSError as error:  # no room for the copy, say
                raise CliError(f"{path}: cannot read it ({error.strerror or error})") from None
        accumulator = event_accumulator.EventAccumulator(
            str(source), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0}
        )
        try:
            accumulator.Reload()
        except Exception as error:  # tensorboard raises several kinds on a damaged file
            raise CliError(f"{path}: not a readable TensorBoard event file ({error})") from None
    tags = accumulator.Tags()
    scalars = list(tags["scalars"])  # written by torch's SummaryWriter, tensorboardX
    try:  # TensorFlow 2 writes scalars as tensors tagged with the "scalars" plugin
        scalar_tensors = accumulator.PluginTagToContent("scalars")
    except KeyError:
        scalar_tensors = {}
    tensors = [tag for tag in tags["tensors"] if tag in scalar_tensors]
    if not scalars and not tensors:
        raise CliError(f"{path}: no scalar summaries (an empty or damaged TensorBoard event file?)")
    name = _choose(tag, scalars + tensors, f"{path}: no scalar tag", "scalar tags")
    if name in scalars:
        events = accumulator.Scalars(name)
        steps = [event.step for event in events]
        losses = [float(event.value) for event in events]
    else:
        steps, losses = [], []
        for event in accumulator.Tensors(name):
            value = tensor_util.make_ndarray(event.tensor_proto)
            if value.size != 1:
                raise CliError(
                    f"{path}, step {event.step}: tag {name!r} holds a tensor of shape "
                    f"{tuple(value.shape)}, not a scalar"
                )
            steps.append(event.step)
            losses.append(float(value.item()))
    back = next((i for i in range(1, len(steps)) if steps[i] < steps[i - 1]), None)
    if back is not None:
        raise CliError(
            f"{path}: the steps of tag {name!r} go back from {steps[back - 1]} to "
            f"{steps[back]}: several runs written to one folder? Give one events file"
        )
    return LossCurve(steps, losses, f"tag {name!r} of {path}")
