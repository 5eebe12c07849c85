"""``make bench``: simulation speed of every backend on one program, as ratios to Icarus measured in the same run.

Each backend runs the program's first test images as one job (one shard, in
this process: one core) and is checked against the golden model.  Speed is
engine clock cycles per second of simulation (start to done, build and image
files excluded); the ratio is each backend's speed over Icarus's in this run.

Usage: ``python -m sim.bench PROGRAM [--images BACKEND=N ...] [--json FILE]``
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sim.simulate import BACKENDS

#: Images per backend: enough for a steady rate, few enough for the slow simulators.
DEFAULT_IMAGES = {"golden": 100, "verilator": 100, "verilator-cocotb": 10, "icarus": 2, "amaranth": 1}


def bench(program_path: str, images: dict[str, int]) -> list[dict]:
    """One row per backend: images, cycles, seconds, cycles per second, ratio to Icarus, bit-exact."""
    from model.nets.inputs import load_inputs
    from model.program.file import Program
    from sim.run import run_program
    program = Program.load(program_path)
    rows = []
    for backend, n in images.items():
        x, labels, _ = load_inputs(program.meta, n, 0, 1)
        r = run_program(program, x, labels, backend, shard_images=n)
        rate = r["cycles"] / r["sim_seconds"] if r["cycles"] and r["sim_seconds"] else None
        rows.append({"backend": backend, "images": n, "cycles": r["cycles"], "sim_seconds": r["sim_seconds"],
                     "cycles_per_second": rate, "bit_exact": r["bit_exact"], "accuracy": r["accuracy"]})
        print(f"bench: {backend}: {n} images, {r['sim_seconds']:.2f} s", file=sys.stderr)
    icarus = next((row["cycles_per_second"] for row in rows if row["backend"] == "icarus"), None)
    for row in rows:
        row["ratio_to_icarus"] = row["cycles_per_second"] / icarus if icarus and row["cycles_per_second"] else None
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width table."""
    out = [f"{'backend':<17}{'images':>7}{'cycles':>13}{'seconds':>10}{'cycles/s':>13}{'x Icarus':>10}"
           f"{'bit_exact':>11}"]
    for r in rows:
        rate = f"{r['cycles_per_second']:,.0f}" if r["cycles_per_second"] else "-"
        ratio = f"{r['ratio_to_icarus']:.1f}" if r["ratio_to_icarus"] else "-"
        cycles = f"{r['cycles']:,}" if r["cycles"] else "-"
        out.append(f"{r['backend']:<17}{r['images']:>7}{cycles:>13}{r['sim_seconds']:>10.2f}{rate:>13}{ratio:>10}"
                   f"{str(r['bit_exact']):>11}")
    return "\n".join(out)


def main(argv=None) -> int:
    """Run the benchmark and print its table; exit 1 if a backend is not bit-exact or a run fails."""
    from model.contract.errors import VqeError
    p = argparse.ArgumentParser(prog="python -m sim.bench", description=__doc__.splitlines()[0])
    p.add_argument("program")
    p.add_argument("--images", action="append", default=[], metavar="BACKEND=N",
                   help=f"images for a backend (default {DEFAULT_IMAGES}); naming any backend runs only those named")
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args(argv)
    images = dict(DEFAULT_IMAGES)
    if a.images:
        try:
            images = {b: int(n) for b, n in (item.split("=") for item in a.images)}
        except ValueError:
            p.error("--images takes BACKEND=N")
    unknown = sorted(set(images) - set(BACKENDS))
    if unknown:
        p.error(f"unknown backend {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    try:
        rows = bench(a.program, images)
    except (VqeError, OSError) as e:
        print(f"bench: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    print(table(rows))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["bit_exact"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
