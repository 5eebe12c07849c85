"""MiniLM's 36 encoder Linear layers on the engine, with the flat and the staged universal ROMs, into
reports/minilm_engine.json.

Usage::

    python -m scripts.experiments.minilm_engine [--json reports/minilm_engine.json] [--sentences 4]
                                                [--variants flat-16384 staged-2x256 staged-2x128-fit]
                                                [--report reports/REPORT.md [--replot]]

Each variant is a partitioned program (``vqe compress --network minilm --method universal --partition
--weight-sram 320 [--codebook ROM [--fit]]``: the Linear layers on the engine, the host the rest), scored on
the 320 evaluation sentences with the golden model and run for ``--sentences`` of them on Verilator (every
job checked against the golden model):

* ``flat-16384``: the nested ROM's 16,384 entries (14-bit indices), nearest codewords with per-row scales;
* ``staged-2x256``: the staged ROM of two sections of 256 (16 bits per sub-vector), greedy coding;
* ``staged-2x128-fit``: two sections of 128 (14 bits: the flat ROM's bits), fitted by distillation through
  the engine's int8 steps (:func:`model.compress.partitioned.fit_staged`; about 25 minutes the first time on
  one core, then cached).

The top level of the JSON is the flat variant's (the report's MiniLM section reads it); ``variants`` has
every variant side by side.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

#: Weight SRAM (KiB): the largest MiniLM layer (1536 x 384, about 258 KiB coded) fits.
WEIGHT_SRAM_KIB = 320
CODEBOOKS = Path("model/codebooks")
#: name -> (ROM file or None for the flat nested ROM's 16,384 entries, fitted)
VARIANTS = {
    "flat-16384": (None, False),
    "staged-2x256": (CODEBOOKS / "universal-d4-k256x2-staged-v1.npz", False),
    "staged-2x128-fit": (CODEBOOKS / "universal-d4-k128x2-staged-v1.npz", True),
}
RTL_KEYS = ("backend", "images", "bit_exact", "mismatches", "cycles", "ideal_cycles", "utilization", "quality",
            "jobs", "vectors", "boundary", "energy", "sim_cycles_per_second", "counters")


def run_variant(name: str, sentences: int) -> dict:
    from model.compress.partitioned import compress_partitioned
    from model.contract.config import WORDS_PER_KIB
    from sim.partitioned import run_partitioned
    rom, fit = VARIANTS[name]
    program = compress_partitioned("minilm", lanes=4, weight_sram_words=WEIGHT_SRAM_KIB * WORDS_PER_KIB,
                                   codebook=None if rom is None else str(rom), fit=fit)
    path = Path(f"build/minilm-{name}.vqz")
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(path)
    run = run_partitioned(program, "verilator", images=sentences, progress=True)
    info = program.meta["info"]
    engine_segments = [s for s in program.meta["segments"] if s["kind"] == "engine"]
    return {"variant": name, "program": str(path), "codebook": None if rom is None else str(rom),
            "coding": ("fit through the engine's int8 steps" if fit else
                       "nearest (per-row scales)" if rom is None else "greedy over the stages (per-row scales)"),
            "rom_entries": len(program.meta["rom"]), "rom_bits": 8 * 4 * len(program.meta["rom"]),
            "weight_sram_kib": WEIGHT_SRAM_KIB, "compression": program.meta["compression"],
            "engine_segments": len(engine_segments), "host_segments": len(program.meta["segments"]) - len(engine_segments),
            "golden": {"sentences": int(info["int8_metrics"]["n_sentences"]), **info["int8_metrics"]},
            "fit": info.get("fit"), "rtl": {k: run[k] for k in RTL_KEYS}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="reports/minilm_engine.json")
    ap.add_argument("--sentences", type=int, default=4, help="sentences run on Verilator (default 4)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--report", metavar="REPORT.md", help="also put the MiniLM section in this report, in place")
    ap.add_argument("--replot", action="store_true", help="run nothing: only render --report from --json")
    args = ap.parse_args(argv)
    if args.replot:
        if not args.report:
            ap.error("--replot needs --report")
        return splice(args.json, args.report)
    if "flat-16384" not in args.variants:   # the JSON's top level (the report's MiniLM paragraph) is its run
        ap.error("--variants must include flat-16384")
    variants = []
    for name in args.variants:
        variants.append(run_variant(name, args.sentences))
        v = variants[-1]
        print(f"{name}: {v['compression']['ratio_vs_fp32']:.2f}x, golden cosine {v['golden']['embedding_cosine']:.4f}, "
              f"Verilator bit_exact {v['rtl']['bit_exact']}", flush=True)
    flat = next(v for v in variants if v["variant"] == "flat-16384")
    out = {**{k: flat[k] for k in ("program", "weight_sram_kib", "compression", "engine_segments",
                                   "host_segments", "golden", "rtl")},
           "model_level": {"note": "reports/universal_table.md: the nearest start 0.941, the fit 0.964 (same ROM)"},
           "variants": variants}
    Path(args.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(f"wrote {args.json}")
    if args.report:
        splice(args.json, args.report)
    return 0 if all(v["rtl"]["bit_exact"] for v in variants) else 1


def splice(json_path: str, report: str) -> int:
    """Render the report's MiniLM section from ``json_path`` into ``report``, in place."""
    from sim.report.sections.experiments import minilm_lines
    from sim.report.sections.pes import replace_section
    try:
        data = json.loads(Path(json_path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: cannot read {json_path}: {e}")
    replace_section(report, minilm_lines(data))
    print(f"updated {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
