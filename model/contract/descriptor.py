"""The job header and the layer descriptors: decode, encode, check.

Word layouts are in :mod:`model.contract.layout`.  The checks run in the
order the RTL runs them; the first failure is the engine's error status.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.contract.config import EngineConfig
from model.contract.errors import EngineError, EngineFault
from model.contract.fixedpoint import ACT_PARAM_BITS, COMPACT_BIAS_SHIFT_BITS, SHIFT_MAX
from model.contract.layout import (COLUMNS_KEPT_WORD, COMPACT_ACT_LSB, COMPACT_BIAS_SHIFT_LSB, COMPACT_SHIFT_LSB,
                                   DESC_WORDS, DRAM_WORDS_WORD, FIELD16, FLAG_COMPACT, FLAG_FLOOR, FLAG_RELU,
                                   FLAG_RESIDENT, FLAG_SAVE, JOB_MAGIC, JOB_WORDS, KIND_MASK, KIND_SHIFT, MODE_MASK,
                                   MODE_PARAM_BITS, MODE_PARAM_SHIFT, MODE_SHIFT, NEAREST_OUTPUTS, WINDOWED_KINDS,
                                   WSRAM_ADDR_BITS, LayerKind, LayerMode)
from model.contract.window import Window


@dataclass
class JobHeader:
    """The job header's fields (:mod:`model.contract.layout`: words 0 to 6)."""
    n_layers: int
    n_images: int
    desc_addr: int
    input_addr: int
    input_features: int
    output_addr: int
    dram_words: int = 0

    def readable(self, image: np.ndarray) -> np.ndarray:
        """The part of ``image`` the engine may read: its first ``dram_words`` words (all if 0), so a read
        past the bound is `read_words`'s ``BAD_STREAM``."""
        return image[:self.dram_words] if self.dram_words else image


def read_job_header(image: np.ndarray) -> JobHeader:
    """Decode and check the job header (``EngineError.BAD_JOB`` on failure)."""
    if len(image) < JOB_WORDS or int(image[0]) != JOB_MAGIC:
        raise EngineFault(EngineError.BAD_JOB, "job header magic not found at address 0")
    w1 = int(image[1])
    hdr = JobHeader(n_layers=w1 & FIELD16, n_images=w1 >> 16, desc_addr=int(image[2]),
                    input_addr=int(image[3]), input_features=int(image[4]),
                    output_addr=int(image[5]), dram_words=int(image[DRAM_WORDS_WORD]))
    if hdr.n_layers == 0 or hdr.n_images == 0:
        raise EngineFault(EngineError.BAD_JOB,
                          f"job has {hdr.n_layers} layers and {hdr.n_images} images; both must be > 0")
    return hdr


def check_input(hdr: JobHeader, cfg: EngineConfig) -> None:
    """``BAD_SHAPE`` when the job's input vector does not fit the activation SRAM."""
    if hdr.input_features == 0 or hdr.input_features > cfg.max_features:
        raise EngineFault(EngineError.BAD_SHAPE,
                          f"input_features={hdr.input_features}, must be 1..{cfg.max_features}")


@dataclass
class Descriptor:
    """One layer descriptor (:mod:`model.contract.layout`), decoded.

    Word 1 and word 3's low half mean different things per layer mode: the
    properties :attr:`pvq_k`, :attr:`entry_bits`, :attr:`table_words` and (for
    an AVGPOOL or ADD layer) :attr:`requant_word` name them.  ``save`` is
    ``FLAG_SAVE``: the output goes to the skip buffer too.
    """
    in_features: int
    out_features: int
    codebook_base: int
    codebook_size: int
    stream_addr: int
    row_words: int
    relu: bool
    mode: int
    resident: bool = False
    wsram_addr: int = 0
    kind: int = LayerKind.FC
    window: Window | None = None
    floor: bool = False
    compact: bool = False
    compact_word: int = 0   #: word 5 of a compact FC layer: its rows' shift, activation and bias shift
    save: bool = False
    mode_param: int = 0   #: flags bits 13..15: RVQ's ``stages - 1``, PQ's log2 block width
    kept: int = 0   #: word 6 of a COLUMNS layer: its kept weights

    @classmethod
    def decode(cls, words) -> "Descriptor":
        w0, w1, w2, w3, w4, w5, w6 = (int(w) for w in words[:COLUMNS_KEPT_WORD + 1])
        flags = w3 >> 16
        kind = (flags >> KIND_SHIFT) & KIND_MASK
        compact = bool(flags & FLAG_COMPACT)
        return cls(in_features=w0 & FIELD16, out_features=w0 >> 16,
                   codebook_base=w1 & FIELD16, codebook_size=w1 >> 16,
                   stream_addr=w2, row_words=w3 & FIELD16,
                   relu=bool(flags & FLAG_RELU), mode=(flags >> MODE_SHIFT) & MODE_MASK,
                   resident=bool(flags & FLAG_RESIDENT), wsram_addr=w4 & ((1 << WSRAM_ADDR_BITS) - 1),
                   kind=kind, window=Window.decode(words[4:8]) if kind in WINDOWED_KINDS else None,
                   floor=bool(flags & FLAG_FLOOR), compact=compact,
                   compact_word=w5 if compact and kind == LayerKind.FC else 0, save=bool(flags & FLAG_SAVE),
                   mode_param=(flags >> MODE_PARAM_SHIFT) & ((1 << MODE_PARAM_BITS) - 1),
                   kept=w6 if kind == LayerKind.FC and (flags >> MODE_SHIFT) & MODE_MASK == LayerMode.COLUMNS else 0)

    @property
    def windowed(self) -> bool:
        return self.kind in WINDOWED_KINDS

    def input_features(self, lanes: int) -> int:
        """Values the layer reads: ``in_features``, or a windowed layer's input map."""
        return self.window.in_map(lanes) if self.windowed else self.in_features

    def output_features(self, lanes: int) -> int:
        """Values the layer writes: ``out_features``, a windowed layer's output map, or a nearest-prototype
        layer's one label (``NEAREST_OUTPUTS``)."""
        if self.kind == LayerKind.NEAREST:
            return NEAREST_OUTPUTS
        return self.window.out_map(self.out_features, lanes) if self.windowed else self.out_features

    # In PVQ mode the codebook fields hold the pulse count and the entry width.
    @property
    def pvq_k(self) -> int:
        return self.codebook_base

    @property
    def entry_bits(self) -> int:
        return self.codebook_size

    # RVQ: the stage count; PQ: the block width in sub-vectors (model.contract.layout).
    @property
    def stages(self) -> int:
        return self.mode_param + 1

    @property
    def block_subvectors(self) -> int:
        return 1 << self.mode_param

    # An AVGPOOL or ADD layer's word 1 is its requantization word.
    @property
    def requant_word(self) -> int:
        return self.codebook_base | self.codebook_size << 16

    # A compact FC layer's word 5: the shift, activation parameter and bias shift of all its rows.
    @property
    def compact_params(self) -> tuple[int, int, int]:
        """(shift, activation parameter, bias shift) of a compact layer's rows."""
        w = self.compact_word
        act = (w >> COMPACT_ACT_LSB) & ((1 << ACT_PARAM_BITS) - 1)
        return ((w >> COMPACT_SHIFT_LSB) & SHIFT_MAX, act - ((act >> (ACT_PARAM_BITS - 1)) << ACT_PARAM_BITS),
                (w >> COMPACT_BIAS_SHIFT_LSB) & ((1 << COMPACT_BIAS_SHIFT_BITS) - 1))

    # In HUFFMAN mode word 3's low half bounds the layer's Huffman table.
    @property
    def table_words(self) -> int:
        return self.row_words

    def encode(self) -> list[int]:
        flags = ((FLAG_RELU if self.relu else 0) | (FLAG_RESIDENT if self.resident else 0)
                 | (FLAG_FLOOR if self.floor else 0) | (FLAG_COMPACT if self.compact else 0)
                 | (FLAG_SAVE if self.save else 0) | (self.mode_param << MODE_PARAM_SHIFT)
                 | (self.mode << MODE_SHIFT) | (int(self.kind) << KIND_SHIFT))
        words = [self.in_features | self.out_features << 16,
                 self.codebook_base | self.codebook_size << 16,
                 self.stream_addr,
                 self.row_words | flags << 16,
                 self.wsram_addr]
        if self.windowed:
            w4, *rest = self.window.encode()
            words = words[:4] + [self.wsram_addr | w4, *rest]
        elif self.compact:
            words.append(self.compact_word)
        elif self.mode == LayerMode.COLUMNS:
            words += [0, self.kept]
        return words + [0] * (DESC_WORDS - len(words))

    def check(self, cfg: EngineConfig, prev_features: int, layer: int, saved_features: int = 0) -> None:
        """Raise ``EngineFault`` for the first problem the RTL finds before the layer's own checks.

        The order is the RTL's: the mode (``BAD_MODE``; a NEAREST layer has no activation), the shape
        (``BAD_SHAPE``; an ADD's ``in_features`` equal to its ``out_features``, a NEAREST layer's a
        multiple of ``lanes``), the chain to the
        previous layer (``BAD_CHAIN``) and, for an ADD, to the skip buffer's
        saved vector of ``saved_features`` values (0: none saved).  The
        mode's own checks (codebook, stream) follow in its layer codec
        (:mod:`model.codecs.layers`), then a windowed layer's window
        (:meth:`model.contract.window.Window.check`, where its chain is checked).
        """
        where = f"layer {layer}"
        if self.relu and self.floor:
            raise EngineFault(EngineError.BAD_MODE, f"{where}: ReLU and the floor activation are both set")
        if self.kind == LayerKind.NEAREST and (self.relu or self.floor):
            raise EngineFault(EngineError.BAD_MODE, f"{where}: a nearest-prototype layer has no activation")
        if self.compact and (self.kind != LayerKind.FC or self.mode != LayerMode.VQ):
            raise EngineFault(EngineError.BAD_MODE, f"{where}: compact rows are for fully-connected VQ layers only")
        if not cfg.supports_kind(self.kind, self.mode):
            raise EngineFault(EngineError.BAD_MODE, f"{where}: layer kind {self.kind} in mode {self.mode} is not "
                                                    f"supported by this engine")
        for name in ("in_features", "out_features"):
            n = getattr(self, name)
            if n == 0 or n > cfg.max_features:
                raise EngineFault(EngineError.BAD_SHAPE,
                                  f"{where}: {name}={n}, must be 1..{cfg.max_features}")
        add = self.kind == LayerKind.ADD
        if self.kind == LayerKind.NEAREST and self.in_features % cfg.lanes:
            raise EngineFault(EngineError.BAD_SHAPE, f"{where}: a nearest-prototype layer's in_features="
                                                     f"{self.in_features} is not a multiple of {cfg.lanes} lanes")
        if add and self.in_features != self.out_features:
            raise EngineFault(EngineError.BAD_SHAPE, f"{where}: an add's in_features={self.in_features} and "
                                                     f"out_features={self.out_features} differ")
        if not self.windowed and self.in_features != prev_features:
            raise EngineFault(EngineError.BAD_CHAIN,
                              f"{where}: in_features={self.in_features} but its input has {prev_features}")
        if add and self.in_features != saved_features:
            raise EngineFault(EngineError.BAD_CHAIN,
                              f"{where}: an add of {self.in_features} values but the skip buffer holds "
                              f"{saved_features or 'nothing'}")


def check_placement(desc: Descriptor, stream_words: int, cfg: EngineConfig, where: str) -> None:
    """``BAD_STREAM`` unless a resident layer's ``stream_words`` fit the weight SRAM at its address."""
    if desc.resident and desc.wsram_addr + stream_words > cfg.weight_sram_words:
        raise EngineFault(EngineError.BAD_STREAM,
                          f"{where}: resident stream of {stream_words} words at weight-SRAM word {desc.wsram_addr} "
                          f"does not fit the {cfg.weight_sram_words}-word weight SRAM")


def read_words(image: np.ndarray, addr: int, n: int, what: str) -> np.ndarray:
    """``n`` words of the DRAM image from ``addr``; ``BAD_STREAM`` when they run past its end."""
    if addr + n > len(image):
        raise EngineFault(EngineError.BAD_STREAM, f"{what} at {addr}+{n} runs past the end of DRAM ({len(image)} words)")
    return image[addr:addr + n]
