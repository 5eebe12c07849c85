"""What every layer codec provides, and the row-stream helpers the dense modes share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from model.codecs.index_packing import pack_indices, unpack_indices
from model.contract.config import EngineConfig
from model.contract.counters import zero_counters
from model.contract.descriptor import Descriptor, read_words
from model.contract.errors import EngineError, EngineFault, ProgramError
from model.contract.fixedpoint import (ACC_BITS, ACT_MAX, ACT_MIN, ACT_PARAM_BITS, ACT_PARAM_MAX, ACT_PARAM_MIN,
                                       ACT_PARAM_SHIFT, COMPACT_BIAS_BITS, MULT_BITS, SHIFT_MAX, compact_row_params)
from model.contract.ints import ceil_div
from model.contract.layout import (COMPACT_ACT_LSB, COMPACT_BIAS_SHIFT_LSB, COMPACT_ROW_HEADER_WORDS, COMPACT_SHIFT_LSB,
                                   DESC_WORDS, ROW_HEADER_WORDS, LayerMode, pe_stream_order, row_words)


@dataclass
class WriteContext:
    """The engine a program is being written for, and where the layer goes.

    Members
    -------
    lanes : int
        Engine lanes (the sub-vector dimension).
    codebook_depth : int
        Largest codebook a VQ layer may use (indices are ``log2`` of it wide).
    pvq_k_max : int
        Largest PVQ K the engine takes (0: no PVQ unit).
    huffman_max_len, huffman_symbol_bits : int
        The Huffman decoder's code length limit and symbol width (0: no decoder).
    rom : list
        The program's ROM entries so far; a codec appends its own.
    shared_rom : bool
        The ROM is a shared (universal) codebook: layers index it from entry 0 and add nothing.
    stream_addr : int
        DRAM word address of the layer's stream.
    pes : int
        Processing elements of the engine.  Only the layers whose stream depends on them (sparse
        HUFFMAN layers) are written for them; dense streams are laid out for them afterwards
        (:func:`model.program.writer.lay_out_for_pes`).
    """
    lanes: int
    codebook_depth: int
    pvq_k_max: int = 0
    huffman_max_len: int = 0
    huffman_symbol_bits: int = 0
    rom: list = field(default_factory=list)
    shared_rom: bool = False
    stream_addr: int = 0
    pes: int = 1

    @property
    def index_bits(self) -> int:
        return self.codebook_depth.bit_length() - 1


@dataclass
class LayerImage:
    """One layer as the program file holds it.

    Members
    -------
    descriptor : Descriptor
    stream : numpy.ndarray of uint32
        The layer's row stream, at ``descriptor.stream_addr``.
    meta : dict
        Mode-specific entries of the layer's metadata (besides shape, ReLU, mode, codebook size).
    """
    descriptor: Descriptor
    stream: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass
class DecodedLayer:
    """A layer as the datapath sees it once its stream is read.

    Members
    -------
    desc : Descriptor
    bias, mult, shift : numpy.ndarray of int64, shape (out_features,)
        Per-row bias and requantization.
    act : numpy.ndarray of int64, shape (out_features,), optional
        Per-row activation parameter (None: zero).
    events : dict
        What the stream held that the counters depend on (per image).
    stream_words : int
        Words of the layer's stream the engine reads (:meth:`LayerCodec.stream_words`).
    """
    desc: Descriptor
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    events: dict = field(default_factory=dict)
    stream_words: int = 0
    _weights: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    _cache: np.ndarray | None = field(default=None, repr=False)
    act: np.ndarray | None = None

    def weights(self) -> np.ndarray:
        """Integer weight matrix ``(out_features, >= in_features)`` the datapath multiplies with."""
        if self._cache is None:
            self._cache = self._weights()
        return self._cache


class LayerCodec:
    """Base class of the layer codecs: one per :class:`~model.contract.layout.LayerMode`.

    Members
    -------
    name : str
        The mode's name in program metadata (``"vq"``, ``"pvq"``, ...).
    mode : LayerMode
        The descriptor's mode field.
    scenarios : tuple of str
        Energy scenarios (``sim.report``) that price a layer of this kind.
    """
    name: ClassVar[str]
    mode: ClassVar[LayerMode]
    scenarios: ClassVar[tuple[str, ...]] = ()

    # --- program writer ---------------------------------------------------------------
    def write(self, i: int, layer, ctx: WriteContext) -> LayerImage:
        """Lay out lowered layer ``i``; raise :class:`ProgramError` for anything the engine cannot run."""
        raise NotImplementedError

    def codebook_size(self, layer) -> int:
        """The ``codebook_size`` recorded in the layer's metadata."""
        return int(len(layer.codebook))

    def engine_options(self, descs, metas=()) -> dict:
        """The program's ``engine`` entries (:class:`~model.contract.config.EngineConfig` fields) a program
        with layers of this mode needs, given those layers' descriptors and :attr:`LayerImage.meta`
        (the E8P unit: ``lattice``; the column unit's sizes)."""
        return {}

    # --- engine (golden model and program validation) ---------------------------------
    def check(self, desc: Descriptor, cfg: EngineConfig, where: str) -> None:
        """The mode's descriptor checks, after the common ones, in the RTL's order."""
        raise NotImplementedError

    def stream_words(self, image: np.ndarray, desc: Descriptor, where: str) -> int:
        """Words of the layer's stream, as the engine knows them before it reads the stream.

        A dense layer's is ``out_features * row_words``; a sized stream's is
        read from its size word (``BAD_STREAM`` past the end of DRAM).
        """
        return desc.out_features * desc.row_words

    def decode(self, image: np.ndarray, desc: Descriptor, cfg: EngineConfig, layer: int,
               rom: np.ndarray) -> DecodedLayer:
        """Read the layer's stream as the engine does; raise ``EngineFault`` where it would stop."""
        raise NotImplementedError

    def counters(self, layer: DecodedLayer, n_images: int, cfg: EngineConfig) -> dict:
        """Counters the layer moves over ``n_images`` images, output writes excepted.

        Its stream is counted as read from DRAM for every image; the golden
        engine moves a resident layer's later reads to the weight SRAM.
        """
        c = zero_counters()
        c["dram_read_words"] = n_images * (DESC_WORDS + layer.stream_words)
        c["sram_reads"] = n_images * beat_groups(layer.desc, cfg.lanes, cfg.pes)
        return c


def dense_layer_image(layer, rows: np.ndarray, word1: tuple[int, int], ctx: WriteContext, mode: LayerMode,
                      meta: dict | None = None, compact_word: int | None = None) -> LayerImage:
    """A dense layer's image: its (out, row_words) rows at ``ctx.stream_addr``; ``word1`` is the
    descriptor's word 1 (codebook base and size, or K and the entry width); ``compact_word``, the
    descriptor's word 5 of compact rows (:func:`compact_rows`)."""
    desc = Descriptor(layer.in_features, layer.out_features, *word1, ctx.stream_addr, rows.shape[1], layer.relu, mode,
                      floor=bool(getattr(layer, "floor", False)), compact=compact_word is not None,
                      compact_word=compact_word or 0)
    return LayerImage(desc, rows.reshape(-1), meta or {})


def beats(desc: Descriptor, lanes: int) -> int:
    """Sub-vector steps of a dense layer: one lane-word of activations each."""
    return desc.out_features * ceil_div(desc.in_features, lanes)


def beat_groups(desc: Descriptor, lanes: int, pes: int) -> int:
    """Activation lane-words a dense layer reads on ``pes`` processing elements: one per sub-vector step of
    each row group, broadcast to the group's PEs (:mod:`model.contract.layout`, "Processing elements")."""
    return ceil_div(desc.out_features, pes) * ceil_div(desc.in_features, lanes)


def pe_rows(stream: np.ndarray, rows: int, row_words: int, pes: int) -> np.ndarray:
    """A dense layer's stream laid out for ``pes`` PEs -> its ``(rows, row_words)`` rows."""
    stream = np.asarray(stream)
    if pes == 1:
        return stream.reshape(rows, row_words)
    rows_major = np.empty_like(stream)
    rows_major[np.asarray(pe_stream_order(rows, row_words, pes), dtype=np.int64)] = stream
    return rows_major.reshape(rows, row_words)


def pe_stream(rows: np.ndarray, pes: int) -> np.ndarray:
    """A dense layer's ``(rows, row_words)`` rows -> its stream laid out for ``pes`` PEs (inverse of :func:`pe_rows`)."""
    rows = np.asarray(rows)
    flat = rows.reshape(-1)
    if pes == 1:
        return flat
    return flat[np.asarray(pe_stream_order(*rows.shape, pes), dtype=np.int64)]


def layer_act(layer) -> np.ndarray:
    """A lowered layer's per-row activation parameter (``act``; zero when it has none)."""
    act = getattr(layer, "act", None)
    return np.zeros(layer.out_features, dtype=np.int64) if act is None else np.asarray(act, dtype=np.int64)


def row_params(i: int, layer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A lowered layer's per-row bias, multiplier, shift and activation parameter, range-checked."""
    for name in ("bias", "mult", "shift"):
        if np.asarray(getattr(layer, name)).shape != (layer.out_features,):
            raise ProgramError(f"layer {i}: {name} must have one value per row")
    bias, mult, shift = (np.asarray(a, dtype=np.int64) for a in (layer.bias, layer.mult, layer.shift))
    act = layer_act(layer)
    if np.any(np.abs(bias) >= 1 << (ACC_BITS - 1)) or np.any((mult < 0) | (mult >> MULT_BITS > 0)) \
            or np.any((shift < 0) | (shift > SHIFT_MAX)):
        raise ProgramError(f"layer {i}: bias or requantization parameters out of range")
    lo, hi = (ACT_MIN, ACT_MAX) if getattr(layer, "floor", False) else (ACT_PARAM_MIN, ACT_PARAM_MAX)
    if act.shape != (layer.out_features,) or np.any((act < lo) | (act > hi)):
        raise ProgramError(f"layer {i}: activation parameters must be one per row in [{lo}, {hi}]")
    return bias, mult, shift, act


def requant_words(mult: np.ndarray, shift: np.ndarray, act=0) -> np.ndarray:
    """Requantization words: ``mult`` in the low ``MULT_BITS`` (16), ``shift`` above it (6 bits), the
    activation parameter above that (``ACT_PARAM_BITS``, two's complement)."""
    act_field = np.asarray(act, dtype=np.int64) & ((1 << ACT_PARAM_BITS) - 1)
    return (np.asarray(mult, dtype=np.int64) | np.asarray(shift, dtype=np.int64) << MULT_BITS
            | act_field << ACT_PARAM_SHIFT).astype(np.uint32)


def split_requant(words) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`requant_words`: (mult, shift, act)."""
    rq = np.asarray(words, dtype=np.int64)
    act = (rq >> ACT_PARAM_SHIFT) & ((1 << ACT_PARAM_BITS) - 1)
    return rq & ((1 << MULT_BITS) - 1), (rq >> MULT_BITS) & SHIFT_MAX, act - ((act >> (ACT_PARAM_BITS - 1)) << ACT_PARAM_BITS)


def dense_rows(bias, mult, shift, act, entries: np.ndarray, entry_bits: int) -> np.ndarray:
    """Rows of bias word, requantization word and ``entries`` packed LSB-first: (out, row_words) uint32."""
    return np.concatenate([(np.asarray(bias, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)[:, None],
                           requant_words(mult, shift, act)[:, None], pack_indices(entries, entry_bits)], axis=1)


def compact_rows(bias, mult, shift, act, entries: np.ndarray, entry_bits: int) -> tuple[np.ndarray, int]:
    """Compact rows (:mod:`model.contract.layout`): (out, row_words) uint32 and the descriptor's word 5.

    ``bias``, ``mult``, ``shift`` and ``act`` must already be what the format holds (one shift, one
    activation parameter, biases that are multiples of one power of two within 16 bits:
    :func:`model.contract.fixedpoint.compact_row_params`); a ``ProgramError`` says which is not.
    """
    bias, mult, shift, act = (np.asarray(a, dtype=np.int64) for a in (bias, mult, shift, act))
    bias16, mult16, common, bias_shift, act0 = compact_row_params(bias, mult, shift, act)
    if not (np.array_equal(mult16, mult) and np.all(shift == common) and np.array_equal(bias16 << bias_shift, bias)):
        raise ProgramError("compact rows need one shift and biases of one scale: convert the layer's "
                           "parameters with compact_row_params first")
    header = (mult16 | (bias16 & ((1 << COMPACT_BIAS_BITS) - 1)) << MULT_BITS).astype(np.uint32)
    word5 = (common << COMPACT_SHIFT_LSB | (act0 & ((1 << ACT_PARAM_BITS) - 1)) << COMPACT_ACT_LSB
             | bias_shift << COMPACT_BIAS_SHIFT_LSB)
    return np.concatenate([header[:, None], pack_indices(entries, entry_bits)], axis=1), word5


def read_dense_rows(image: np.ndarray, desc: Descriptor, entry_bits: int, lanes: int, layer: int, pes: int = 1):
    """Read a dense layer's rows (two-word or compact headers), its stream laid out for ``pes`` processing
    elements: (bias, mult, shift, act, entries (out, sub-vectors))."""
    rows = pe_rows(read_words(image, desc.stream_addr, desc.out_features * desc.row_words, f"layer {layer} row stream"),
                   desc.out_features, desc.row_words, pes)
    if desc.compact:
        common, act0, bias_shift = desc.compact_params
        header = rows[:, 0].astype(np.int64)
        bias16 = header >> MULT_BITS
        bias = (bias16 - ((bias16 >> (COMPACT_BIAS_BITS - 1)) << COMPACT_BIAS_BITS)) << bias_shift
        mult = header & ((1 << MULT_BITS) - 1)
        shift, act = np.full_like(mult, common), np.full_like(mult, act0)
        entries = unpack_indices(rows[:, COMPACT_ROW_HEADER_WORDS:], entry_bits, ceil_div(desc.in_features, lanes))
        return bias, mult, shift, act, entries
    bias = rows[:, 0].astype(np.int64)
    bias = np.where(bias >= 1 << 31, bias - (1 << 32), bias)
    mult, shift, act = split_requant(rows[:, 1])
    entries = unpack_indices(rows[:, ROW_HEADER_WORDS:], entry_bits, ceil_div(desc.in_features, lanes))
    return bias, mult, shift, act, entries


def check_row_words(desc: Descriptor, cfg: EngineConfig, entry_bits: int, where: str) -> None:
    """``BAD_STREAM`` unless the descriptor's ``row_words`` fits the shape and entry width."""
    expect = row_words(desc.in_features, cfg.lanes, entry_bits, desc.compact)
    if desc.row_words != expect:
        raise EngineFault(EngineError.BAD_STREAM, f"{where}: row_words={desc.row_words}, expected {expect}")


def first_bad_index(entries: np.ndarray, limit: int, layer: int, what: str) -> None:
    """``BAD_INDEX`` at the first entry (row-major, as the engine reads them) at or above ``limit``."""
    bad = np.argwhere(entries >= limit)
    if len(bad):
        r, j = bad[0]
        raise EngineFault(EngineError.BAD_INDEX,
                          f"layer {layer} row {r} sub-vector {j}: index {entries[r, j]} >= {limit}, the layer's {what}")


def check_sections(desc: Descriptor, cfg: EngineConfig, sections: int, entry_bits: int, where: str,
                   what: str = "codebook") -> None:
    """A codebook mode's checks, in the RTL's order: ``BAD_CODEBOOK`` unless ``codebook_size`` is 1 to
    ``codebook_depth`` and ``sections`` codebooks of that size from ``codebook_base`` fit the ROM (VQ: one; RVQ:
    a stage each; PQ: a column block each); then ``BAD_STREAM`` unless ``row_words`` fits ``entry_bits``."""
    if (desc.codebook_size == 0 or desc.codebook_size > cfg.codebook_depth
            or desc.codebook_base + sections * desc.codebook_size > cfg.rom_entries):
        raise EngineFault(EngineError.BAD_CODEBOOK,
                          f"{where}: {sections} x {what} {desc.codebook_base}+{desc.codebook_size} does not fit "
                          f"depth {cfg.codebook_depth} / ROM of {cfg.rom_entries} entries")
    check_row_words(desc, cfg, entry_bits, where)


def check_section_codebook(i: int, layer, ctx: WriteContext, sections: int, indices: np.ndarray, what: str) -> int:
    """The program writer's checks of a layer whose ``codebook`` is ``sections`` int8 codebooks of
    ``layer.section_size`` (RVQ stages, PQ blocks) and whose ``indices`` index one of them; its section size."""
    size, lanes = int(layer.section_size), ctx.lanes
    cb = np.asarray(layer.codebook)
    if cb.ndim != 2 or cb.shape != (sections * size, lanes):
        raise ProgramError(f"layer {i}: {sections} {what} codebooks of {size} x {lanes} lanes must be "
                           f"({sections * size}, {lanes}), got {cb.shape}")
    if not 1 <= size <= ctx.codebook_depth:
        raise ProgramError(f"layer {i}: {what} codebooks of {size} codewords exceed codebook depth {ctx.codebook_depth}")
    if cb.min() < ACT_MIN or cb.max() > ACT_MAX:
        raise ProgramError(f"layer {i}: codebook values outside int8")
    if indices.shape[:2] != (layer.out_features, ceil_div(layer.in_features, lanes)):
        raise ProgramError(f"layer {i}: index array shape {indices.shape} does not match the layer")
    if indices.min() < 0 or indices.max() >= size:
        raise ProgramError(f"layer {i}: {what} indices out of range 0..{size - 1}")
    return size
