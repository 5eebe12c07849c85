"""Files the compiled simulations load at run time (``$readmemh``), and the order of the counters they report.

Shared by the Verilator harness (`sim.backends.verilator`) and the cocotb
testbenches (`sim.backends.cocotb`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from model.contract.counters import COUNTERS, RTL_COUNTERS

#: Longest file path (characters) a design takes in ``+vqe_dram=`` or ``+vqe_rom=``.
PLUSARG_PATH_CHARS = 4096
#: Fields of the top's ``counters`` port, field 0 first.
COUNTER_NAMES = tuple(COUNTERS) + tuple(RTL_COUNTERS)

#: Hex digits, for `write_image`.
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def write_image(path: Path, image) -> None:
    """Write ``image`` (uint32 words) as a ``$readmemh`` file: one 8-digit hex word per line."""
    b = np.ascontiguousarray(np.asarray(image, dtype=np.uint32).astype(">u4")).view(np.uint8).reshape(-1, 4)
    text = np.empty((len(b), 9), dtype=np.uint8)
    text[:, 0:8:2] = _HEX[b >> 4]
    text[:, 1:8:2] = _HEX[b & 15]
    text[:, 8] = ord("\n")
    Path(path).write_bytes(text.tobytes())
