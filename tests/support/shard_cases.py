"""Task functions for the sharding tests: importable by Dask's worker processes."""
from __future__ import annotations

from pathlib import Path


def fail_once(i: int, marker: str) -> int:
    """Task ``i``: task 1 fails on its first attempt (leaving ``marker``), every task then returns ``10 i``."""
    if i == 1 and not Path(marker).exists():
        Path(marker).write_text("failed")
        raise RuntimeError("worker lost its simulator")
    return 10 * i


def fail_on_one(i: int) -> int:
    """Task ``i``: task 1 fails on every attempt."""
    if i == 1:
        raise RuntimeError("the simulator crashed\nwith a long log")
    return i
