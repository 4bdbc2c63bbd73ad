"""Plain-text tables for the end of a run: every recipe prints its held-out results through ``table``."""

from __future__ import annotations

from typing import Iterable, Sequence


def table(columns: dict[str, str], rows: Iterable[Sequence]) -> str:
    """A fixed-width text table.

    Args:
        columns: ``{title: format spec}`` in column order, e.g. ``{"subset": "", "n": "d", "accuracy": ".4f"}``; a
            cell of ``None`` prints blank.
        rows: one sequence of cell values per row, in column order.

    Returns:
        The title line and one line per row; the first column left-aligned, the others right-aligned, each column as
        wide as its widest cell.
    """
    titles, specs = list(columns), list(columns.values())
    cells = [["" if v is None else format(v, spec) for v, spec in zip(row, specs, strict=True)] for row in rows]
    widths = [max([len(title)] + [len(row[i]) for row in cells]) for i, title in enumerate(titles)]

    def line(values):
        return " ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join(line(values) for values in [titles, *cells])
