"""E8P lattice layers: dense rows of 16-bit codeword indices into the engine's fixed lattice codebook
(``LayerMode.E8P``).

Format in :mod:`model.contract.layout` ("E8P lattice layers"); the codewords are
:func:`model.codecs.e8p.e8p_decode`'s, decoded from the engine's own 256-entry table,
so a program adds nothing to the ROM.
"""
from __future__ import annotations

import numpy as np

from model.codecs.e8p import E8P_CODEWORDS, e8p_codewords, e8p_decode
from model.codecs.layers.base import (DecodedLayer, LayerCodec, LayerImage, WriteContext, beats, check_row_words,
                                      dense_layer_image, dense_rows, read_dense_rows, row_params)
from model.contract.config import EngineConfig
from model.contract.descriptor import Descriptor
from model.contract.errors import ProgramError
from model.contract.ints import ceil_div
from model.contract.layout import E8P_DIM, E8P_INDEX_BITS, LayerMode


class E8pCodec(LayerCodec):
    """Each row is ``ceil(in / 8)`` 16-bit E8P codeword indices; one table read and 8 multiplies per index.

    A lowered E8P layer has ``mode = "e8p"``, ``codebook`` :func:`model.codecs.e8p.e8p_codewords` (every
    codeword, index order: what the lowering's integer weights index) and ``indices`` (rows,
    sub-vectors) of codeword indices.
    """
    name = "e8p"
    mode = LayerMode.E8P
    scenarios = ("engine",)

    def write(self, i: int, layer, ctx: WriteContext) -> LayerImage:
        if ctx.lanes != E8P_DIM:
            raise ProgramError(f"layer {i}: E8P codewords have {E8P_DIM} lanes, the engine has {ctx.lanes}")
        cb = np.asarray(layer.codebook)
        if cb.shape != (E8P_CODEWORDS, E8P_DIM) or np.any(cb != e8p_codewords()):
            raise ProgramError(f"layer {i}: an E8P layer's codebook must be the E8P codewords "
                               f"(model.codecs.e8p.e8p_codewords)")
        idx = np.asarray(layer.indices)
        if idx.shape != (layer.out_features, ceil_div(layer.in_features, E8P_DIM)):
            raise ProgramError(f"layer {i}: index array shape {idx.shape} does not match the layer")
        if idx.size and (idx.min() < 0 or idx.max() >= E8P_CODEWORDS):
            raise ProgramError(f"layer {i}: E8P indices out of range 0..{E8P_CODEWORDS - 1}")
        bias, mult, shift, act = row_params(i, layer)
        rows = dense_rows(bias, mult, shift, act, idx, E8P_INDEX_BITS)
        return dense_layer_image(layer, rows, (0, 0), ctx, self.mode)

    def engine_options(self, descs, metas=()) -> dict:
        return {"lattice": True}

    def check(self, desc: Descriptor, cfg: EngineConfig, where: str) -> None:
        check_row_words(desc, cfg, E8P_INDEX_BITS, where)

    def decode(self, image, desc, cfg, layer, rom) -> DecodedLayer:
        bias, mult, shift, act, indices = read_dense_rows(image, desc, E8P_INDEX_BITS, cfg.lanes, layer, cfg.pes)

        def weights():
            cw = e8p_decode(indices)    # (out, S, 8)
            return cw.reshape(cw.shape[0], -1)
        return DecodedLayer(desc, bias, mult, shift, {"indices": indices}, _weights=weights, act=act)

    def counters(self, layer, n_images, cfg) -> dict:
        c = super().counters(layer, n_images, cfg)
        b = beats(layer.desc, cfg.lanes)
        c["rom_reads"] = n_images * b      # one read of the 256-entry table
        c["macs"] = n_images * b * cfg.lanes
        return c
