"""VQ layers: dense rows of fixed-width codebook indices into the ROM (``LayerMode.VQ``)."""
from __future__ import annotations

import numpy as np

from model.codecs.layers.base import (DecodedLayer, LayerCodec, LayerImage, WriteContext, beats, check_sections,
                                      compact_rows, dense_layer_image, dense_rows, first_bad_index, layer_act,
                                      read_dense_rows, row_params)
from model.contract.config import EngineConfig
from model.contract.descriptor import Descriptor
from model.contract.errors import ProgramError
from model.contract.fixedpoint import ACT_MAX, ACT_MIN, compact_row_params
from model.contract.ints import ceil_div
from model.contract.layout import LayerMode


class VqCodec(LayerCodec):
    """Each row is ``ceil(in / lanes)`` indices of ``log2(codebook_depth)`` bits; one ROM read and
    ``lanes`` multiplies per index."""
    name = "vq"
    mode = LayerMode.VQ
    scenarios = ("vq_sram", "engine", "entropy_floor")

    def write(self, i: int, layer, ctx: WriteContext) -> LayerImage:
        lanes = ctx.lanes
        cb = np.asarray(layer.codebook)
        if cb.ndim != 2 or cb.shape[1] != lanes:
            raise ProgramError(f"layer {i}: codebook shape {cb.shape} does not match {lanes} lanes")
        if cb.shape[0] > ctx.codebook_depth:
            raise ProgramError(f"layer {i}: {cb.shape[0]} codewords exceed codebook depth {ctx.codebook_depth}")
        if cb.min() < ACT_MIN or cb.max() > ACT_MAX:
            raise ProgramError(f"layer {i}: codebook values outside int8")
        idx = np.asarray(layer.indices)
        if idx.shape != (layer.out_features, ceil_div(layer.in_features, lanes)):
            raise ProgramError(f"layer {i}: index array shape {idx.shape} does not match the layer")
        if idx.min() < 0 or idx.max() >= len(cb):
            raise ProgramError(f"layer {i}: codebook indices out of range 0..{len(cb) - 1}")
        bias, mult, shift, act = row_params(i, layer)
        compact_word = None
        # Compact rows are for fully-connected layers; a windowed layer's rows hold the same values in
        # the two-word format.
        if getattr(layer, "compact", False) and getattr(layer, "kind", "fc") == "fc":
            rows, compact_word = compact_rows(bias, mult, shift, act, idx, ctx.index_bits)
        else:
            rows = dense_rows(bias, mult, shift, act, idx, ctx.index_bits)
        if ctx.shared_rom:
            base = 0
            if cb.shape != (len(ctx.rom), lanes) or np.any(cb != np.asarray(ctx.rom)):
                raise ProgramError(f"layer {i}: its codebook is not the shared ROM codebook")
        else:
            base = len(ctx.rom)
            ctx.rom.extend(cb.tolist())
        return dense_layer_image(layer, rows, (base, len(cb)), ctx, self.mode, compact_word=compact_word)

    def check(self, desc: Descriptor, cfg: EngineConfig, where: str) -> None:
        check_sections(desc, cfg, 1, cfg.index_bits, where)

    def decode(self, image, desc, cfg, layer, rom) -> DecodedLayer:
        bias, mult, shift, act, indices = read_dense_rows(image, desc, cfg.index_bits, cfg.lanes, layer, cfg.pes)
        first_bad_index(indices, desc.codebook_size, layer, "codebook size")

        def weights():
            cw = rom[desc.codebook_base + indices]  # (out, S, lanes)
            return cw.reshape(cw.shape[0], -1).astype(np.int64)
        return DecodedLayer(desc, bias, mult, shift, {"indices": indices}, _weights=weights, act=act)

    def counters(self, layer, n_images, cfg) -> dict:
        c = super().counters(layer, n_images, cfg)
        b = beats(layer.desc, cfg.lanes)
        c["rom_reads"] = n_images * b
        c["macs"] = n_images * b * cfg.lanes
        return c


def make_compact(layer) -> bool:
    """Give a lowered fully-connected VQ layer compact rows (:mod:`model.contract.layout`), if it can have them.

    Its parameters become what the compact format holds (`compact_row_params`: one shift, biases of
    one scale), so the golden model and the engine compute with exactly those.  A layer whose rows have
    different activation parameters (a per-channel PReLU) keeps its two-word rows.  Returns whether
    the layer is now compact.
    """
    act = layer_act(layer)
    if getattr(layer, "kind", "fc") != "fc" or (getattr(layer, "mode", None) or "vq") != "vq" or np.any(act != act[0]):
        return False
    bias16, mult, shift, bias_shift, _ = compact_row_params(layer.bias, layer.mult, layer.shift, act)
    layer.bias, layer.mult, layer.shift = bias16 << bias_shift, mult, np.full_like(mult, shift)
    layer.compact = True
    return True

