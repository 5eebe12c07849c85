"""Descriptor check: is a layer descriptor one this engine can run, and if not, which error."""
from functools import reduce
from operator import or_

from amaranth.hdl import Array, Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS, MODE_PARAM_BIT, DescriptorLayout
from model.codecs.layers.kinds import rowless_kinds
from model.contract.config import EngineConfig
from model.contract.errors import ERROR_BITS, EngineError
from model.contract.layout import (COLUMN_K_MAX, COMPACT_ROW_HEADER_WORDS, E8P_INDEX_BITS, MODE_PARAM_BITS,
                                   ROW_HEADER_WORDS, WORD_BITS, LayerKind, LayerMode)

log2 = lambda n: n.bit_length() - 1  # noqa: E731  (powers of two only)


def subvectors(features, lanes: int):
    """Sub-vectors (lane-words) of a vector of ``features`` values: ``ceil(features / lanes)``."""
    return (features + (lanes - 1)) >> log2(lanes)


def bad_row_words(d, cfg: EngineConfig, entry_bits):
    """A dense layer's ``row_words`` is not the header plus its entries of ``entry_bits``
    (:func:`model.codecs.layers.base.check_row_words`)."""
    index_words = (subvectors(d.in_features, cfg.lanes) * entry_bits + (WORD_BITS - 1)) >> log2(WORD_BITS)
    return d.row_words != Mux(d.compact, COMPACT_ROW_HEADER_WORDS, ROW_HEADER_WORDS) + index_words


# Each mode's own rules, after the common ones: (bad codebook, bad stream), in the
# order of its layer codec's ``check`` (model.codecs.layers).

def vq_rules(d, cfg: EngineConfig):
    """:meth:`model.codecs.layers.vq.VqCodec.check`."""
    bad_codebook = ((d.codebook_size == 0) | (d.codebook_size > cfg.codebook_depth)
                    | (d.codebook_base + d.codebook_size > cfg.rom_entries))
    return bad_codebook, bad_row_words(d, cfg, cfg.index_bits)


def pvq_rules(d, cfg: EngineConfig):
    """:meth:`model.codecs.layers.pvq.PvqCodec.check`."""
    width = Array(Const(cfg.pvq_entry_bits(k) if k else 0, 8) for k in range(cfg.pvq_k_max + 1))
    bad_pyramid = (d.pvq_k == 0) | (d.pvq_k > cfg.pvq_k_max) | (d.entry_bits != width[d.pvq_k])
    # The row-words rule reads the low six bits of the width (entries narrower than 64 bits).
    return bad_pyramid, bad_row_words(d, cfg, d.entry_bits[:6])


def huffman_rules(d, cfg: EngineConfig):
    """:meth:`model.codecs.layers.huffman.HuffmanCodec.check`; the stream is checked as it is read."""
    bad_codebook = ((d.codebook_size == 0) | (d.codebook_size > cfg.huffman_k_max)
                    | (d.codebook_base + subvectors(d.codebook_size, cfg.lanes) > cfg.rom_entries))
    return bad_codebook, Const(0)


def mode_param_of(d):
    """The descriptor's ``MODE_PARAM`` bits (read as bits: a `DescriptorLayout` field would change every
    engine's Verilog)."""
    return d.as_value()[MODE_PARAM_BIT:MODE_PARAM_BIT + MODE_PARAM_BITS]


def rvq_rules(d, cfg: EngineConfig):
    """:meth:`model.codecs.layers.rvq.RvqCodec.check`."""
    stages = mode_param_of(d) + 1
    span = stages * d.codebook_size
    bad_codebook = ((stages > cfg.rvq_stages_max) | (d.codebook_size == 0) | (d.codebook_size > cfg.codebook_depth)
                    | (d.codebook_base + span > cfg.rom_entries))
    return bad_codebook, bad_row_words(d, cfg, stages * cfg.index_bits)


def pq_rules(d, cfg: EngineConfig):
    """:meth:`model.codecs.layers.pq.PqCodec.check`: the blocks' codebooks, ``ceil(subvectors / width) *
    codebook_size`` entries, must fit the ROM."""
    log2_width = mode_param_of(d)
    blocks = (subvectors(d.in_features, cfg.lanes) + (Const(1, 1 << MODE_PARAM_BITS) << log2_width) - 1) >> log2_width
    bad_codebook = ((d.codebook_size == 0) | (d.codebook_size > cfg.codebook_depth)
                    | (d.codebook_base + blocks * d.codebook_size > cfg.rom_entries))
    return bad_codebook, bad_row_words(d, cfg, cfg.index_bits)


def e8p_rules(d, cfg: EngineConfig):
    """:meth:`model.codecs.layers.e8p.E8pCodec.check`: no codebook fields (the table is the engine's), 16-bit entries."""
    return Const(0), bad_row_words(d, cfg, E8P_INDEX_BITS)


def columns_rules(d, cfg: EngineConfig):
    """:meth:`model.codecs.layers.columns.ColumnsCodec.check`: 1..``COLUMN_K_MAX`` centroids (word 3's low
    half); resident only in the column unit."""
    k = d.row_words
    return (k == 0) | (k > COLUMN_K_MAX), d.resident


#: The rules of each layer mode, as :mod:`model.codecs.layers.registry` has a codec for each.
MODE_RULES = {LayerMode.VQ: vq_rules, LayerMode.PVQ: pvq_rules, LayerMode.HUFFMAN: huffman_rules,
              LayerMode.RVQ: rvq_rules, LayerMode.PQ: pq_rules, LayerMode.E8P: e8p_rules,
              LayerMode.COLUMNS: columns_rules}


class DescriptorCheck(wiring.Component):
    """Checks a layer descriptor against the engine: the first rule it breaks, as an error code.

    Combinational.  The rules and their order are the golden model's: first
    :meth:`model.contract.descriptor.Descriptor.check` (one activation at most and the mode is one this
    engine has, ``BAD_MODE``; both feature counts are 1 to ``max_features``,
    ``BAD_SHAPE``, and an add's are equal; an FC or add layer's input is the previous
    layer's output and an add's the skip buffer's saved vector too, ``BAD_CHAIN``), then
    the mode's codec ``check`` in :mod:`model.codecs.layers` (its codebook,
    ``BAD_CODEBOOK``, then its stream, ``BAD_STREAM``); on an engine without a
    weight SRAM, a resident layer is ``BAD_STREAM`` too (with one, the engine
    checks the placement itself, :func:`model.contract.descriptor.check_placement`).

    Parameters
    ----------
    config : EngineConfig
        The engine: its modes, shapes, ROM and codebook limits.

    Members
    -------
    descriptor : In(DescriptorLayout)
        The descriptor's words.
    features : In(COUNT_BITS)
        Size of the layer's input: the previous layer's output, or the job's input.
    saved : In(COUNT_BITS)
        Only with ``config.residual``: the size of the skip buffer's vector (0: none saved).
    error : Out(ERROR_BITS)
        :class:`model.contract.errors.EngineError` value; ``NONE`` when the layer may run.
    """

    def __init__(self, config: EngineConfig):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self.config = config
        super().__init__({
            "descriptor": In(DescriptorLayout),
            "features": In(COUNT_BITS),
            **({"saved": In(COUNT_BITS)} if config.residual else {}),
            "error": Out(ERROR_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, d = self.config, self.descriptor
        modes = [mode for mode in LayerMode if cfg.supports_mode(mode)]
        # The kinds and modes this engine runs (EngineConfig.supports_kind); a pooling layer has no mode.
        rowless = rowless_kinds()
        supported = reduce(or_, [(d.kind == kind) & (d.mode == mode) for kind in LayerKind for mode in LayerMode
                                 if cfg.supports_kind(kind, mode) and kind not in rowless], Const(0))
        pooling = reduce(or_, [d.kind == kind for kind in rowless if cfg.supports_kind(kind, 0)], Const(0))
        supported = supported | pooling

        def shape_ok(n):
            return (n != 0) & (n <= cfg.max_features)

        # Compact rows: fully-connected VQ layers only (model.contract.descriptor.Descriptor.check).
        bad_compact = d.compact & ((d.kind != LayerKind.FC) | (d.mode != LayerMode.VQ))
        bad_mode = ~supported | (d.relu & d.floor) | bad_compact
        bad_shape = ~shape_ok(d.in_features) | ~shape_ok(d.out_features)
        bad_chain = (d.kind == LayerKind.FC) & (d.in_features != self.features)
        if cfg.nearest_prototype:   # no activation; whole lane-words; chained as FC
            nearest = d.kind == LayerKind.NEAREST
            bad_mode = bad_mode | (nearest & (d.relu | d.floor))
            bad_shape = bad_shape | (nearest & (d.in_features[:log2(cfg.lanes)] != 0) if cfg.lanes > 1 else bad_shape)
            bad_chain = bad_chain | (nearest & (d.in_features != self.features))
        if cfg.residual:   # an add: as wide as its input and as the saved vector
            add = d.kind == LayerKind.ADD
            bad_shape = bad_shape | (add & (d.in_features != d.out_features))
            bad_chain = bad_chain | (add & ((d.in_features != self.features) | (d.in_features != self.saved)))
        with m.If(bad_mode):
            m.d.comb += self.error.eq(EngineError.BAD_MODE)
        with m.Elif(bad_shape):
            m.d.comb += self.error.eq(EngineError.BAD_SHAPE)
        with m.Elif(bad_chain):
            m.d.comb += self.error.eq(EngineError.BAD_CHAIN)
        with m.Elif(~pooling):
            with m.Switch(d.mode):
                for mode in modes:
                    bad_codebook, bad_stream = MODE_RULES[mode](d, cfg)
                    if not cfg.weight_sram_words:   # no stream fits a weight SRAM of no words
                        bad_stream = bad_stream | d.resident
                    with m.Case(mode):
                        with m.If(bad_codebook):
                            m.d.comb += self.error.eq(EngineError.BAD_CODEBOOK)
                        with m.Elif(bad_stream):
                            m.d.comb += self.error.eq(EngineError.BAD_STREAM)
        return m
