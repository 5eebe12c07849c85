"""The layer-kind registry: what a layer's rows are applied to (:class:`model.contract.layout.LayerKind`).

A layer's *mode* (its codec, :mod:`model.codecs.layers.registry`) says how
its rows are coded; its *kind* says how the engine applies them: to the whole
input vector (FC), to each window of an input map (CONV), or not at all
(MAXPOOL and AVGPOOL, window reductions with no rows; ADD, the residual
connection's add of the input and the skip buffer), or as prototypes whose
nearest one's label is the output (NEAREST).  Each kind here gives
the golden model and program validation its counters and whether it has
rows, and a kind without rows writes and reads its own descriptor fields; its
arithmetic is in :mod:`model.golden.windows`.  Register a new kind with
:func:`register_layer_kind` and its arithmetic with
:func:`model.golden.windows.register_forward`.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from model.codecs.layers.base import DecodedLayer, LayerCodec, requant_words, split_requant
from model.contract.config import EngineConfig
from model.contract.counters import zero_counters
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault, ProgramError
from model.contract.fixedpoint import ACT_MAX, ACT_MIN, ACT_PARAM_MAX, ACT_PARAM_MIN, MULT_BITS, SHIFT_MAX
from model.contract.layout import DESC_WORDS, NEAREST_OUTPUTS, WINDOWED_KINDS, LayerKind, vector_align
from model.contract.ints import ceil_div, round_up
from model.contract.window import Window


class LayerKindRule:
    """Base class of the layer kinds.

    Members
    -------
    kind : LayerKind
        The descriptor's kind field.
    name : str
        The kind's name in program metadata (``"fc"``, ``"conv"``, ``"maxpool"``, ``"avgpool"``, ``"add"``,
        ``"nearest"``).
    has_rows : bool
        The layer has a row stream, read through its mode's codec.
    """
    kind: ClassVar[LayerKind]
    name: ClassVar[str]
    has_rows: ClassVar[bool] = True

    def stream_uses(self, layer: DecodedLayer) -> int:
        """Times one image reads the layer's stream."""
        return 1

    def check_rows(self, layer: DecodedLayer, where: str) -> None:
        """A kind's own checks of its decoded rows (after the mode's), raising the engine's ``EngineFault``."""

    def rowless_descriptor(self, i: int, layer) -> Descriptor:
        """A kind without rows: lowered layer ``i``'s descriptor (kind and window are set by the writer)."""
        return Descriptor(layer.in_features, layer.out_features, 0, 0, 0, 0, False, 0)

    def rowless_layer(self, desc: Descriptor) -> DecodedLayer:
        """A kind without rows: the layer as the datapath sees it, from its descriptor alone."""
        empty = np.zeros(0, dtype=np.int64)
        return DecodedLayer(desc, empty, empty, empty)

    def counters(self, codec: LayerCodec | None, layer: DecodedLayer, n_images: int, cfg: EngineConfig) -> dict:
        """Counters over ``n_images`` images with every stream read from DRAM (output writes included)."""
        raise NotImplementedError

    def macs(self, in_features: int, out_features: int, window: Window | None) -> int:
        """Multiply-accumulates of one image: every row against every vector it meets (a convolution's
        padding channels and padding taps included: the engine spends their cycles too)."""
        return in_features * out_features

    def ideal_cycles(self, in_features: int, out_features: int, window: Window | None, lanes: int) -> int:
        """Cycles of one image at one lane-word per cycle: its MACs ``lanes`` at a time (a layer without
        rows: every lane-word it reads)."""
        return ceil_div(self.macs(in_features, out_features, window), lanes)


def lane_words(features: int, lanes: int) -> int:
    """Activation-SRAM lane-words of a vector of ``features`` values, padded."""
    return round_up(features, vector_align(lanes)) // lanes


class FcKind(LayerKindRule):
    """Each row against the whole input vector: one output per row."""
    kind = LayerKind.FC
    name = "fc"

    def counters(self, codec, layer, n_images, cfg):
        c = codec.counters(layer, n_images, cfg)
        c["sram_writes"] = n_images * lane_words(layer.desc.out_features, cfg.lanes)   # the output packer
        return c


class ConvKind(LayerKindRule):
    """Every row against every output position's window; the stream is read once per position."""
    kind = LayerKind.CONV
    name = "conv"

    def stream_uses(self, layer):
        return layer.desc.window.positions()

    def macs(self, in_features, out_features, window):
        return window.positions() * in_features * out_features

    def counters(self, codec, layer, n_images, cfg):
        d, win, lanes = layer.desc, layer.desc.window, cfg.lanes
        positions = win.positions()
        c = codec.counters(layer, n_images * positions, cfg)
        # The descriptor is read once per image; a padding tap's lane-words read nothing.
        c["dram_read_words"] -= n_images * (positions - 1) * DESC_WORDS
        groups = win.channels(lanes) // lanes
        # Each row group's PEs share a tap's read (model.contract.layout, "Processing elements").
        c["sram_reads"] = n_images * ceil_div(d.out_features, cfg.pes) * int(win.tap_inside().sum()) * groups
        c["sram_writes"] = n_images * positions * lane_words(d.out_features, lanes)
        return c


class MaxPoolKind(LayerKindRule):
    """Per channel, the maximum over each window's taps inside the map (no rows, no stream)."""
    kind = LayerKind.MAXPOOL
    name = "maxpool"
    has_rows = False

    def stream_uses(self, layer):
        return 0

    def macs(self, in_features, out_features, window):
        return 0

    def ideal_cycles(self, in_features, out_features, window, lanes):
        return window.positions() * ceil_div(in_features, lanes)

    def counters(self, codec, layer, n_images, cfg):
        win, lanes = layer.desc.window, cfg.lanes
        groups = win.channels(lanes) // lanes
        c = zero_counters()
        c["dram_read_words"] = n_images * DESC_WORDS
        c["sram_reads"] = n_images * int(win.tap_inside().sum()) * groups
        c["sram_writes"] = n_images * win.positions() * groups
        return c


class AvgPoolKind(MaxPoolKind):
    """Per channel, the sum of each window's taps (padding zero), requantized by descriptor word 1.

    Counted as max pooling, plus ``lanes`` adds per lane-word read.
    """
    kind = LayerKind.AVGPOOL
    name = "avgpool"

    def counters(self, codec, layer, n_images, cfg):
        c = super().counters(codec, layer, n_images, cfg)
        c["adds"] = c["sram_reads"] * cfg.lanes
        return c

    def rowless_descriptor(self, i, layer):
        return requant_descriptor(i, layer, "average pooling")

    def rowless_layer(self, desc):
        return requant_layer(desc)


def requant_descriptor(i: int, layer, what: str) -> Descriptor:
    """The descriptor of a rowless layer whose word 1 is its requantization word (``mult``, ``shift``,
    ``act``, ``relu``, ``floor`` of the lowered layer); ``ProgramError`` naming ``what`` when out of range."""
    mult, shift, act = int(layer.mult), int(layer.shift), int(getattr(layer, "act", None) or 0)
    floor = bool(getattr(layer, "floor", False))
    lo, hi = (ACT_MIN, ACT_MAX) if floor else (ACT_PARAM_MIN, ACT_PARAM_MAX)
    if not (0 <= mult < 1 << MULT_BITS and 0 <= shift <= SHIFT_MAX and lo <= act <= hi):
        raise ProgramError(f"layer {i}: {what}'s mult={mult}, shift={shift} or activation "
                           f"parameter {act} out of range")
    word = int(requant_words(mult, shift, act))
    return Descriptor(layer.in_features, layer.out_features, word & 0xFFFF, word >> 16, 0, 0,
                      bool(layer.relu), 0, floor=floor)


def requant_layer(desc: Descriptor) -> DecodedLayer:
    """A rowless layer with one requantization (descriptor word 1) for every output: the golden model's
    per-row arrays."""
    mult, shift, act = (np.full(desc.out_features, int(v), dtype=np.int64)
                        for v in split_requant(desc.requant_word))
    return DecodedLayer(desc, np.zeros(desc.out_features, dtype=np.int64), mult, shift, act=act)


class AddKind(LayerKindRule):
    """The residual add: the input vector plus the skip buffer, lane-wise, requantized by descriptor word 1.

    One lane-word per cycle: two activation-SRAM reads (the input and the skip
    buffer), one write and ``lanes`` adds per lane-word.
    """
    kind = LayerKind.ADD
    name = "add"
    has_rows = False

    def stream_uses(self, layer):
        return 0

    def macs(self, in_features, out_features, window):
        return 0

    def ideal_cycles(self, in_features, out_features, window, lanes):
        return lane_words(in_features, lanes)

    def counters(self, codec, layer, n_images, cfg):
        words = lane_words(layer.desc.out_features, cfg.lanes)
        c = zero_counters()
        c["dram_read_words"] = n_images * DESC_WORDS
        c["sram_reads"] = n_images * 2 * words
        c["sram_writes"] = n_images * words
        c["adds"] = n_images * words * cfg.lanes
        return c

    def rowless_descriptor(self, i, layer):
        return requant_descriptor(i, layer, "the residual add")

    def rowless_layer(self, desc):
        return requant_layer(desc)


class NearestKind(FcKind):
    """The nearest-prototype unit: each VQ row a prototype, its squared distance to the input, the argmin's label.

    Counted as an FC layer in VQ mode (the squares as ``macs``) plus ``lanes``
    ``adds`` per beat (the differences); the output is one value
    (:mod:`model.contract.layout`, "Nearest-prototype layers").  The rows'
    bias words are their labels, 0 to ``ACT_MAX`` (else ``BAD_INDEX``).
    """
    kind = LayerKind.NEAREST
    name = "nearest"

    def counters(self, codec, layer, n_images, cfg):
        c = codec.counters(layer, n_images, cfg)
        c["adds"] = c["macs"]   # a difference per square
        c["sram_writes"] = n_images * lane_words(NEAREST_OUTPUTS, cfg.lanes)
        return c

    def check_rows(self, layer, where):
        bad = np.flatnonzero((layer.bias < 0) | (layer.bias > ACT_MAX))
        if len(bad):
            raise EngineFault(EngineError.BAD_INDEX, f"{where} row {bad[0]}: prototype label {layer.bias[bad[0]]} "
                                                     f"outside 0..{ACT_MAX}")


_BY_KIND: dict[int, LayerKindRule] = {}
_BY_NAME: dict[str, LayerKindRule] = {}


def register_layer_kind(rule: LayerKindRule) -> LayerKindRule:
    """Add a layer kind; its ``kind`` and ``name`` must be new."""
    if rule.kind in _BY_KIND or rule.name in _BY_NAME:
        raise ValueError(f"layer kind {rule.kind!r} / {rule.name!r} is already registered")
    _BY_KIND[int(rule.kind)] = _BY_NAME[rule.name] = rule
    return rule


for _rule in (FcKind(), ConvKind(), MaxPoolKind(), AvgPoolKind(), AddKind(), NearestKind()):
    register_layer_kind(_rule)


def kind_rule(kind: int) -> LayerKindRule:
    """The rule of a descriptor's kind (``BAD_MODE`` when none is registered)."""
    try:
        return _BY_KIND[int(kind)]
    except KeyError:
        raise EngineFault(EngineError.BAD_MODE, f"layer kind {kind} is not known") from None


def rowless_kinds() -> tuple[LayerKind, ...]:
    """The registered kinds without rows (the pooling kinds and the add), in kind order."""
    return tuple(LayerKind(k) for k in sorted(_BY_KIND) if not _BY_KIND[k].has_rows)


def pooling_kinds() -> tuple[LayerKind, ...]:
    """The registered windowed kinds without rows (MAXPOOL, AVGPOOL): window reductions."""
    return tuple(kind for kind in rowless_kinds() if kind in WINDOWED_KINDS)


def kind_named(name: str) -> LayerKindRule:
    """The rule of a metadata kind name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown layer kind {name!r}; registered: {', '.join(_BY_NAME)}") from None
