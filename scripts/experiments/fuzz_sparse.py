#!/usr/bin/env python3
"""Fuzz sparse Huffman-coded layers: corrupted streams on the golden model and on the engine RTL.

Usage: python scripts/fuzz_sparse.py [--golden N] [--rtl M] [--backend amaranth|icarus] [--seed S]

Each stream is a small random sparse program (tests/sparse_cases.py) with a
structured defect of one error class or random bit flips in a layer's stream.
The golden model must finish or raise an ``EngineFault``; on the RTL the
outputs and every counter must match, or the error code must, and the engine
must stop (no hang).  Prints the tally of outcomes per error class.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

import numpy as np  # noqa: E402

from model.contract.errors import EngineFault
from model.golden.engine import GoldenEngine

#: Centroids of the fuzzed engines (as in tests/integration/test_sparse.py).
K_MAX = 32


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--golden", type=int, default=10000, help="streams for the golden model")
    parser.add_argument("--rtl", type=int, default=50, help="streams for the RTL")
    parser.add_argument("--backend", default="amaranth", choices=("amaranth", "icarus"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    from engine_cases import assert_bit_exact, run_both
    from sparse_cases import fuzz_bases, fuzz_image

    cases = fuzz_bases(K_MAX)
    rng = np.random.default_rng(args.seed)
    tally = collections.Counter()
    t0 = time.perf_counter()
    for _ in range(args.golden):
        case = cases[int(rng.integers(0, len(cases)))]
        img = fuzz_image(rng, case)
        try:
            GoldenEngine(case[0].config).run(img)
            tally["ok"] += 1
        except EngineFault as fault:
            tally[fault.code.name] += 1
    print(f"golden: {args.golden} corrupted streams in {time.perf_counter() - t0:.1f} s: {dict(sorted(tally.items()))}")

    tally = collections.Counter()
    t0 = time.perf_counter()
    for i in range(args.rtl):
        case = cases[int(rng.integers(0, len(cases)))]
        program, _, out_addr, out_words = case
        img = fuzz_image(rng, case)
        golden, rtl = run_both(program, img, out_addr, out_words, args.backend, latency=int(rng.integers(3, 12)),
                               stall=int(rng.choice([0, 32, 128])), seed=int(rng.integers(1, 1000)))
        if not rtl["done"]:
            print(f"RTL stream {i}: HANG", file=sys.stderr)
            return 1
        if isinstance(golden, EngineFault):
            if rtl["error"] != golden.code:
                print(f"RTL stream {i}: golden {golden.code.name}, RTL error {rtl['error']}", file=sys.stderr)
                return 1
            tally[golden.code.name] += 1
        else:
            assert_bit_exact(golden, rtl, program.meta["output_features"])
            tally["ok"] += 1
    print(f"rtl ({args.backend}): {args.rtl} corrupted streams in {time.perf_counter() - t0:.1f} s, "
          f"all agree with the golden model: {dict(sorted(tally.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
