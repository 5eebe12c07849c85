"""Running ``vqe`` from tests: in a fresh interpreter (:func:`vqe`; in-process it is the ``cli``
fixture of ``tests/conftest.py``), and the one-line error every bad input must give
(:func:`assert_user_error`)."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# --- helpers ----------------------------------------------------------------------------------
def vqe(*args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter, as a user would."""
    env = dict(os.environ)
    env.pop("VQE_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["VQE_CACHE"] = str(cwd / "cache")  # never train into, or read from, the user's cache
    return subprocess.run([sys.executable, "-m", "sim.cli.main", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def assert_user_error(res, *needles: str) -> str:
    """Exactly one ``vqe: error:`` line on stderr naming every needle, exit 1, no traceback."""
    everything = res.stdout + res.stderr
    assert "Traceback" not in everything, everything
    assert res.returncode == 1, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    line = lines[0]
    assert line.startswith("vqe: error: "), line
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    assert res.stdout == "", f"nothing belongs on stdout after an error, got {res.stdout!r}"
    return line
