"""Product VQ layers: a codebook per block of columns (``LayerMode.PQ``).

Format in :mod:`model.contract.layout` ("Product VQ layers"): a row's
sub-vectors are cut into blocks of ``B = 2**mode_param`` sub-vectors; block
``b``'s codebook is the ``codebook_size`` ROM entries from ``codebook_base + b *
codebook_size``; entries are plain indices into their block's codebook.
"""
from __future__ import annotations

import numpy as np

from model.codecs.layers.base import (DecodedLayer, LayerCodec, LayerImage, WriteContext, beats,
                                      check_section_codebook, check_sections, dense_layer_image, dense_rows,
                                      first_bad_index, read_dense_rows, row_params)
from model.contract.config import EngineConfig
from model.contract.descriptor import Descriptor
from model.contract.errors import ProgramError
from model.contract.ints import ceil_div
from model.contract.layout import MODE_PARAM_BITS, LayerMode


def pq_blocks(subvectors: int, block_subvectors: int) -> int:
    """Column blocks of a row of ``subvectors`` sub-vectors (the last may be shorter)."""
    return ceil_div(subvectors, block_subvectors)


def pq_weights(rom: np.ndarray, base: int, size: int, block_subvectors: int, indices: np.ndarray) -> np.ndarray:
    """The integer sub-vectors ``rom[base + (j // B) * size + indices[r, j]]``: (rows, sub-vectors, lanes)."""
    idx = np.asarray(indices, dtype=np.int64)
    block = np.arange(idx.shape[1]) // block_subvectors
    return np.asarray(rom, dtype=np.int64)[base + block[None, :] * size + idx]


class PqCodec(LayerCodec):
    """Each row is ``ceil(in / lanes)`` indices of ``log2(codebook_depth)`` bits into their column block's
    codebook; one ROM read and ``lanes`` multiplies per index, as VQ.

    A lowered PQ layer has ``mode = "pq"``, ``block_subvectors`` (a power of two, at most
    ``2**(2**MODE_PARAM_BITS - 1)``), ``section_size`` (each block's codewords), ``codebook``
    (blocks x ``section_size``, lanes) int8, block ``b``'s from row ``b * section_size``, and
    ``indices`` (rows, sub-vectors) into the block's codebook.
    """
    name = "pq"
    mode = LayerMode.PQ
    scenarios = ("engine",)

    def codebook_size(self, layer) -> int:
        return int(layer.section_size)

    def write(self, i: int, layer, ctx: WriteContext) -> LayerImage:
        lanes, width = ctx.lanes, int(layer.block_subvectors)
        if width < 1 or width & (width - 1) or width.bit_length() > 1 << MODE_PARAM_BITS:
            raise ProgramError(f"layer {i}: a product-VQ block is a power of two sub-vectors up to "
                               f"{1 << ((1 << MODE_PARAM_BITS) - 1)}, got {width}")
        idx = np.asarray(layer.indices)
        blocks = pq_blocks(ceil_div(layer.in_features, lanes), width)
        size = check_section_codebook(i, layer, ctx, blocks, idx, "block")
        cb = np.asarray(layer.codebook)
        bias, mult, shift, act = row_params(i, layer)
        rows = dense_rows(bias, mult, shift, act, idx, ctx.index_bits)
        if ctx.shared_rom:
            raise ProgramError(f"layer {i}: product VQ keeps its block codebooks in the program's own ROM")
        base = len(ctx.rom)
        ctx.rom.extend(cb.tolist())
        image = dense_layer_image(layer, rows, (base, size), ctx, self.mode,
                                  {"block_subvectors": width, "blocks": blocks})
        image.descriptor.mode_param = width.bit_length() - 1
        return image

    def check(self, desc: Descriptor, cfg: EngineConfig, where: str) -> None:
        blocks = pq_blocks(ceil_div(desc.in_features, cfg.lanes), desc.block_subvectors)
        check_sections(desc, cfg, blocks, cfg.index_bits, where, "block codebook")

    def decode(self, image, desc, cfg, layer, rom) -> DecodedLayer:
        bias, mult, shift, act, indices = read_dense_rows(image, desc, cfg.index_bits, cfg.lanes, layer, cfg.pes)
        first_bad_index(indices, desc.codebook_size, layer, "block codebook size")

        def weights():
            cw = pq_weights(rom, desc.codebook_base, desc.codebook_size, desc.block_subvectors, indices)
            return cw.reshape(cw.shape[0], -1)
        return DecodedLayer(desc, bias, mult, shift, {"indices": indices}, _weights=weights, act=act)

    def counters(self, layer, n_images, cfg) -> dict:
        c = super().counters(layer, n_images, cfg)
        b = beats(layer.desc, cfg.lanes)
        c["rom_reads"] = n_images * b
        c["macs"] = n_images * b * cfg.lanes
        return c
