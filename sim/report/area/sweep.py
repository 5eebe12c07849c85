"""A design synthesized over a grid of (target, lanes, processing elements, codebook depth): the report's area sweep.

Elaboration runs in the calling thread (Amaranth is not meant to be driven
from several threads), once per (lanes, pes, codebook depth) whatever the
targets; the tool runs go in parallel, each cached
(`sim.report.area.synthesis.synthesize`).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Callable, Sequence

from sim.report.area.synthesis import DEFAULT_CACHE_DIR, cached_result, synthesize
from sim.report.area.targets import ECP5_85F, ICE40_HX8K, TARGETS, Target
from sim.report.area.tools import DEFAULT_TIMEOUT_S, find_tools

#: Default sweep on the iCE40 HX8K: lanes x codebook depth (issue 7), at each number of processing elements.
SWEEP_LANES = (1, 2, 4, 8)
SWEEP_DEPTHS = (16, 64, 256)
#: The ECP5's sweep is lanes x processing elements at this codebook depth (issue 16).
ECP5_DEPTH = 256


def sweep_pes() -> tuple:
    """The processing-element axis: ``model.contract.layout.PES`` once the engine has the parameter
    (``EngineConfig.pes``), else (1,)."""
    from model.contract.config import EngineConfig
    if "pes" not in {f.name for f in dataclasses.fields(EngineConfig)}:
        return (1,)
    from model.contract import layout
    return tuple(p for p in getattr(layout, "PES", (1,)) if p <= 4)


#: The fields of one ``area.json`` record, in column order.
AREA_FIELDS = ("target", "lanes", "pes", "codebook_depth", "lut4", "dff", "carry", "bram", "dsp", "transistors",
               "fmax_mhz")


@dataclasses.dataclass(frozen=True)
class Point:
    """One configuration of the sweep: the FPGA and the engine's lanes, processing elements and codebook depth."""
    target: Target
    lanes: int
    pes: int
    codebook_depth: int

    @property
    def design(self) -> tuple:
        """What the Verilog depends on (not the target)."""
        return self.lanes, self.pes, self.codebook_depth


def sweep_points(lanes: Sequence[int] = SWEEP_LANES, depths: Sequence[int] = SWEEP_DEPTHS,
                 pes: Sequence[int] = (1,), targets: Sequence[str] = tuple(TARGETS)) -> list[Point]:
    """The grid: on the iCE40 HX8K lanes x codebook depth with one processing element, and lanes x ``pes``
    at the largest depth; on the ECP5 lanes x ``pes`` at the largest depth (`ECP5_DEPTH` by default).

    Parameters
    ----------
    lanes, depths, pes : sequence of int
        The axes.
    targets : sequence of str
        Names of the targets (`sim.report.area.targets.TARGETS`).
    """
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown area target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    points = []
    depth = ECP5_DEPTH if ECP5_DEPTH in depths else max(depths)
    if ICE40_HX8K.name in targets:
        points += [Point(ICE40_HX8K, n, 1, k) for n in lanes for k in depths]
        points += [Point(ICE40_HX8K, n, p, depth) for n in lanes for p in pes if p > 1]
    if ECP5_85F.name in targets:
        points += [Point(ECP5_85F, n, p, depth) for n in lanes for p in pes]
    return points


def sweep(make_verilog: Callable[[int, int, int], tuple[str, str]], points: Sequence[Point],
          cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR, *, jobs: int | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S, progress: bool = True, cached_only: bool = False) -> list[dict]:
    """Synthesize a design at every point of a grid (`sweep_points`).

    Parameters
    ----------
    make_verilog : callable
        ``make_verilog(lanes, codebook_depth, pes) -> (verilog_text, top_name)``.
    points : sequence of Point
        The grid.
    cache_dir : path or None
        Result cache (see `synthesize`).
    jobs : int, optional
        Designs synthesized at once; defaults to the number of CPUs.
    timeout_s : float
        Bound on each tool run.
    progress : bool
        Show progress bars on stderr.
    cached_only : bool
        Run no tool: the points whose result is not in the cache are left out.

    Returns
    -------
    list of dict
        One record per point (but those left out), in grid order: ``target``, ``lanes``, ``pes``,
        ``codebook_depth`` and everything `synthesize` returns.
    """
    from tqdm import tqdm

    tools = {t.name: find_tools(t) for t in {p.target.name: p.target for p in points}.values()}
    # Elaboration stays in this thread: Amaranth is not meant to be driven
    # from several threads; only the tool runs go in parallel.
    designs = {}
    for p in tqdm(points, desc="elaborate", disable=not progress):
        if p.design not in designs:
            designs[p.design] = make_verilog(p.lanes, p.codebook_depth, p.pes)
    if cached_only:
        found = [(p, cached_result(*designs[p.design], cache_dir, target=p.target, tools=tools[p.target.name]))
                 for p in points]
        return [{"target": p.target.name, "lanes": p.lanes, "pes": p.pes, "codebook_depth": p.codebook_depth, **r}
                for p, r in found if r is not None]
    jobs = jobs or os.cpu_count() or 1
    results = [None] * len(points)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(synthesize, *designs[p.design], cache_dir, target=p.target, timeout_s=timeout_s,
                               tools=tools[p.target.name]): i for i, p in enumerate(points)}
        for fut in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                        desc="synth+pnr", disable=not progress):
            i = futures[fut]
            p = points[i]
            results[i] = {"target": p.target.name, "lanes": p.lanes, "pes": p.pes,
                          "codebook_depth": p.codebook_depth, **fut.result()}
    return results
