"""Storage accounting of a Deep Compression network, every stored bit counted.

A pruned, quantized layer is stored as sparse rows of Huffman-coded joint
symbols ``run << idx_bits | idx`` (Deep Compression section 3, EIE), with
fillers where a gap overflows the ``rel_bits``-bit run field.  The encoder
and the per-layer bit count are the engine's own, :mod:`model.codecs.sparse_rows`
(:func:`~model.codecs.sparse_rows.encode_layer`, :func:`~model.codecs.sparse_rows.layer_bits`):
this module only arranges their figures into a table like the paper's
Table 2 and adds what belongs to the whole network (the job header).

What the engine stores for a layer (the layout is the engine's,
:mod:`model.contract.layout`): its descriptor, the stream's leading words (size,
requantization), the Huffman table
(:meth:`model.codecs.huffman.HuffmanTable.to_words`), per row
:data:`model.contract.layout.SPARSE_ROW_HEADER_WORDS` header word(s) (bias, symbol
count) and the row's codes padded to a whole word, the stream's padding to
its size word, and the layer's int8 centroids in the ROM, ``lanes`` to an
entry.  The fp32 reference
stores 4 bytes per weight and per bias, as
:func:`model.program.compression_stats` counts it.

For comparison each layer is also costed without Huffman coding ("P+Q" in
the paper): the same rows with every symbol at its fixed width
``rel_bits + idx_bits`` and no table.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from model.codecs.huffman_design import entropy_bits
from model.codecs.sparse_rows import encode_layer, layer_bits
from model.contract.ints import ceil_div
from model.contract.layout import (HUFFMAN_DEFAULT_MAX_LEN, JOB_WORDS, REL_BITS, SPARSE_ROW_HEADER_WORDS, WORD_BITS,
                                   WORD_BYTES, huffman_index_bits)

#: Bytes of one fp32 weight or bias in the uncompressed reference.
FP32_BYTES = 4


def default_symbol_bits(ks, rel_bits: int = REL_BITS) -> int:
    """The engine's joint symbol width for layers of ``ks`` centroids: the widest layer's ``rel_bits + idx_bits``."""
    return max(rel_bits + max(1, huffman_index_bits(int(k))) for k in ks)


@dataclass
class LayerAccount:
    """Storage of one sparse, Huffman-coded layer (sizes in bits unless named otherwise).

    ``entries`` = ``nonzeros`` + ``fillers`` (+ the one ``(0, 0)`` symbol of
    each empty row); ``index_bits`` (``idx_bits`` per entry) and
    ``rel_index_bits`` (``rel_bits`` per entry) are the fixed-width fields
    before Huffman, ``huffman_bits`` the codes after it.  ``total_bits``
    counts every stored bit of the layer (headers, codes, padding, table,
    centroids); ``fixed_total_bits`` the same rows without Huffman coding.
    ``entropy`` is that of the joint symbols, ``idx_entropy`` and
    ``run_entropy`` of their two fields alone (bits per symbol; their sum is
    at least ``entropy``, and the difference is what coding the fields
    jointly gains).
    """
    weights: int
    rows: int
    nonzeros: int
    fillers: int
    entries: int
    idx_bits: int
    rel_bits: int
    index_bits: int
    rel_index_bits: int
    huffman_bits: int
    padding_bits: int
    table_bits: int
    header_bits: int
    codebook_bits: int
    avg_code_length: float
    entropy: float
    idx_entropy: float
    run_entropy: float
    total_bits: int
    fixed_total_bits: int
    fp32_bytes: int

    @property
    def density(self) -> float:
        """Fraction of the weights kept (non-zero)."""
        return self.nonzeros / self.weights

    @property
    def total_bytes(self) -> float:
        """Every stored bit of the layer, in bytes."""
        return self.total_bits / 8

    @property
    def ratio(self) -> float:
        """fp32 bytes over stored bytes, Huffman-coded."""
        return self.fp32_bytes * 8 / self.total_bits

    @property
    def fixed_ratio(self) -> float:
        """fp32 bytes over stored bytes with fixed-width (rel, idx) entries instead of Huffman codes."""
        return self.fp32_bytes * 8 / self.fixed_total_bits

    def as_dict(self) -> dict:
        """The fields and the derived figures, for JSON."""
        return dict(asdict(self), density=self.density, ratio=self.ratio, fixed_ratio=self.fixed_ratio)


def layer_account(indices: np.ndarray, k: int, lanes: int, symbol_bits: int | None = None,
                  max_len: int = HUFFMAN_DEFAULT_MAX_LEN, rel_bits: int = REL_BITS) -> LayerAccount:
    """Account one layer given its dense matrix of centroid indices (0 = pruned).

    Parameters
    ----------
    indices : numpy.ndarray of int, shape (out_features, in_features)
    k : int
        Centroids of the layer (centroid 0 the exact zero).
    lanes : int
        Engine lanes (centroids per ROM entry).
    symbol_bits : int, optional
        The engine's joint symbol width; default this layer's own ``rel_bits + idx_bits``.
    max_len : int
        Huffman code length limit.
    rel_bits : int
        Run field width.
    """
    indices = np.asarray(indices)
    if indices.ndim != 2:
        raise ValueError("indices must be a 2-D (out_features, in_features) matrix")
    if symbol_bits is None:
        symbol_bits = default_symbol_bits([k], rel_bits)
    n_rows, n_in = indices.shape
    coded = encode_layer(indices, k, symbol_bits, max_len, rel_bits)
    b = layer_bits(coded, n_in, n_rows, k, lanes)
    width = rel_bits + coded.idx_bits
    joint = np.concatenate(coded.symbols)
    fixed_rows = sum(SPARSE_ROW_HEADER_WORDS + ceil_div(len(syms) * width, WORD_BITS) for syms in coded.symbols)
    # Without Huffman: no table and no code padding to a size word; same headers, descriptor and ROM.
    fixed_total = (b["header_bits"] - n_rows * SPARSE_ROW_HEADER_WORDS * WORD_BITS + fixed_rows * WORD_BITS
                   + b["centroid_bits"])
    return LayerAccount(
        weights=b["weights"], rows=n_rows, nonzeros=b["kept"], fillers=b["fillers"], entries=b["symbols"],
        idx_bits=coded.idx_bits, rel_bits=rel_bits, index_bits=b["index_bits"], rel_index_bits=b["rel_bits"],
        huffman_bits=b["huffman_bits"], padding_bits=b["padding_bits"], table_bits=b["table_bits"],
        header_bits=b["header_bits"], codebook_bits=b["centroid_bits"], avg_code_length=b["average_length"],
        entropy=b["entropy"], idx_entropy=entropy_bits(np.bincount(joint & ((1 << coded.idx_bits) - 1))),
        run_entropy=entropy_bits(np.bincount(joint >> coded.idx_bits)), total_bits=b["total_bits"], fixed_total_bits=fixed_total,
        fp32_bytes=(indices.size + n_rows) * FP32_BYTES)


def network_account(index_matrices, ks, lanes: int, symbol_bits: int | None = None,
                    max_len: int = HUFFMAN_DEFAULT_MAX_LEN, rel_bits: int = REL_BITS) -> dict:
    """Per-layer :class:`LayerAccount` s and the network totals (the job header added).

    Parameters
    ----------
    index_matrices : sequence of numpy.ndarray
        Each layer's dense (out_features, in_features) index matrix.
    ks : sequence of int
        Each layer's number of centroids.
    lanes : int
    symbol_bits : int, optional
        The engine's joint symbol width, one for all layers; default :func:`default_symbol_bits`.
    max_len, rel_bits : int

    Returns
    -------
    dict
        ``layers`` (list of LayerAccount), ``job_header_bytes``, ``total_bytes``,
        ``fixed_total_bytes``, ``fp32_bytes``, ``ratio``, ``fixed_ratio``,
        ``weights``, ``nonzeros``, ``bits_per_weight``, ``symbol_bits``.
    """
    index_matrices = list(index_matrices)
    ks = [int(k) for k in ks]
    if len(index_matrices) != len(ks):
        raise ValueError("need one centroid count per layer")
    if symbol_bits is None:
        symbol_bits = default_symbol_bits(ks, rel_bits)
    layers = [layer_account(m, k, lanes, symbol_bits, max_len, rel_bits) for m, k in zip(index_matrices, ks)]
    job = JOB_WORDS * WORD_BYTES
    total = job + sum(l.total_bits for l in layers) / 8
    fixed_total = job + sum(l.fixed_total_bits for l in layers) / 8
    fp32 = sum(l.fp32_bytes for l in layers)
    weights = sum(l.weights for l in layers)
    return {"layers": layers, "job_header_bytes": job, "total_bytes": total, "fixed_total_bytes": fixed_total,
            "fp32_bytes": fp32, "ratio": fp32 / total, "fixed_ratio": fp32 / fixed_total, "weights": weights,
            "nonzeros": sum(l.nonzeros for l in layers), "bits_per_weight": total * 8 / weights,
            "symbol_bits": symbol_bits}
