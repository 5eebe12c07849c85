"""Residual VQ layers: each sub-vector the sum of one codeword per stage (``LayerMode.RVQ``).

Format in :mod:`model.contract.layout` ("Residual VQ layers"): stage ``s``'s
codebook is the ``codebook_size`` ROM entries from ``codebook_base + s *
codebook_size``; an entry holds the sub-vector's ``S`` indices, stage 0 lowest.
"""
from __future__ import annotations

import numpy as np

from model.codecs.layers.base import (DecodedLayer, LayerCodec, LayerImage, WriteContext, beats,
                                      check_section_codebook, check_sections, dense_layer_image, dense_rows,
                                      read_dense_rows, row_params)
from model.contract.config import EngineConfig
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault, ProgramError
from model.contract.layout import RVQ_STAGES_MAX, LayerMode


def rvq_weights(sections: np.ndarray, base: int, size: int, indices: np.ndarray) -> np.ndarray:
    """The integer sub-vectors ``sum_s sections[base + s * size + indices[..., s]]``: (rows, sub-vectors, lanes).

    Parameters
    ----------
    sections : numpy.ndarray, shape (entries, lanes)
        The ROM (or a layer's stacked stage codebooks).
    base, size : int
        Stage 0's first entry and each stage's size.
    indices : numpy.ndarray of int, shape (rows, sub-vectors, stages)
        Each stage's index, below ``size``.
    """
    sections = np.asarray(sections, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64)
    offsets = base + size * np.arange(idx.shape[-1])
    return sections[idx + offsets].sum(axis=-2)


def pack_stages(indices: np.ndarray, index_bits: int) -> np.ndarray:
    """Each sub-vector's stage indices as one entry, stage ``s`` at bit ``s * index_bits``: (rows, sub-vectors)."""
    idx = np.asarray(indices, dtype=np.int64)
    return sum(idx[..., s] << (s * index_bits) for s in range(idx.shape[-1]))


def unpack_stages(entries: np.ndarray, index_bits: int, stages: int) -> np.ndarray:
    """Inverse of :func:`pack_stages`: (rows, sub-vectors, stages)."""
    e = np.asarray(entries, dtype=np.int64)
    return np.stack([(e >> (s * index_bits)) & ((1 << index_bits) - 1) for s in range(stages)], axis=-1)


class RvqCodec(LayerCodec):
    """Each row is ``ceil(in / lanes)`` entries of ``S`` stage indices; the engine reads the ``S``
    codewords in parallel (``S`` ROM reads), adds them lane-wise and does ``lanes`` multiplies.

    A lowered RVQ layer has ``mode = "rvq"``, ``codebook`` (``S * section_size``, lanes) int8 (stage
    ``s`` from row ``s * section_size``), ``section_size`` and ``indices`` (rows, sub-vectors, ``S``).
    """
    name = "rvq"
    mode = LayerMode.RVQ
    scenarios = ("engine",)

    def codebook_size(self, layer) -> int:
        return int(layer.section_size)

    def write(self, i: int, layer, ctx: WriteContext) -> LayerImage:
        cb = np.asarray(layer.codebook)
        idx = np.asarray(layer.indices)
        stages = idx.shape[-1] if idx.ndim == 3 else 0
        if not 1 <= stages <= RVQ_STAGES_MAX:
            raise ProgramError(f"layer {i}: residual VQ needs indices (rows, sub-vectors, 1..{RVQ_STAGES_MAX} "
                               f"stages), got shape {idx.shape}")
        size = check_section_codebook(i, layer, ctx, stages, idx, "stage")
        bias, mult, shift, act = row_params(i, layer)
        entry_bits = stages * ctx.index_bits
        rows = dense_rows(bias, mult, shift, act, pack_stages(idx, ctx.index_bits), entry_bits)
        if ctx.shared_rom:   # a multi-stage universal ROM: its sections are the stages, from entry 0
            base = 0
            if len(ctx.rom) < stages * size or np.any(cb != np.asarray(ctx.rom[:stages * size])):
                raise ProgramError(f"layer {i}: its stage codebooks are not the shared ROM's first "
                                   f"{stages} sections of {size}")
        else:
            base = len(ctx.rom)
            ctx.rom.extend(cb.tolist())
        image = dense_layer_image(layer, rows, (base, size), ctx, self.mode, {"stages": stages})
        image.descriptor.mode_param = stages - 1
        return image

    def check(self, desc: Descriptor, cfg: EngineConfig, where: str) -> None:
        if desc.stages > cfg.rvq_stages_max:
            raise EngineFault(EngineError.BAD_CODEBOOK, f"{where}: {desc.stages} stages, the engine sums at most "
                                                        f"{cfg.rvq_stages_max}")
        check_sections(desc, cfg, desc.stages, desc.stages * cfg.index_bits, where, "stage codebook")

    def decode(self, image, desc, cfg, layer, rom) -> DecodedLayer:
        s = desc.stages
        bias, mult, shift, act, entries = read_dense_rows(image, desc, s * cfg.index_bits, cfg.lanes, layer, cfg.pes)
        indices = unpack_stages(entries, cfg.index_bits, s)
        bad = np.argwhere((indices >= desc.codebook_size).any(axis=-1))
        if len(bad):
            r, j = bad[0]
            raise EngineFault(EngineError.BAD_INDEX, f"layer {layer} row {r} sub-vector {j}: a stage index of "
                                                     f"{indices[r, j].tolist()} >= {desc.codebook_size}")

        def weights():
            cw = rvq_weights(rom, desc.codebook_base, desc.codebook_size, indices)
            return cw.reshape(cw.shape[0], -1)
        return DecodedLayer(desc, bias, mult, shift, {"indices": entries, "stage_indices": indices},
                            _weights=weights, act=act)

    def counters(self, layer, n_images, cfg) -> dict:
        c = super().counters(layer, n_images, cfg)
        b, s = beats(layer.desc, cfg.lanes), layer.desc.stages
        c["rom_reads"] = n_images * b * s             # one read port per stage
        c["macs"] = n_images * b * cfg.lanes
        c["adds"] = n_images * b * (s - 1) * cfg.lanes   # the lane-wise sums of the stages' codewords
        return c
