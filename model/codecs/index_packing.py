"""Golden twin of ``hw.index_path.IndexPath``'s bit unpacking, and its inverse.

A row's codebook indices are one continuous LSB-first bit string, ``index_bits``
per index, padded with zeros to a whole number of 32-bit words.
"""
from __future__ import annotations

import numpy as np

from model.contract.ints import ceil_div
from model.contract.layout import WORD_BITS


def pack_indices(indices: np.ndarray, index_bits: int) -> np.ndarray:
    """Pack (rows, S) indices into (rows, ceil(S*index_bits/32)) uint32 words."""
    indices = np.asarray(indices, dtype=np.uint64)
    rows, s = indices.shape
    if s and int(indices.max(initial=0)) >> index_bits:
        raise ValueError(f"an index does not fit in {index_bits} bits")
    n_words = ceil_div(s * index_bits, WORD_BITS)
    bits = ((indices[:, :, None] >> np.arange(index_bits, dtype=np.uint64)) & 1).astype(np.uint8)
    bits = bits.reshape(rows, s * index_bits)
    padded = np.zeros((rows, n_words * WORD_BITS), dtype=np.uint8)
    padded[:, :s * index_bits] = bits
    weights = np.uint64(1) << np.arange(WORD_BITS, dtype=np.uint64)
    return (padded.reshape(rows, n_words, WORD_BITS) * weights).sum(axis=2).astype(np.uint32)


def unpack_indices(words: np.ndarray, index_bits: int, subvectors: int) -> np.ndarray:
    """Inverse of :func:`pack_indices`: (rows, n_words) words -> (rows, subvectors) indices."""
    words = np.asarray(words, dtype=np.uint64)
    rows = words.shape[0]
    bits = ((words[:, :, None] >> np.arange(WORD_BITS, dtype=np.uint64)) & 1).reshape(rows, -1)
    bits = bits[:, :subvectors * index_bits].reshape(rows, subvectors, index_bits)
    return (bits << np.arange(index_bits, dtype=np.uint64)).sum(axis=2).astype(np.int64)
