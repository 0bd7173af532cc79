"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned.

    Example:
        >>> print(format_table(["run", "loss"], [["seed", "0.12"], ["constant", "0.5"]]))
        run       loss
        --------  ----
        seed      0.12
        constant   0.5
    """
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    dashes = ["-" * width for width in widths]
    return "\n".join(line(cells) for cells in [headers, dashes, *rows])
