"""PVQ layers: dense rows of pyramid-VQ enumeration indices and scales, no codebook (``LayerMode.PVQ``)."""
from __future__ import annotations

import numpy as np

from model.codecs.layers.base import (DecodedLayer, LayerCodec, LayerImage, WriteContext, beats, check_row_words,
                                      dense_layer_image, dense_rows, first_bad_index, read_dense_rows, row_params)
from model.codecs.pvq import pvq_count, pvq_decode_many, pvq_encode_many
from model.contract.config import EngineConfig
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault, ProgramError
from model.contract.ints import ceil_div
from model.contract.layout import PVQ_SCALE_BITS, LayerMode
from model.contract.pyramid import pvq_entry_bits


def pvq_entries(layer, lanes: int, entry_bits: int) -> np.ndarray:
    """A PVQ layer's entries: enumeration index in the low bits, scale above it."""
    y = np.asarray(layer.pvq_y, dtype=np.int64)
    scale = np.asarray(layer.pvq_scale, dtype=np.int64)
    rows, s, n = y.shape
    if n != lanes or s != ceil_div(layer.in_features, lanes) or rows != layer.out_features:
        raise ProgramError(f"PVQ layer: vectors of shape {y.shape} do not match the layer and {lanes} lanes")
    if np.any(np.abs(y).sum(axis=2) != layer.pvq_k):
        raise ProgramError(f"PVQ layer: a vector does not have K={layer.pvq_k} pulses")
    if np.any((scale < 0) | (scale >> PVQ_SCALE_BITS > 0)):
        raise ProgramError(f"PVQ layer: scales outside 0..{(1 << PVQ_SCALE_BITS) - 1}")
    index = pvq_encode_many(y.reshape(-1, lanes), layer.pvq_k).astype(np.int64).reshape(rows, s)
    return index | scale << (entry_bits - PVQ_SCALE_BITS)


class PvqCodec(LayerCodec):
    """Each entry is a sub-vector's enumeration index in ``pvq_bits(lanes, K)`` bits and its 8-bit
    scale; the PVQ unit adds one activation per pulse (K per sub-vector)."""
    name = "pvq"
    mode = LayerMode.PVQ
    scenarios = ("pvq_engine", "pvq_entropy_floor")

    def write(self, i: int, layer, ctx: WriteContext) -> LayerImage:
        k = int(layer.pvq_k)
        if not 1 <= k <= ctx.pvq_k_max:
            raise ProgramError(f"layer {i}: PVQ K={k} outside the engine's 1..{ctx.pvq_k_max}")
        entry_bits = pvq_entry_bits(ctx.lanes, k)
        entries = pvq_entries(layer, ctx.lanes, entry_bits)
        bias, mult, shift, act = row_params(i, layer)
        rows = dense_rows(bias, mult, shift, act, entries, entry_bits)
        return dense_layer_image(layer, rows, (k, entry_bits), ctx, self.mode, {"pvq_k": k})

    def check(self, desc: Descriptor, cfg: EngineConfig, where: str) -> None:
        if not 1 <= desc.pvq_k <= cfg.pvq_k_max or desc.entry_bits != cfg.pvq_entry_bits(desc.pvq_k):
            raise EngineFault(EngineError.BAD_CODEBOOK,
                              f"{where}: PVQ K={desc.pvq_k} with {desc.entry_bits}-bit entries; the engine "
                              f"takes K 1..{cfg.pvq_k_max} with entries of pvq_bits(lanes, K) + scale bits")
        check_row_words(desc, cfg, desc.entry_bits, where)

    def decode(self, image, desc, cfg, layer, rom) -> DecodedLayer:
        bias, mult, shift, act, entries = read_dense_rows(image, desc, desc.entry_bits, cfg.lanes, layer)
        index_bits = desc.entry_bits - PVQ_SCALE_BITS
        indices, scale = entries & ((1 << index_bits) - 1), entries >> index_bits
        first_bad_index(indices, pvq_count(cfg.lanes, desc.pvq_k), layer, "pyramid size")

        def weights():
            rows, s = indices.shape
            y = pvq_decode_many(indices.reshape(-1).astype(np.uint64), cfg.lanes, desc.pvq_k)
            cw = y.reshape(rows, s, cfg.lanes) * scale[:, :, None]
            return cw.reshape(rows, -1).astype(np.int64)
        return DecodedLayer(desc, bias, mult, shift, {"indices": indices, "scales": scale}, _weights=weights, act=act)

    def counters(self, layer, n_images, cfg) -> dict:
        c = super().counters(layer, n_images, cfg)
        c["adds"] = n_images * beats(layer.desc, cfg.lanes) * layer.desc.pvq_k  # one signed add per pulse
        return c
