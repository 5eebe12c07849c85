"""Run the engine's simulation top under cocotb with Icarus Verilog or Verilator.

The simulation top (``vqe_sim_top``, see :mod:`sim.backends.top`) holds the whole job:
its DRAM model and codebook ROM load the program image and the codebook from the files
given as ``+vqe_dram=FILE`` and ``+vqe_rom=FILE`` (``dram_file``, ``rom``), so a run needs no
per-cycle Python and one build serves every program of an engine shape.  The cocotb test
(:mod:`sim.backends.cocotb_top`) sets the DRAM timing ports, pulses ``start``, sleeps until
``done`` or a cycle bound, and then reads ``error``, the counters and the output words
through the ``dbg_addr``/``dbg_data`` port.

Parameters travel to the test in environment variables and results come back in
a JSON file the test writes.  Each design is built once (`sim.backends.cocotb_build`)
with the simulators of `sim.backends.simulators`.

Top-level ports expected (Amaranth defaults: clock ``clk``, synchronous
active-high reset ``rst``): ``start`` in; ``busy``, ``done`` out; ``error`` out
(4 bits); ``counters`` out (``len(COUNTER_NAMES)`` fields of ``COUNTER_BITS``,
field *i* at bits ``[COUNTER_BITS*i +: COUNTER_BITS]``); ``dbg_addr`` in (any
width) and ``dbg_data`` out (32 bits), a 1-cycle synchronous read port; with
``dram_timing``, ``dram_latency``, ``dram_stall`` and ``dram_seed`` in.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from model.contract.counters import COUNTER_BITS
from sim.backends.cocotb_build import TIMESCALE, build_sim_top
from sim.backends.readmem import COUNTER_NAMES, write_image
from sim.backends.simulators import (SIMULATORS, SimulationError, get_runner, log_tail, patched_environ,
                                     simulator_environment)

__all__ = ["COUNTER_NAMES", "run_sim_top"]

TEST_MODULE = "sim.backends.cocotb_top"


def run_sim_top(verilog: str, toplevel: str, simulator: str, *, out_addr: int, out_words: int,
                max_cycles: int, vcd_path: str | None = None,
                build_root: str | Path = "build/cocotb",
                dram_file=None,
                dram_timing: tuple[int, int, int] | None = None, rom: str | None = None) -> dict:
    """Simulate one whole engine run of the simulation top ``toplevel`` given as Verilog text.

    Parameters
    ----------
    verilog : str
        Verilog of the simulation top (engine + DRAM model).
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
    dram_file : sequence of int, optional
        Words passed to the design as a ``$readmemh`` file in ``+vqe_dram=FILE``: how the
        compiled simulation top (`sim.backends.top.compiled_top_verilog`) loads its DRAM.
    dram_timing : (latency, stall, seed), optional
        Values the test sets on the top's ``dram_latency``, ``dram_stall`` and ``dram_seed``
        ports during reset.
    rom : str, optional
        The codebook ROM's ``$readmemh`` text, passed in ``+vqe_rom=FILE`` (the compiled top's ROM).

    Returns
    -------
    dict
        ``done`` (bool), ``error`` (int), ``counters`` {name: int}, ``outputs``
        [int words], ``sim_seconds`` (wall time from start to done inside the
        simulator), ``cycles_simulated`` (clock cycles from start to done or to
        the bound), plus ``build_seconds`` (0.0 when the build was reused),
        ``wall_seconds`` (the whole simulator process), ``simulator``, ``vcd`` and ``warnings``
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
    plusargs: list[str] = []
    if dram_file is not None:
        write_image(run_dir / "dram.hex", dram_file)
        plusargs.append(f"+vqe_dram={run_dir / 'dram.hex'}")
    if rom is not None:
        (run_dir / "rom.hex").write_text(rom)
        plusargs.append(f"+vqe_rom={run_dir / 'rom.hex'}")
    if dram_timing is not None:
        params["VQE_COCOTB_DRAM_TIMING"] = ",".join(str(int(v)) for v in dram_timing)
    test_args: list[str] = []
    if waves and simulator == "icarus":
        plusargs.append(f"+dumpfile_path={vcd_path}")
    elif waves:
        test_args += ["--trace-file", vcd_path]

    runner = get_runner(simulator, dump_format)
    env = dict(simulator_environment(simulator))
    env.setdefault("COCOTB_ANSI_OUTPUT", "0")
    t0 = time.perf_counter()
    failure = None
    try:
        # The runner copies os.environ over extra_env: make sure no stale value of ours wins.
        with patched_environ(env, remove=tuple(params)):
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
        raise SimulationError(f"{simulator} simulation of {toplevel} failed: {failure}; log {log}:\n{log_tail(log)}")

    result = json.loads(result_path.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "done": bool(result["done"]),
        "error": int(result["error"]),
        "counters": {name: int(result["counters"].get(name, 0)) for name in COUNTER_NAMES},
        "outputs": [int(w) for w in result["outputs"]],
        "sim_seconds": float(result["sim_seconds"]),
        "cycles_simulated": int(result["cycles_simulated"]),
        "layer_cycles": [int(c) for c in result.get("layer_cycles", [])],
        "build_seconds": build_seconds,
        "wall_seconds": wall,
        "simulator": simulator,
        "vcd": vcd_path,
        "warnings": list(result.get("problems", [])),
    }


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - a debugging aid
    """Run a simulation-top Verilog file from the command line and print the result as JSON."""
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
