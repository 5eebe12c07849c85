"""The layer-kind registry: which codec handles each layer mode, and reading a whole job through them.

Register a new kind with :func:`register_layer_codec` (the built-in ones are
registered below); the program writer, the golden model, program validation
and the energy report then handle it with no other change to their code.
"""
from __future__ import annotations

import numpy as np

from model.codecs.layers.base import DecodedLayer, LayerCodec
from model.codecs.layers.columns import ColumnsCodec
from model.codecs.layers.e8p import E8pCodec
from model.codecs.layers.huffman import HuffmanCodec
from model.codecs.layers.kinds import kind_rule
from model.codecs.layers.pq import PqCodec
from model.codecs.layers.pvq import PvqCodec
from model.codecs.layers.rvq import RvqCodec
from model.codecs.layers.vq import VqCodec
from model.contract.config import EngineConfig
from model.contract.descriptor import (Descriptor, JobHeader, check_input, check_placement, read_job_header,
                                      read_words)
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import DESC_WORDS

#: Codecs by descriptor mode, and by their metadata name.
_BY_MODE: dict[int, LayerCodec] = {}
_BY_NAME: dict[str, LayerCodec] = {}


def register_layer_codec(codec: LayerCodec) -> LayerCodec:
    """Add a layer codec; its ``mode`` and ``name`` must be new."""
    if codec.mode in _BY_MODE or codec.name in _BY_NAME:
        raise ValueError(f"layer mode {codec.mode!r} / {codec.name!r} is already registered")
    _BY_MODE[int(codec.mode)] = _BY_NAME[codec.name] = codec
    return codec


for _codec in (VqCodec(), HuffmanCodec(), PvqCodec(), RvqCodec(), PqCodec(), E8pCodec(), ColumnsCodec()):
    register_layer_codec(_codec)


def layer_codecs() -> tuple[LayerCodec, ...]:
    """Every registered codec, in mode order."""
    return tuple(_BY_MODE[m] for m in sorted(_BY_MODE))


def codec_for_mode(mode: int) -> LayerCodec:
    """The codec of a descriptor's mode (the mode must be registered)."""
    try:
        return _BY_MODE[int(mode)]
    except KeyError:
        raise EngineFault(EngineError.BAD_MODE, f"layer mode {mode} has no codec") from None


def codec_named(name: str) -> LayerCodec:
    """The codec of a metadata mode name (``"vq"``, ``"pvq"``, ``"huffman"``, ...)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown layer mode {name!r}; registered: {', '.join(_BY_NAME)}") from None


def decode_job(image: np.ndarray, cfg: EngineConfig, rom: np.ndarray) -> tuple[JobHeader, list[DecodedLayer]]:
    """Check the header and every layer in the RTL's order and read their streams.

    Raises ``EngineFault`` with the engine's error status at the first problem.
    """
    hdr = read_job_header(image)
    check_input(hdr, cfg)
    image = hdr.readable(image)
    layers = []
    prev = hdr.input_features
    saved = 0   # the skip buffer's vector size (model.contract.layout, "Skip buffer"); none at an image's start
    for i in range(hdr.n_layers):
        desc = Descriptor.decode(read_words(image, hdr.desc_addr + i * DESC_WORDS, DESC_WORDS,
                                            f"layer {i} descriptor"))
        desc.check(cfg, prev, i, saved)
        layers.append(decode_layer(image, desc, cfg, i, rom, prev))
        prev = desc.output_features(cfg.lanes)
        if desc.save and cfg.residual:
            saved = prev
    return hdr, layers


def decode_layer(image: np.ndarray, desc: Descriptor, cfg: EngineConfig, i: int, rom: np.ndarray,
                 prev_features: int) -> DecodedLayer:
    """One layer, after the common descriptor checks: its mode's checks, its window, its placement, its stream.

    ``prev_features`` is the size of the layer's input (a window's chain is checked here).
    """
    rule = kind_rule(desc.kind)
    where = f"layer {i}"
    codec = codec_for_mode(desc.mode) if rule.has_rows else None
    if codec is not None:
        codec.check(desc, cfg, where)
    if desc.windowed:
        desc.window.check(not rule.has_rows, desc.in_features, desc.out_features, prev_features, cfg.max_features,
                          cfg.lanes, where)
    if codec is None:
        return rule.rowless_layer(desc)
    words = codec.stream_words(image, desc, where)
    check_placement(desc, words, cfg, where)
    layer = codec.decode(image, desc, cfg, i, rom)
    rule.check_rows(layer, where)
    layer.stream_words = words
    return layer
