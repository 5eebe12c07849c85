"""The engines the report synthesizes: the lanes x depth sweep, the PVQ engine, the universal-ROM engine,
and the engines of the processing-element table's other methods (`PES_ENGINES`).

Each is elaborated with a real codebook, so the synthesized ROM is what a
program would hold: the sweep and the PVQ engine with k-means of
LeNet-300-100's first layer, the Deep Compression engine with that program's
centroids (both kept in ``reports/area-roms.npz``, so the Verilog, and so the
synthesis cache key, does not depend on retraining), the universal engine with
the shipped universal codebook.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from model.contract.errors import NPZ_READ_ERRORS
from sim.errors import CliError
from sim.report.area.tools import DEFAULT_TIMEOUT_S
from sim.report.paths import SWEEP_ROMS

#: The engine the report headlines (and ``--quick`` synthesizes alone): lanes, codebook depth.
HEADLINE = (4, 256)
#: Largest K of the engine whose PVQ unit the report synthesizes.
PVQ_AREA_K_MAX = 8
#: Top module name of every synthesized engine.
TOP = "vqe_engine"


def _kept(keys: tuple[str, ...], compute) -> tuple[np.ndarray, ...]:
    """The arrays ``keys`` of ``reports/area-roms.npz``, ``compute()``-d (a tuple of them) and added to it when
    missing: what the synthesized Verilog depends on, kept so that it does not depend on retraining."""
    try:
        stored = dict(np.load(SWEEP_ROMS)) if SWEEP_ROMS.exists() else {}
    except NPZ_READ_ERRORS as e:   # not recomputed: the synthesized Verilog, and the area cache, depend on it
        first_line = (str(e).splitlines() or [""])[0]
        raise CliError(f"{SWEEP_ROMS} cannot be read ({type(e).__name__}: {first_line}); it is part of the project: "
                       f"restore it with `git checkout -- {SWEEP_ROMS}`") from None
    if not all(k in stored for k in keys):
        stored.update(zip(keys, compute()))
        SWEEP_ROMS.parent.mkdir(parents=True, exist_ok=True)
        np.savez(SWEEP_ROMS, **stored)
    return tuple(stored[k] for k in keys)


def sweep_rom(lanes: int, depth: int, progress: bool) -> np.ndarray:
    """int8 codebook of ``depth`` codewords of dimension ``lanes`` for the area sweep.

    k-means of LeNet-300-100's first-layer sub-vectors (the network the report is
    about), computed once and kept in ``reports/area-roms.npz`` so that the
    synthesized Verilog, and so the cache key, does not depend on retraining.
    """
    def compute():
        from model.compress.kmeans.network import kmeans, split_subvectors
        from model.nets.networks import get_network
        w = get_network("lenet300", progress=progress).linears()[0].weight.detach().numpy()
        codebook, _ = kmeans(split_subvectors(w, lanes).reshape(-1, lanes), depth, seed=0)
        return (np.clip(np.round(codebook / np.abs(codebook).max() * 127), -128, 127).astype(np.int8),)
    return _kept((f"lanes{lanes}_depth{depth}",), compute)[0]


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


def config_verilog(cfg) -> tuple[str, str]:
    """(Verilog, top name) of the engine `EngineConfig` ``cfg``, for synthesis."""
    from sim.backends.top import engine_verilog
    return engine_verilog(cfg, name=TOP, simulation=False), TOP


def universal_engine_at(lanes: int | None = None, pes: int = 1):
    """The `EngineConfig` with the shipped universal codebook as its ROM (what every universal program runs), with
    ``pes`` processing elements, without a weight SRAM (the report gives the weight SRAM's area on its own)."""
    from model.compress.universal.method import universal_engine_config
    cfg = universal_engine_config(0, lanes)
    return cfg if pes == 1 else dataclasses.replace(cfg, pes=pes)


def universal_engine_verilog(lanes: int | None = None) -> tuple[str, str]:
    """The universal engine (`universal_engine_at`, one PE): (Verilog, top name)."""
    return config_verilog(universal_engine_at(lanes))


#: The key of the Deep Compression engine's parameters in ``reports/area-roms.npz`` (its ROM under
#: ``{key}_rom``, the program's ``engine`` metadata as JSON under ``{key}_engine``).
DEEPCOMP_AREA_KEY = "deepcomp_lenet300"


def _deepcomp_engine_meta(progress: bool) -> tuple[np.ndarray, dict]:
    """ROM and ``engine`` metadata of LeNet-300-100's Deep Compression program (one PE), computed once
    (pruning and trained quantization, from the network cache) and kept in ``reports/area-roms.npz``."""
    def compute():
        from model.compress.deepcomp.recipe import lower_network_deepcomp
        from model.program.writer import build_program
        program = build_program(lower_network_deepcomp("lenet300", progress=progress))
        return (np.asarray(program.meta["rom"], dtype=np.int8),
                np.array(json.dumps(program.meta["engine"], sort_keys=True)))
    rom, engine = _kept((f"{DEEPCOMP_AREA_KEY}_rom", f"{DEEPCOMP_AREA_KEY}_engine"), compute)
    return rom, json.loads(str(engine))


def deepcomp_engine_at(pes: int = 1, progress: bool = True):
    """The `EngineConfig` LeNet-300-100's Deep Compression program elaborates (``vqe compress --method deepcomp
    --pes P``, then ``vqe verilog --program``): its centroids as the ROM, its Huffman decoder, ``pes`` PEs;
    without the weight SRAM (its area is given on its own)."""
    from model.program.file import Program
    rom, engine = _deepcomp_engine_meta(progress)
    cfg = Program({"engine": engine, "rom": rom.tolist()}, np.zeros(0, np.uint32)).config
    return dataclasses.replace(cfg, weight_sram_words=0, pes=pes)


@dataclasses.dataclass(frozen=True)
class PesEngine:
    """The engine one method of the processing-element table runs, and the PEs it is synthesized at.

    Members
    -------
    config_at : callable
        ``(lanes, pes) -> EngineConfig``.
    pes : tuple of int
        The processing elements it is synthesized at on the ECP5.
    ice40_pes : tuple of int
        Those it is synthesized at on the iCE40 HX8K too (the HX8K holds neither the Huffman decoder,
        9,666 LUT4 by itself, nor four k-means PEs).
    timeout_s : float
        Bound on each tool run, in seconds (the default's unless the engine needs more).
    """
    config_at: object
    pes: tuple
    ice40_pes: tuple = ()
    timeout_s: float = DEFAULT_TIMEOUT_S


#: The engines of the processing-element table's methods besides k-means (whose engine is the area sweep's,
#: `sweep_engine_verilog`), by method.  The Deep Compression engine has its program's lanes whatever ``lanes``;
#: at P = 2 it took 33 minutes of tool time (39,574 LUT4), and P = 4 would need about twice the LUT4 of P = 2
#: (an extrapolation), near all of the ECP5-85F's 83,640, so it is not synthesized.
PES_ENGINES = {
    "universal": PesEngine(universal_engine_at, (1, 2, 4), ice40_pes=(1,)),
    # nextpnr took 958 s at P = 2 (measured), over the default bound.
    "deepcomp": PesEngine(lambda lanes, pes: deepcomp_engine_at(pes), (1, 2), timeout_s=3600.0),
}
