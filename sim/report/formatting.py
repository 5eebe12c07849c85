"""Numbers, tables and paths as the report prints them.

Energies get the largest unit in which they are at least 1 (`energy_unit`),
numbers three significant digits and never an exponent (`significant`),
tables are Markdown (`markdown_table`), and paths inside the repository are
relative to it, so a report does not depend on where the checkout is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sim.report.paths import REPO

#: Engineering prefixes for picojoule values, smallest first.
ENERGY_UNITS = (("pJ", 1.0), ("nJ", 1e3), ("µJ", 1e6), ("mJ", 1e9), ("J", 1e12))


def energy_unit(max_pj: float) -> tuple[str, float]:
    """The largest unit in which ``max_pj`` is at least 1 (pJ for zero).

    Parameters
    ----------
    max_pj : float
        Largest value the unit must show, in picojoules.

    Returns
    -------
    (str, float)
        The unit's name and its size in picojoules.
    """
    chosen = ENERGY_UNITS[0]
    for unit in ENERGY_UNITS:
        if max_pj >= unit[1]:
            chosen = unit
    return chosen


def display_path(path: str) -> str:
    """``path`` relative to the repository if inside it (stable across checkouts), else as given."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(path)


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, never in exponent notation."""
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    if "e" in text:
        text = f"{value:,.0f}" if abs(value) >= 1 else f"{value:.{digits + 3}f}".rstrip("0")
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one of l/r per column (default: first l, rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
