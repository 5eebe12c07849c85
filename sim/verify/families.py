"""The engines a verification campaign runs on, and the random programs each one runs.

A compiled simulation is built per engine shape (`sim.backends.top.compiled_top_verilog`),
so a campaign draws its thousands of programs for a few fixed engines, the
*families*: each fixes the lanes, codebook depth, activation SRAM, weight SRAM,
ROM size and optional units, and covers one group of layer modes.  A program
drawn for a family is built by the program writer as usual, then retargeted to
the family's engine (`retarget`): its ROM padded with zero codewords to the
family's size, which no layer reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model.contract.config import EngineConfig
from model.contract.layout import HUFFMAN_DEFAULT_MAX_LEN, REL_BITS, huffman_index_bits
from model.program.file import Program
from model.program.synthetic import (RESIDUAL_MAX_ROW_LAYERS, random_lowered, random_nearest_lowered,
                                     random_residual_lowered, random_windowed_lowered)
from model.program.writer import build_program

#: Most layers a random fully-connected program has.
MAX_FC_LAYERS = 3
#: Widest layer of a random fully-connected program (shapes that do not divide by lanes included).
MAX_WIDTH = 40
#: The column unit of a family with column-wise layers: room for `MAX_FC_LAYERS` layers of `MAX_WIDTH` (and
#: up to 16 centroids each) on any lane count.
COLUMN_UNIT = {"column_entries": MAX_FC_LAYERS * MAX_WIDTH * MAX_WIDTH, "column_columns": MAX_FC_LAYERS * MAX_WIDTH,
               "column_rows": MAX_FC_LAYERS * MAX_WIDTH, "column_centroids": MAX_FC_LAYERS * 16}


@dataclass(frozen=True)
class Family:
    """An engine and the random programs drawn for it.

    Parameters
    ----------
    name : str
    lanes, codebook_depth, max_features, weight_sram_words : int
        The engine's shape (:class:`model.contract.config.EngineConfig`).
    pvq_k_max : int
        Layers are VQ or PVQ (0: VQ only).
    huffman_k_max : int
        Layers are VQ or sparse Huffman-coded, with up to this many centroids (0: none).
    windows : bool
        Programs are random convolution / pooling / FC networks.
    residual : bool
        The engine has the skip buffer and the residual add: a third of the programs are fully-connected
        residual blocks, a third (with ``windows``) convolutions with a residual block, the rest as without.
    rvq_stages_max : int
        The engine has the residual-VQ unit for up to this many stages: a third of the layers are
        residual VQ (0: none).
    pq : bool
        The engine runs product-VQ layers: a third of the layers are (of those left).
    nearest_prototype : bool
        The engine has the nearest-prototype unit: half the (fully-connected) programs end in a
        ``NEAREST`` layer (:func:`model.program.synthetic.random_nearest_lowered`).
    pes : int
        The engine's processing elements; the programs are laid out for them (dense layers only).
    columns : bool
        The sparse layers (``huffman_k_max``) are column-wise, in the engine's column unit, sized for any
        program of the family (`COLUMN_UNIT`).
    """
    name: str
    lanes: int = 4
    codebook_depth: int = 16
    max_features: int = 64
    weight_sram_words: int = 0
    pvq_k_max: int = 0
    huffman_k_max: int = 0
    windows: bool = False
    residual: bool = False
    rvq_stages_max: int = 0
    pq: bool = False
    nearest_prototype: bool = False
    pes: int = 1
    columns: bool = False

    @property
    def rom_entries(self) -> int:
        """The family's ROM size: room for every layer's codebook (or sparse centroids) of any program."""
        per_layer = max(self.codebook_depth, self.huffman_k_max)
        return max(MAX_FC_LAYERS + 1, RESIDUAL_MAX_ROW_LAYERS if self.residual else 0) * per_layer

    def _huffman(self) -> dict:
        """The Huffman decoder's parameters (none without sparse layers)."""
        if not self.huffman_k_max:
            return {}
        return {"huffman_max_len": HUFFMAN_DEFAULT_MAX_LEN,
                "huffman_symbol_bits": REL_BITS + huffman_index_bits(self.huffman_k_max)}

    def _modes(self) -> dict:
        """The residual- and product-VQ units the family's engine has (none: no entry, as before them)."""
        return {**({"rvq_stages_max": self.rvq_stages_max} if self.rvq_stages_max else {}),
                **({"pq": True} if self.pq else {}),
                **({"nearest_prototype": True} if self.nearest_prototype else {})}

    def _writer_args(self) -> dict:
        return {"codebook_depth": self.codebook_depth, "config_max_features": self.max_features,
                "pvq_k_max": self.pvq_k_max, "weight_sram_words": self.weight_sram_words, **self._huffman(),
                **({"pes": self.pes} if self.pes > 1 else {}),
                **({"sparse_format": "columns"} if self.columns else {})}

    @cached_property
    def config(self) -> EngineConfig:
        """The family's engine: that of any of its programs (`retarget`)."""
        return self.program(0).config

    def program(self, seed: int) -> Program:
        """The random program ``seed`` of this family, on the family's engine."""
        rng = np.random.default_rng([seed, sum(map(ord, self.name))])
        modes = self._modes()
        draw = int(rng.integers(0, 3)) if self.residual else 2
        if draw == 0:
            lowered = random_residual_lowered(rng, self.lanes, MAX_WIDTH, self.codebook_depth,
                                              pvq_k_max=self.pvq_k_max, huffman_k_max=self.huffman_k_max, **modes)
        elif self.windows:
            lowered, _ = random_windowed_lowered(rng, self.lanes, self.codebook_depth, pvq_k_max=self.pvq_k_max,
                                                 residual=draw == 1, **modes)
        elif self.nearest_prototype and rng.integers(0, 2):
            lowered, _ = random_nearest_lowered(rng, self.lanes, self.codebook_depth, MAX_WIDTH,
                                                pvq_k_max=self.pvq_k_max)
        else:
            n_layers = int(rng.integers(1, MAX_FC_LAYERS + 1))
            shapes = [int(rng.integers(1, MAX_WIDTH)) for _ in range(n_layers + 1)]
            lowered = random_lowered(rng, self.lanes, shapes, self.codebook_depth, pvq_k_max=self.pvq_k_max,
                                     huffman_k_max=self.huffman_k_max,
                                     **{k: v for k, v in modes.items() if k != "nearest_prototype"})
        return self.retarget(build_program(lowered, **self._writer_args()))

    def retarget(self, program: Program) -> Program:
        """``program`` on the family's engine: its ROM padded to `rom_entries`; every unit the family has."""
        rom = [list(cw) for cw in program.meta["rom"]]
        if len(rom) > self.rom_entries:
            raise ValueError(f"{self.name}: a program's ROM of {len(rom)} entries exceeds the family's "
                             f"{self.rom_entries}")
        rom += [[0] * self.lanes] * (self.rom_entries - len(rom))
        # A program without a sparse layer leaves the decoder out; the family's engine has it.
        engine = dict(program.meta["engine"], windows=self.windows, avgpool=self.windows, residual=self.residual,
                      **({} if self.columns else self._huffman()), **self._modes(),
                      **(COLUMN_UNIT if self.columns else {}))
        return Program(dict(program.meta, rom=rom, engine=engine), program.image)


#: The campaign's engines: every layer mode and kind, lane counts that do and do not make
#: widths divide, a weight SRAM that holds some layers and not others.
FAMILIES = (
    Family("vq-4lanes", lanes=4, codebook_depth=16, weight_sram_words=96),
    Family("vq-8lanes", lanes=8, codebook_depth=64),
    Family("vq-pvq", lanes=4, codebook_depth=16, pvq_k_max=5, weight_sram_words=64),
    Family("vq-huffman", lanes=4, codebook_depth=16, huffman_k_max=16, weight_sram_words=128),
    Family("conv-pool", lanes=4, codebook_depth=16, max_features=1024, windows=True, weight_sram_words=256,
           residual=True),
    # Residual VQ (1 to 4 stages, the ROM's four read ports) and product VQ beside VQ and PVQ (whose
    # adds share a counter with the stages' sums).
    Family("rvq-pq", lanes=4, codebook_depth=16, pvq_k_max=3, weight_sram_words=64, rvq_stages_max=4, pq=True),
    # ... in convolutions and residual blocks too, at 8 lanes with two stages.
    Family("conv-rvq-pq", lanes=8, codebook_depth=16, max_features=1024, windows=True, weight_sram_words=256,
           residual=True, rvq_stages_max=2, pq=True),
    # The nearest-prototype unit after VQ and PVQ layers (whose adds share a counter with its differences).
    Family("vq-pvq-nearest", lanes=4, codebook_depth=16, pvq_k_max=3, weight_sram_words=64, nearest_prototype=True),
    # Several processing elements (rows not multiples of P, fewer rows than PEs, resident streams in the banks):
    # VQ, RVQ and PQ rows on 4 PEs; convolutions, pooling and residual blocks on 2.
    Family("vq-pes4", lanes=4, codebook_depth=16, weight_sram_words=96, rvq_stages_max=2, pq=True, pes=4),
    Family("conv-pes2", lanes=4, codebook_depth=16, max_features=1024, windows=True, weight_sram_words=256,
           residual=True, pes=2),
    # Column-wise sparse layers in the column unit beside VQ layers, with a weight SRAM the VQ layers may use.
    Family("vq-columns", lanes=4, codebook_depth=16, huffman_k_max=16, weight_sram_words=96, columns=True),
)
#: Families by name.
BY_NAME = {f.name: f for f in FAMILIES}
