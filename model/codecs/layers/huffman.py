"""Sparse Huffman-coded layers (Deep Compression, ``LayerMode.HUFFMAN``): rows of (run, index) symbols.

The stream format is in :mod:`model.contract.layout`; the rows are coded by
:mod:`model.codecs.sparse_rows` with a canonical table from :mod:`model.codecs.huffman`.
"""
from __future__ import annotations

import numpy as np

from model.codecs.huffman import HuffmanError, HuffmanStatus, HuffmanTable, decode_stream
from model.codecs.layers.base import DecodedLayer, LayerCodec, LayerImage, WriteContext, row_params, split_requant
from model.codecs.sparse_rows import SparseRowError, decode_row, encode_layer, layer_bits
from model.contract.config import EngineConfig
from model.contract.descriptor import Descriptor, read_words
from model.contract.errors import HUFF_BASE, EngineError, EngineFault, ProgramError
from model.contract.fixedpoint import ACT_MAX, ACT_MIN
from model.contract.ints import ceil_div
from model.contract.layout import (FIELD16, REL_BITS, SPARSE_BIAS_BITS, SPARSE_LAYER_WORDS,
                                   SPARSE_ROW_HEADER_WORDS, WORD_BITS, LayerMode, huffman_index_bits,
                                   pe_substream_positions)


def symbol_bits_for(layers) -> int:
    """Joint-symbol width that holds a run and the widest index of these (lowered) sparse layers."""
    return max(REL_BITS + max(1, huffman_index_bits(len(layer.codebook))) for layer in layers)


class HuffmanCodec(LayerCodec):
    """Scalar centroids packed ``lanes`` to a ROM entry, and per row the Huffman codes of its
    (run, index) symbols; one weight per cycle (the decoder takes two codes a step), pruned weights
    cost nothing."""
    name = "huffman"
    mode = LayerMode.HUFFMAN
    scenarios = ("deepcomp_engine", "deepcomp_entropy_floor")

    def write(self, i: int, layer, ctx: WriteContext) -> LayerImage:
        if ctx.shared_rom:
            raise ProgramError("sparse (deepcomp) layers keep their centroids in the program's own ROM")
        bias, mult, shift, act = row_params(i, layer)
        if np.any(act != 0) or getattr(layer, "floor", False):
            raise ProgramError(f"layer {i}: a sparse layer's activation is ReLU or none (its one requantization "
                               "word has no per-row activation parameter)")
        cb = np.asarray(layer.codebook)
        if cb.ndim != 2 or cb.shape[1] != 1 or len(cb) == 0:
            raise ProgramError(f"layer {i}: a sparse layer needs scalar centroids of shape (k, 1), got {cb.shape}")
        if cb.min() < ACT_MIN or cb.max() > ACT_MAX:
            raise ProgramError(f"layer {i}: centroid values outside int8")
        if cb[0, 0] != 0:
            raise ProgramError(f"layer {i}: centroid 0 must be the exact zero (fillers use it)")
        idx = np.asarray(layer.indices)
        if idx.shape != (layer.out_features, layer.in_features):
            raise ProgramError(f"layer {i}: index matrix shape {idx.shape} does not match the layer")
        if idx.size and (idx.min() < 0 or idx.max() >= len(cb)):
            raise ProgramError(f"layer {i}: centroid indices out of range 0..{len(cb) - 1}")
        entries = np.zeros(ceil_div(len(cb), ctx.lanes) * ctx.lanes, dtype=np.int64)
        entries[:len(cb)] = cb[:, 0]
        try:
            sparse = encode_layer(idx, len(cb), ctx.huffman_symbol_bits, ctx.huffman_max_len)
            stream = sparse.stream(bias, mult, shift, ctx.pes)
        except ValueError as e:
            raise ProgramError(f"layer {i}: {e}") from None
        base = len(ctx.rom)
        ctx.rom.extend(entries.reshape(-1, ctx.lanes).tolist())
        desc = Descriptor(layer.in_features, layer.out_features, base, len(cb), ctx.stream_addr,
                          len(sparse.table.to_words()), layer.relu, self.mode)
        bits = layer_bits(sparse, layer.in_features, layer.out_features, len(cb), ctx.lanes, ctx.pes)
        # The stream is written for the engine's PEs (unlike a dense one, not re-laid out later): say for how many.
        return LayerImage(desc, stream, {"sparse": bits, **({"pes": ctx.pes} if ctx.pes > 1 else {})})

    def check(self, desc: Descriptor, cfg: EngineConfig, where: str) -> None:
        entries = ceil_div(desc.codebook_size, cfg.lanes)
        if not 1 <= desc.codebook_size <= cfg.huffman_k_max or desc.codebook_base + entries > cfg.rom_entries:
            raise EngineFault(EngineError.BAD_CODEBOOK,
                              f"{where}: {desc.codebook_size} centroids at ROM entry {desc.codebook_base}; "
                              f"the engine takes 1..{cfg.huffman_k_max} within its {cfg.rom_entries} entries")
        # Row lengths vary: the stream is checked as it is read.

    def stream_words(self, image, desc, where) -> int:
        """The size word and the total it gives."""
        size = int(read_words(image, desc.stream_addr, 1, f"{where} size word")[0])
        return 1 + (size & FIELD16) * (size >> 16)

    def decode(self, image, desc, cfg, layer, rom) -> DecodedLayer:
        """Read the stream as the engine does (see :mod:`model.contract.layout`), first error first.

        With ``cfg.pes > 1`` each PE's sub-stream is decoded on its own (its requantization word, its
        table copy, its rows ``p, p + P, ...``); when several are bad, the lowest-numbered PE's error is
        raised.
        """
        where = f"layer {layer}"
        size = int(read_words(image, desc.stream_addr, 1, f"{where} size word")[0])
        total = self.stream_words(image, desc, where) - 1
        body = read_words(image, desc.stream_addr + 1, total, f"{where} stream")
        pes = cfg.pes
        k = desc.codebook_size
        centroids = rom[desc.codebook_base:desc.codebook_base + ceil_div(k, cfg.lanes)].reshape(-1)[:k].copy()
        centroids[0] = 0   # index 0 is the zero weight of fillers: the engine reads no ROM for it
        out, n_in = desc.out_features, desc.in_features
        dense = np.zeros((out, n_in), dtype=np.int64)
        bias = np.zeros(out, dtype=np.int64)
        rq = np.zeros(out, dtype=np.int64)
        # "histogram": occurrences of each joint symbol, for the report's entropy floor.
        # "kept_columns": the non-zero weights (idx != 0) per input position, for ``zero_skips``.
        events = {"symbols": 0, "bits": 0, "kept": 0, "steps": 0,
                  "histogram": np.zeros(1 << cfg.huffman_symbol_bits, np.int64),
                  "kept_columns": np.zeros(n_in, np.int64)}
        for pe in range(pes):
            stream = body if pes == 1 else \
                body[np.asarray(pe_substream_positions(pe, size & FIELD16, size >> 16, pes), dtype=np.int64)]
            # The PEs' sub-streams are independent: the lowest bad PE's error is the golden model's.
            self._decode_rows(stream, range(pe, out, pes), desc, cfg, where, None if pes == 1 else pe, centroids,
                              dense, bias, rq, events)
        mult, shift, act = split_requant(rq)
        return DecodedLayer(desc, bias, mult, shift, events, _weights=lambda: dense, act=act)

    @staticmethod
    def _decode_rows(stream, rows, desc, cfg, layer_where, pe, centroids, dense, bias, rq, events) -> None:
        """Decode one sparse row path's stream (the layer's, or PE ``pe``'s sub-stream; ``pe`` None on a one-PE
        engine): its requantization word, its table and ``rows``, into ``dense``, ``bias``, ``rq`` and ``events``;
        the first error first."""
        where = layer_where if pe is None else f"{layer_where} PE {pe}"
        total = len(stream)
        if total < SPARSE_LAYER_WORDS - 1:
            raise EngineFault(EngineError.BAD_STREAM, f"{where}: the stream ends before its requantization word")
        rq[list(rows)] = int(stream[0])
        cur = SPARSE_LAYER_WORDS - 1
        budget = desc.table_words
        available = min(budget, total - cur)
        try:
            table, used = HuffmanTable.parse_words(stream[cur:cur + available], cfg.huffman_max_len,
                                                   cfg.huffman_symbol_bits)
        except HuffmanError as err:
            raise _huffman_fault(err, budget, available, f"{where} Huffman table") from None
        cur += used
        k, n_in = desc.codebook_size, desc.in_features
        idx_bits = huffman_index_bits(k)
        sign = 1 << (SPARSE_BIAS_BITS - 1)
        for r in rows:
            row = f"{layer_where} row {r}" + ("" if pe is None else f" (PE {pe})")
            if cur + SPARSE_ROW_HEADER_WORDS > total:
                raise EngineFault(EngineError.BAD_STREAM, f"{row}: the layer's stream ends at the row header")
            header = int(stream[cur])
            cur += SPARSE_ROW_HEADER_WORDS
            bias[r] = ((header & ((1 << SPARSE_BIAS_BITS) - 1)) ^ sign) - sign
            n_symbols = (header >> SPARSE_BIAS_BITS) + 1
            # A row's codes may take up to FIELD16 words (the decoder's budget); they
            # need at most n_symbols * max_len bits, so only those words are looked at.
            available = min(FIELD16, total - cur, ceil_div(n_symbols * cfg.huffman_max_len, WORD_BITS))
            try:
                result = decode_stream(stream[cur:cur + available], table, n_symbols)
            except HuffmanError as err:
                fault = _huffman_fault(err, FIELD16, available, row)
                # An earlier symbol's own error comes first.  When the layer's stream runs out
                # (BAD_STREAM) the decoder waits for a word instead, so the failing step's
                # symbols are not delivered.
                delivered = err.symbols[:len(err.symbols) - err.pending] \
                    if fault.code == EngineError.BAD_STREAM else err.symbols
                if delivered:
                    _check_sparse(delivered, idx_bits, k, n_in, row)
                raise fault from None
            positions, idx = _check_sparse(result.symbols, idx_bits, k, n_in, row)
            cur += result.words_used
            dense[r, positions] = centroids[idx]
            events["symbols"] += n_symbols
            events["bits"] += result.counters["huffman_bits"]
            events["steps"] += result.counters["huffman_busy_cycles"]
            events["kept"] += int(np.count_nonzero(idx))
            np.add.at(events["kept_columns"], positions[idx != 0], 1)
            np.add.at(events["histogram"], np.asarray(result.symbols, dtype=np.int64), 1)

    def counters(self, layer, n_images, cfg) -> dict:
        # The decoder's steps (two symbols each, but a row's odd last one); fillers (idx 0) read and
        # multiply nothing.
        c = super().counters(layer, n_images, cfg)
        ev = layer.events
        c["huffman_symbols"] = n_images * ev["symbols"]
        c["huffman_busy_cycles"] = n_images * ev["steps"]
        c["huffman_bits"] = n_images * ev["bits"]
        c["sram_reads"] = c["rom_reads"] = c["macs"] = n_images * ev["kept"]
        return c

    def activation_counters(self, layer, x) -> dict:
        """What the layer's input activations ``x`` (n_images, >= in_features) change in its counters.

        A non-zero weight that meets a zero activation is not multiplied: it counts in ``zero_skips``
        instead of ``macs`` (:mod:`model.contract.counters`).
        """
        zero = np.asarray(x)[:, :layer.desc.in_features] == 0
        skips = int((zero @ layer.events["kept_columns"]).sum())
        return {"zero_skips": skips, "macs": -skips}


def _huffman_fault(err, budget: int, available: int, where: str) -> EngineFault:
    """The engine error of a decoder error, when ``available`` of the ``budget`` words exist."""
    if err.status == HuffmanStatus.TRUNCATED and available < budget:
        return EngineFault(EngineError.BAD_STREAM, f"{where}: the layer's stream ends inside it")
    return EngineFault(EngineError(HUFF_BASE + err.status), f"{where}: {err}")


def _check_sparse(symbols, idx_bits: int, k: int, in_features: int, where: str):
    try:
        return decode_row(symbols, idx_bits, k, in_features)
    except SparseRowError as err:
        code = EngineError.BAD_INDEX if err.kind == "index" else EngineError.BAD_SPARSE
        raise EngineFault(code, f"{where}: {err}") from None
