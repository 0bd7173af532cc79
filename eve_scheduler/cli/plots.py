"""Figures written to PNG files, with matplotlib imported only when a plot is asked for.

The figures are built with ``matplotlib.figure.Figure`` directly, not pyplot, so no
GUI backend or global state is involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eve_scheduler.cli.options import CliError

MATPLOTLIB_MISSING = 'plotting needs matplotlib: pip install "eve-scheduler[demo]"'


def new_figure(rows: int, *, height: float) -> tuple[Any, list[Any]]:
    """A figure with ``rows`` stacked axes that share their x-axis.

    Raises:
        CliError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CliError(MATPLOTLIB_MISSING) from None
    figure = Figure(figsize=(8.0, height), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return figure, list(axes)


def save_figure(figure: Any, path: Path) -> None:
    """Write ``figure`` to ``path`` as PNG, creating missing parent folders.

    Raises:
        CliError: the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=100)
    except OSError as error:
        raise CliError(f"{path}: cannot write the plot ({error.strerror or error})") from None
