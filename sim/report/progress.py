"""What ``vqe report`` tells the user while it works: one line per step on stderr."""
from __future__ import annotations

import sys


def log(msg: str) -> None:
    """Print ``vqe report: msg`` on stderr."""
    print(f"vqe report: {msg}", file=sys.stderr)
