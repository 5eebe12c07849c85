"""MiniLM's 36 encoder Linear layers on the engine (issue 14, item 4), into reports/minilm_engine.json.

Usage::

    python -m scripts.experiments.minilm_engine [--json reports/minilm_engine.json] [--sentences 4]

Compresses all-MiniLM-L6-v2 into a partitioned program (``vqe compress --network minilm --method universal
--partition --weight-sram 320``: the Linear layers on the engine with the 16,384-entry universal ROM, the host
the rest), scores it on the 320 evaluation sentences with the golden model, and runs ``--sentences`` of them
on Verilator (every job checked against the golden model).  About 3 minutes (8 more the first time: the
nearest-codeword assignment, then cached).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

#: Weight SRAM (KiB): the largest MiniLM layer (1536 x 384, about 258 KiB coded) fits.
WEIGHT_SRAM_KIB = 320
PROGRAM = Path("build/minilm-universal.vqz")


def main(argv=None) -> int:
    from model.compress.partitioned import compress_partitioned
    from model.contract.config import WORDS_PER_KIB
    from sim.partitioned import run_partitioned
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="reports/minilm_engine.json")
    ap.add_argument("--sentences", type=int, default=4, help="sentences run on Verilator (default 4)")
    args = ap.parse_args(argv)
    program = compress_partitioned("minilm", lanes=4, weight_sram_words=WEIGHT_SRAM_KIB * WORDS_PER_KIB)
    PROGRAM.parent.mkdir(parents=True, exist_ok=True)
    program.save(PROGRAM)
    run = run_partitioned(program, "verilator", images=args.sentences, progress=True)
    info = program.meta["info"]
    engine_segments = [s for s in program.meta["segments"] if s["kind"] == "engine"]
    out = {"program": str(PROGRAM), "weight_sram_kib": WEIGHT_SRAM_KIB, "compression": program.meta["compression"],
           "engine_segments": len(engine_segments),
           "host_segments": len(program.meta["segments"]) - len(engine_segments),
           "golden": {"sentences": int(info["int8_metrics"]["n_sentences"]), **info["int8_metrics"]},
           "model_level": {"note": "reports/universal_table.md: the nearest start 0.941, the fit 0.964 (same ROM)"},
           "rtl": {k: run[k] for k in ("backend", "images", "bit_exact", "mismatches", "cycles", "ideal_cycles",
                                       "utilization", "quality", "jobs", "vectors", "boundary", "energy",
                                       "sim_cycles_per_second", "counters")}}
    Path(args.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(f"wrote {args.json}: golden cosine {info['int8_quality']:.4f}, Verilator bit_exact {run['bit_exact']}")
    return 0 if run["bit_exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
