"""Sparse rows of Huffman-coded (run, index) symbols: encoder, decoding twin, bit accounting.

The stored form of a ``LayerMode.HUFFMAN`` layer (see :mod:`model.contract.layout`,
*Sparse Huffman-coded layers*).  A row of the dense index matrix (centroid
indices, 0 at pruned positions, centroid 0 being the exact zero) becomes a
list of symbols ``(run, idx)``, one per kept weight: ``run`` zeros skipped
before it.  A gap of ``2**rel_bits`` or more zeros is bridged with fillers
``(2**rel_bits - 1, 0)``, each an explicit zero weight that advances the
position by ``2**rel_bits``, as in Deep Compression and EIE.  A row with no
kept weight still gets one symbol, ``(0, 0)``, so every row has a result.

The joint symbols ``run << idx_bits | idx`` of all the layer's rows share one
canonical, length-limited Huffman table (:mod:`model.codecs.huffman`).  The layer's
stream is the size word, the layer's requantization word, the table, and per
row one header word (the bias and ``n_symbols - 1``) and the row's codes; on an
engine of ``P > 1`` processing elements, the size word and ``P`` such sub-streams
(each with a copy of the requantization word and the table, and the rows
``p, p + P, ...``) interleaved word by word (:meth:`SparseLayer.stream`).

:func:`decode_row` is the golden twin of the engine's sparse stage (position
and index of each symbol, with its error checks); :func:`layer_bits` counts
every stored bit for the compression accounting.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.codecs.huffman import HuffmanTable, encode
from model.codecs.huffman_design import average_length, entropy_bits
from model.contract.layout import (FIELD16, HUFFMAN_DEFAULT_MAX_LEN, REL_BITS, SPARSE_BIAS_BITS, SPARSE_LAYER_WORDS,
                                   SPARSE_MAX_SYMBOLS, SPARSE_ROW_HEADER_WORDS, WORD_BITS, huffman_index_bits)

#: Words of a layer's stream before its table: the size word and the requantization word.
SIZE_WORDS = SPARSE_LAYER_WORDS


class SparseRowError(ValueError):
    """A decoded row is not a valid sparse row.

    Members
    -------
    kind : str
        ``"empty"`` (no symbols), ``"position"`` (past the row's end) or
        ``"index"`` (centroid index at or above ``k``).
    symbol : int
        The offending symbol's number within the row.
    """

    def __init__(self, kind: str, symbol: int, message: str):
        super().__init__(message)
        self.kind = kind
        self.symbol = symbol


def row_symbols(idx_row, rel_bits: int = REL_BITS) -> tuple[np.ndarray, np.ndarray]:
    """One dense row of centroid indices -> ``(runs, idx)`` of its symbols, fillers included.

    Parameters
    ----------
    idx_row : array_like of int
        Centroid index per position, 0 where pruned.
    rel_bits : int
        Width of the run field.

    Returns
    -------
    runs, idx : numpy.ndarray of int64
        Equal lengths, at least 1.
    """
    idx_row = np.asarray(idx_row, dtype=np.int64).ravel()
    if idx_row.size and idx_row.min() < 0:
        raise ValueError("negative centroid index")
    max_run = (1 << rel_bits) - 1
    positions = np.flatnonzero(idx_row)
    if positions.size == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    gaps = np.diff(positions, prepend=-1) - 1          # zeros before each kept weight
    # A gap g needs g // 2**rel_bits fillers (each covers 2**rel_bits positions),
    # then the weight with run g % 2**rel_bits.
    fillers = gaps >> rel_bits
    runs, idx = [], []
    for g, f, p in zip(gaps, fillers, positions):
        runs.extend([max_run] * int(f))
        idx.extend([0] * int(f))
        runs.append(int(g) - int(f) * (max_run + 1))
        idx.append(int(idx_row[p]))
    return np.array(runs, dtype=np.int64), np.array(idx, dtype=np.int64)


def joint_symbols(runs, idx, idx_bits: int) -> np.ndarray:
    """``run << idx_bits | idx``: the symbols the Huffman code is built over."""
    return (np.asarray(runs, dtype=np.int64) << idx_bits) | np.asarray(idx, dtype=np.int64)


def decode_row(symbols, idx_bits: int, k: int, in_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Golden twin of the engine's sparse stage: symbols -> ``(positions, idx)``.

    The position starts at 0; each symbol adds its run, is checked (position
    first, then index), and the position moves one past it.

    Raises
    ------
    SparseRowError
        ``"empty"`` for no symbols, ``"position"`` for a position at or past
        ``in_features``, ``"index"`` for an index at or above ``k``.
    """
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0:
        raise SparseRowError("empty", 0, "a sparse row has no symbols")
    runs = symbols >> idx_bits
    idx = symbols & ((1 << idx_bits) - 1)
    positions = np.cumsum(runs + 1) - 1
    bad_pos = positions >= in_features
    bad_idx = idx >= k
    bad = np.flatnonzero(bad_pos | bad_idx)
    if bad.size:
        j = int(bad[0])
        if bad_pos[j]:
            raise SparseRowError("position", j, f"symbol {j} lands on position {positions[j]}, "
                                                f"the row has {in_features}")
        raise SparseRowError("index", j, f"symbol {j} has centroid index {idx[j]}, the layer has {k}")
    return positions, idx


@dataclass
class SparseLayer:
    """One layer's sparse rows, coded.

    Members
    -------
    table : HuffmanTable
        The layer's code over joint symbols.
    idx_bits : int
        Centroid index width.
    rel_bits : int
        Run field width.
    symbols : list of numpy.ndarray
        Per row, the joint symbols (fillers included).
    fillers : int
        Filler symbols in the layer.
    kept : int
        Non-zero weights (symbols with ``idx != 0``).
    row_words : list of numpy.ndarray of uint32
        Per row, the code words.
    row_bits : list of int
        Per row, the code bits.
    """
    table: HuffmanTable
    idx_bits: int
    rel_bits: int
    symbols: list
    fillers: int
    kept: int
    row_words: list
    row_bits: list

    def stream(self, bias, mult, shift, pes: int = 1) -> np.ndarray:
        """The layer's stream for an engine of ``pes`` processing elements (uint32).

        One PE: size word, requantization word, table, rows, padding.  ``pes > 1``: the size word,
        then the ``pes`` PEs' sub-streams (each the requantization word, the table and the rows
        ``p, p + pes, ...``, padded to one length) interleaved word by word
        (:mod:`model.contract.layout`, "Sparse Huffman-coded layers", *Processing elements*).

        Raises ValueError when the rows do not share one ``mult`` and
        ``shift``, a bias does not fit ``SPARSE_BIAS_BITS`` signed bits, a
        row has more than ``SPARSE_MAX_SYMBOLS`` symbols, or the longest
        sub-stream does not fit the size word.
        """
        bias, mult, shift = (np.asarray(a, dtype=np.int64).ravel() for a in (bias, mult, shift))
        if len(mult) and (np.any(mult != mult[0]) or np.any(shift != shift[0])):
            raise ValueError("a sparse layer's rows must share one requantization (mult, shift)")
        limit = 1 << (SPARSE_BIAS_BITS - 1)
        if np.any((bias < -limit) | (bias >= limit)):
            raise ValueError(f"a bias does not fit the sparse row header's {SPARSE_BIAS_BITS} signed bits")
        rows = []
        for r, (words, syms) in enumerate(zip(self.row_words, self.symbols)):
            if len(syms) > SPARSE_MAX_SYMBOLS or len(words) > FIELD16:
                raise ValueError(f"row {r}: {len(syms)} symbols, at most {SPARSE_MAX_SYMBOLS} fit its header")
            header = (int(bias[r]) & ((1 << SPARSE_BIAS_BITS) - 1)) | (len(syms) - 1) << SPARSE_BIAS_BITS
            rows.append(np.concatenate([np.array([header], dtype=np.uint32), words]).astype(np.uint32))
        # Every PE's sub-stream starts with its own copy of the requantization word and the table.
        lead = np.concatenate([np.array([int(mult[0]) | int(shift[0]) << 16], dtype=np.uint32),
                               self.table.to_words()]).astype(np.uint32)
        subs = [np.concatenate([lead, *rows[p::pes]]).astype(np.uint32) for p in range(pes)]
        cmd_rows, cmd_row_words = size_word_split(max(len(sub) for sub in subs), pes)
        length = cmd_rows // pes * cmd_row_words
        padded = np.zeros((length, pes), dtype=np.uint32)
        for p, sub in enumerate(subs):
            padded[:len(sub), p] = sub
        # Word s of PE p's sub-stream is body word s * pes + p.
        return np.concatenate([np.array([cmd_rows | cmd_row_words << 16], dtype=np.uint32), padded.reshape(-1)])

    def substream_words(self, pes: int = 1) -> list[int]:
        """Each PE's sub-stream length before padding: its requantization word, its table copy and its rows
        (``pes = 1``: the whole stream after the size word, before padding)."""
        lead = SPARSE_LAYER_WORDS - 1 + len(self.table.to_words())
        return [lead + sum(SPARSE_ROW_HEADER_WORDS + len(w) for w in self.row_words[p::pes]) for p in range(pes)]


def size_word_split(total: int, pes: int = 1) -> tuple[int, int]:
    """``(cmd_rows, cmd_row_words)`` for sub-streams of at most ``total`` words on ``pes`` PEs.

    16-bit fields with the least padding: ``C = ceil(total / FIELD16)`` chunks of ``W = ceil(total / C)``
    words per PE, and ``cmd_rows = C * pes`` (:mod:`model.contract.layout`, "Sparse Huffman-coded layers").
    """
    if total < 1:
        raise ValueError("a layer stream has at least its table")
    chunks = -(-total // FIELD16)
    if chunks * pes > FIELD16:
        raise ValueError(f"a layer sub-stream of {total} words on {pes} processing element"
                         f"{'s' if pes > 1 else ''} is too long for the size word")
    return chunks * pes, -(-total // chunks)


def encode_layer(indices, k: int, symbol_bits: int, max_len: int = HUFFMAN_DEFAULT_MAX_LEN,
                 rel_bits: int = REL_BITS) -> SparseLayer:
    """Code a dense ``(out_features, in_features)`` matrix of centroid indices (0 = pruned).

    Parameters
    ----------
    indices : array_like of int
        Values ``0 .. k - 1``.
    k : int
        Centroids of the layer (centroid 0 is the zero).
    symbol_bits : int
        The engine's joint symbol width (sets the table's field widths); must
        hold ``rel_bits + idx_bits``.
    max_len : int
        Code length limit.
    rel_bits : int
        Run field width.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2:
        raise ValueError("indices must be a 2-D (out_features, in_features) matrix")
    if indices.size and (indices.min() < 0 or indices.max() >= k):
        raise ValueError(f"indices outside 0..{k - 1}")
    idx_bits = huffman_index_bits(k)
    if rel_bits + idx_bits > symbol_bits:
        raise ValueError(f"{rel_bits} run bits + {idx_bits} index bits exceed {symbol_bits}-bit symbols")
    symbols, fillers = [], 0
    for row in indices:
        runs, idx = row_symbols(row, rel_bits)
        fillers += int(np.count_nonzero(idx == 0))
        symbols.append(joint_symbols(runs, idx, idx_bits))
    freqs = np.bincount(np.concatenate(symbols), minlength=1 << symbol_bits)
    table = HuffmanTable.from_freqs(freqs, symbol_bits, max_len)
    row_words, row_bits = [], []
    for syms in symbols:
        words, bits = encode(syms, table)
        row_words.append(words)
        row_bits.append(bits)
    kept = int(np.count_nonzero(indices))
    return SparseLayer(table, idx_bits, rel_bits, symbols, fillers, kept, row_words, row_bits)


def layer_bits(layer: SparseLayer, in_features: int, out_features: int, k: int, lanes: int,
               pes: int = 1) -> dict:
    """Every stored bit of one coded layer, written for ``pes`` processing elements, for a Deep
    Compression Table 2 style account.

    Returns
    -------
    dict
        ``weights``, ``kept`` (non-zero weights), ``symbols`` (with fillers),
        ``fillers``; bits: ``index_bits`` and ``rel_bits`` (the fixed-width
        fields before Huffman), ``huffman_bits`` (the codes), ``padding_bits``
        (rows padded to whole words, and the sub-streams to the size word's
        total), ``table_bits`` (one table copy per PE), ``header_bits`` (the
        descriptor, the size word, one requantization word per PE, the row
        headers with bias and symbol count), ``centroid_bits`` (ROM entries holding
        the layer's centroids, padding lanes included), ``total_bits``;
        ``entropy`` and ``average_length`` of the joint symbols (bits per
        symbol).
    """
    from model.contract.layout import DESC_WORDS
    all_syms = np.concatenate(layer.symbols)
    n_sym = int(all_syms.size)
    freqs = np.bincount(all_syms)
    huff = int(sum(layer.row_bits))
    row_word_bits = WORD_BITS * sum(len(w) for w in layer.row_words)
    table_bits = pes * WORD_BITS * len(layer.table.to_words())
    subs = layer.substream_words(pes)           # everything after the size word, per PE
    rows, row_words = size_word_split(max(subs), pes)
    stream_padding = (rows * row_words - sum(subs)) * WORD_BITS
    header = WORD_BITS * (SPARSE_LAYER_WORDS - 1 + pes + DESC_WORDS + SPARSE_ROW_HEADER_WORDS * out_features)
    centroid = -(-k // lanes) * lanes * 8
    total = huff + (row_word_bits - huff) + stream_padding + table_bits + header + centroid
    return {
        "weights": in_features * out_features,
        "kept": layer.kept,
        "symbols": n_sym,
        "fillers": layer.fillers,
        "index_bits": n_sym * layer.idx_bits,
        "rel_bits": n_sym * layer.rel_bits,
        "huffman_bits": huff,
        "padding_bits": row_word_bits - huff + stream_padding,
        "table_bits": table_bits,
        "header_bits": header,
        "centroid_bits": centroid,
        "total_bits": total,
        "entropy": entropy_bits(freqs),
        "average_length": average_length(freqs, layer.table.lengths()[:freqs.size]),
    }
