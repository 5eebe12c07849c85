"""Shared pytest setup: the environment every test runs in, markers and fixtures."""
import os
from pathlib import Path

import pytest

# Amaranth must use its bundled (WASM) Yosys, never an older or newer system one.
os.environ["AMARANTH_USE_YOSYS"] = "builtin"
# Nothing may be fetched from a model hub at run time.
os.environ["HF_HUB_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


@pytest.fixture(scope="session")
def cocotb_build_root(tmp_path_factory) -> Path:
    """Where cocotb simulation builds go.

    Builds are named by a hash of everything that goes into them, so they are kept
    across test sessions in ``build/test-cocotb`` (a Verilator build takes 10-60 s).
    ``VQE_FRESH_BUILDS=1`` uses a new temporary directory instead.
    """
    if os.environ.get("VQE_FRESH_BUILDS", "") not in ("", "0"):
        return tmp_path_factory.mktemp("cocotb")
    root = REPO / "build" / "test-cocotb"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def cli(monkeypatch, capsys, tmp_path):
    """``sim.cli.main`` in this process (quick: the heavy imports are paid once per session).

    An exception escaping ``main`` fails the test with its traceback, so a crash shows here too.
    """
    from sim.cli.main import main

    from cli_helpers import Result
    monkeypatch.delenv("VQE_DEBUG", raising=False)
    monkeypatch.setenv("VQE_CACHE", str(tmp_path / "cache"))

    def run(*args) -> Result:
        capsys.readouterr()
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse: --help, usage errors
            rc = e.code
        out, err = capsys.readouterr()
        return Result(rc, out, err)
    return run
