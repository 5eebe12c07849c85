"""A design synthesized over lanes x codebook depth: the report's area sweep.

Elaboration runs in the calling thread (Amaranth is not meant to be driven
from several threads); the tool runs go in parallel, each cached
(`sim.report.area.synthesis.synthesize`).
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Callable

from sim.report.area.synthesis import DEFAULT_CACHE_DIR, synthesize
from sim.report.area.tools import DEFAULT_TIMEOUT_S, find_tools

#: Default sweep, as the issue asks: lanes x codebook depth.
SWEEP_LANES = (1, 2, 4, 8)
SWEEP_DEPTHS = (16, 64, 256)

#: The fields of one ``area.json`` record, in column order.
AREA_FIELDS = ("lanes", "codebook_depth", "lut4", "dff", "carry", "bram", "dsp", "transistors", "fmax_mhz")


def sweep(make_verilog: Callable[[int, int], tuple[str, str]], lanes=SWEEP_LANES, depths=SWEEP_DEPTHS,
          cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR, *, jobs: int | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S, progress: bool = True) -> list[dict]:
    """Synthesize a design over lanes x codebook depth.

    Parameters
    ----------
    make_verilog : callable
        ``make_verilog(lanes, codebook_depth) -> (verilog_text, top_name)``.
    lanes, depths : sequence of int
        The grid.
    cache_dir : path or None
        Result cache (see `synthesize`).
    jobs : int, optional
        Designs synthesized at once; defaults to the number of CPUs.
    timeout_s : float
        Bound on each tool run.
    progress : bool
        Show progress bars on stderr.

    Returns
    -------
    list of dict
        One record per grid point, in grid order: ``lanes``,
        ``codebook_depth`` and everything `synthesize` returns.
    """
    from tqdm import tqdm

    tools = find_tools()
    grid = [(n, k) for n in lanes for k in depths]
    # Elaboration stays in this thread: Amaranth is not meant to be driven
    # from several threads; only the tool runs go in parallel.
    designs = [make_verilog(n, k) for n, k in tqdm(grid, desc="elaborate", disable=not progress)]
    jobs = jobs or os.cpu_count() or 1
    results = [None] * len(grid)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(synthesize, text, top, cache_dir, timeout_s=timeout_s, tools=tools): i
                   for i, (text, top) in enumerate(designs)}
        for fut in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                        desc="synth+pnr", disable=not progress):
            i = futures[fut]
            results[i] = {"lanes": grid[i][0], "codebook_depth": grid[i][1], **fut.result()}
    return results
