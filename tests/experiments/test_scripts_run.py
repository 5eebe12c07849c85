"""Every experiment module still imports, and every driver among them starts: ``--help`` explains it."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (REPO / "scripts" / "experiments").glob("*.py") if p.name != "__init__.py")


def test_the_drivers_are_found():
    assert {p.stem for p in SCRIPTS} >= {"pvq", "universal", "universal_table", "fuzz_sparse", "deepcomp_engine"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_driver_help(script):
    module = f"scripts.experiments.{script.stem}"
    if '__name__ == "__main__"' not in script.read_text():   # a library of the drivers: it must import
        args = ["-c", f"import {module}"]
    else:
        args = ["-m", module, "--help"]
    res = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    if args[0] == "-m":
        assert res.stdout.lower().startswith("usage:"), res.stdout[:500]
