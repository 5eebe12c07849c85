"""The engines the report synthesizes: the lanes x depth sweep, the PVQ engine, the universal-ROM engine.

Each is elaborated with a real codebook, so the synthesized ROM is what a
program would hold: the sweep and the PVQ engine with k-means of
LeNet-300-100's first layer (kept in ``reports/area-roms.npz``, so the Verilog,
and so the synthesis cache key, does not depend on retraining), the universal
engine with the shipped universal codebook.
"""
from __future__ import annotations

import numpy as np

from sim.report.paths import SWEEP_ROMS

#: The engine the report headlines (and ``--quick`` synthesizes alone): lanes, codebook depth.
HEADLINE = (4, 256)
#: Largest K of the engine whose PVQ unit the report synthesizes.
PVQ_AREA_K_MAX = 8
#: Top module name of every synthesized engine.
TOP = "vqe_engine"


def sweep_rom(lanes: int, depth: int, progress: bool) -> np.ndarray:
    """int8 codebook of ``depth`` codewords of dimension ``lanes`` for the area sweep.

    k-means of LeNet-300-100's first-layer sub-vectors (the network the report is
    about), computed once and kept in ``reports/area-roms.npz`` so that the
    synthesized Verilog, and so the cache key, does not depend on retraining.
    """
    key = f"lanes{lanes}_depth{depth}"
    stored = dict(np.load(SWEEP_ROMS)) if SWEEP_ROMS.exists() else {}
    if key not in stored:
        from model.compress.kmeans.network import kmeans, split_subvectors
        from model.nets.networks import get_network
        w = get_network("lenet300", progress=progress).linears()[0].weight.detach().numpy()
        codebook, _ = kmeans(split_subvectors(w, lanes).reshape(-1, lanes), depth, seed=0)
        stored[key] = np.clip(np.round(codebook / np.abs(codebook).max() * 127), -128, 127).astype(np.int8)
        SWEEP_ROMS.parent.mkdir(parents=True, exist_ok=True)
        np.savez(SWEEP_ROMS, **stored)
    return stored[key]


def _engine(rom, **params) -> tuple[str, str]:
    """(Verilog, top name) of the engine with ROM ``rom`` (codewords) and the `EngineConfig` ``params``."""
    from model.contract.config import EngineConfig
    from sim.backends.top import engine_verilog
    cfg = EngineConfig(rom=tuple(map(tuple, rom.tolist())), **params)
    return engine_verilog(cfg, name=TOP, simulation=False), TOP


def sweep_engine_verilog(lanes: int, depth: int, pes: int = 1, progress: bool = True) -> tuple[str, str]:
    """The engine of one sweep point, with its `sweep_rom`: (Verilog, top name).

    The engine a k-means program elaborates (``vqe verilog --program``): the codebook path
    only, no optional unit, and no weight SRAM (the report gives its area on its own).  With
    ``pes`` processing elements (only passed on when above 1, so the Verilog of one PE does
    not depend on whether the engine has the parameter).
    """
    return _engine(sweep_rom(lanes, depth, progress), lanes=lanes, codebook_depth=depth,
                   **({"pes": pes} if pes != 1 else {}))


def full_engine_config_params(huffman_max_len: int = 15, huffman_symbol_bits: int = 9) -> dict:
    """`EngineConfig` parameters of the `HEADLINE` engine with every optional unit that runs at its lanes:
    PVQ (K up to `PVQ_AREA_K_MAX`), the Huffman decoder, windows with both poolings, the residual add,
    2-stage RVQ, PQ and the nearest-prototype unit (the E8P lattice needs 8 lanes).  The Huffman decoder's
    widths are those LeNet-300-100's Deep Compression program elaborates."""
    lanes, depth = HEADLINE
    return dict(lanes=lanes, codebook_depth=depth, pvq_k_max=PVQ_AREA_K_MAX, huffman_max_len=huffman_max_len,
                huffman_symbol_bits=huffman_symbol_bits, windows=True, avgpool=True, residual=True,
                rvq_stages_max=2, pq=True, nearest_prototype=True)


def full_engine_verilog(progress: bool = True) -> tuple[str, str]:
    """The `HEADLINE` engine with every optional unit (`full_engine_config_params`), no weight SRAM."""
    lanes, depth = HEADLINE
    return _engine(sweep_rom(lanes, depth, progress), **full_engine_config_params())


def pvq_engine_verilog(progress: bool = True) -> tuple[str, str]:
    """The `HEADLINE` engine with a PVQ unit of K up to `PVQ_AREA_K_MAX` beside its codebook path."""
    lanes, depth = HEADLINE
    return _engine(sweep_rom(lanes, depth, progress), lanes=lanes, codebook_depth=depth,
                   pvq_k_max=PVQ_AREA_K_MAX)


def universal_engine_verilog(lanes: int | None = None) -> tuple[str, str]:
    """The engine elaborated with the shipped universal codebook as its ROM (what every universal program runs).

    Synthesized without a weight SRAM: the report gives the weight SRAM's area on its own.
    """
    from model.compress.universal.method import universal_engine_config
    from sim.backends.top import engine_verilog
    return engine_verilog(universal_engine_config(0, lanes), name=TOP, simulation=False), TOP
