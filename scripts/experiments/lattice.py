"""The E8P lattice codebook against the KDE universal codebook at equal bits (``reports/lattice_table.json``).

For each network the engine runs, every layer is coded by nearest assignment with a scale per row
(:func:`model.compress.lattice.code_rows`, the same search for both; no fine-tuning) and measured as the int8
program on the whole test set (the golden model):

* ``lattice`` (E8P, 8 lanes): 16 bits per 8 weights, 2 bits per weight; the engine's table is 256 x 8 bytes.
* the KDE universal codebook (4 lanes), prefixes of the nested ROM
  (``model/codebooks/universal-d4-k16384-nested-v1.npz``): 256 entries is 2 bits per weight, but 256 is not one
  of its stages (128, 1024, ...), so the rows are its 128 (1.75 bits) and 1024 (2.5 bits) stages and its first
  256 entries (a prefix that is no designed stage).

The E8P programs also run on Verilator (``--images``): bit-exact and cycles per image.

    python -m scripts.experiments.lattice --json reports/lattice_table.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from model.compress.registry import CompressOptions

NETWORKS = ("lenet300", "lenet5")
KDE_PREFIXES = (128, 256, 1024)


def kde_code(codewords: np.ndarray):
    """``code(w, i)`` for :func:`model.compress.multicodebook.coded_program`: nearest KDE codeword per row-scaled
    sub-vector (masked squared error), the codebook the shared ROM."""
    from model.codecs.e8p import e8p_codewords
    from model.compress.lattice import code_rows
    from model.compress.lowering import LayerCoding
    c = np.asarray(codewords, dtype=np.float64)
    c2 = c * c
    unit = float(np.sqrt((c2).mean()) / np.sqrt((e8p_codewords().astype(np.float64) ** 2).mean()))

    def nearest(y, mask):
        out = np.empty(len(y), dtype=np.int64)
        for lo in range(0, len(y), 8192):
            yc, mc = y[lo:lo + 8192], mask[lo:lo + 8192]
            out[lo:lo + 8192] = (mc @ c2.T - 2 * (yc * mc) @ c.T).argmin(1)
        return out

    def code(w, i):
        idx, scale, rec = code_rows(w, c.shape[1], nearest, lambda k: c[k], rms_unit=unit)
        return LayerCoding(np.asarray(codewords, np.int8), idx, scale, np.zeros(len(scale))), rec
    return code


def program_of(network: str, method: str, lanes: int, method_fn=None):
    """An engine program of ``network`` (``method`` registered, or ``method_fn(job)``), its int8 accuracy measured."""
    from model.compress.pipeline import _engine_program, compress
    if method_fn is None:
        return compress(network, method, lanes=lanes, progress=False)
    return _engine_program(network, method_fn, CompressOptions(lanes=lanes, progress=False))


def row(network: str, label: str, program, index_bits_per_weight: float, rom_bits: int, seconds: float) -> dict:
    info = program.meta["info"]
    return {"network": network, "codebook": label, "lanes": program.config.lanes,
            "index_bits_per_weight": index_bits_per_weight,
            "bits_per_weight": program.meta["compression"]["bits_per_weight"],
            "int8_accuracy": info["int8_accuracy"], "float_accuracy": info["float_accuracy"],
            "test_images": info.get("test_images"), "rom_bits": rom_bits, "seconds": round(seconds, 1)}


def verilator_run(program, images: int) -> dict:
    from sim.api import run
    r = run(program, "verilator", images=images)
    return {"bit_exact": r["bit_exact"], "images": images, "cycles_per_image": r["cycles"] / images,
            "utilization": r["utilization"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    ap.add_argument("--images", type=int, default=20, help="Verilator images per E8P program (0: none)")
    ap.add_argument("--json", type=Path, default=Path("reports/lattice_table.json"))
    a = ap.parse_args(argv)
    from model.compress.multicodebook import coded_program
    from model.compress.lowering import codebook_depth_for
    from model.compress.universal.codebook import DEFAULT_NESTED, load_codebook
    from model.codecs.e8p import E8P_DIM, E8P_TABLE_ENTRIES
    nested = load_codebook(DEFAULT_NESTED)
    rows, runs = [], {}
    for net in a.networks:
        t0 = time.perf_counter()
        prog = program_of(net, "lattice", E8P_DIM)
        rows.append(row(net, "e8p", prog, 2.0, E8P_TABLE_ENTRIES * E8P_DIM * 8, time.perf_counter() - t0))
        if a.images:
            runs[net] = verilator_run(prog, a.images)
            rows[-1]["verilator"] = runs[net]
        print(rows[-1], flush=True)
        for k in KDE_PREFIXES:
            cw = nested.codewords[:k]
            t0 = time.perf_counter()
            prog = program_of(net, None, nested.dim, lambda job, cw=cw: coded_program(
                job, "universal-nearest", kde_code(cw), codebook_depth=codebook_depth_for(len(cw)), shared_rom=cw))
            label = f"kde-{k}" + ("" if k in nested.stages else " (prefix, not a stage)")
            rows.append(row(net, label, prog, np.log2(k) / nested.dim, k * nested.dim * 8, time.perf_counter() - t0))
            print(rows[-1], flush=True)
    e8p = {r["network"]: r for r in rows if r["codebook"] == "e8p"}
    for r in rows:
        r["e8p_minus_this_points"] = round(100 * (e8p[r["network"]]["int8_accuracy"] - r["int8_accuracy"]), 2)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"rows": rows, "kde_stages": list(map(int, nested.stages)),
                                  "note": "nearest assignment with a scale per row for every codebook, no fine-tuning; "
                                          "int8 golden accuracy on the whole test set"}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
