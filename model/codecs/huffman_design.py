"""Designing Huffman codes: optimal code lengths under a length limit, their entropy and cost,
and the canonical codes they give (the order is in :mod:`model.codecs.huffman`)."""
from __future__ import annotations

import math

import numpy as np

#: Default code length limit (the engine's, :data:`model.contract.layout.HUFFMAN_DEFAULT_MAX_LEN`).
from model.contract.layout import HUFFMAN_DEFAULT_MAX_LEN as DEFAULT_MAX_LEN


def _weights(freqs) -> np.ndarray:
    freqs = np.asarray(freqs)
    if freqs.ndim != 1:
        raise ValueError("freqs must be one-dimensional")
    if freqs.size and (not np.all(np.isfinite(freqs)) or freqs.min() < 0):
        raise ValueError("frequencies must be finite and non-negative")
    # Integer counts stay exact; anything else is compared as float.
    if freqs.size == 0 or np.issubdtype(freqs.dtype, np.integer) or np.all(freqs == np.round(freqs)):
        return freqs.astype(np.int64)
    return freqs.astype(np.float64)


def code_lengths(freqs, max_len: int = DEFAULT_MAX_LEN) -> np.ndarray:
    """Optimal code lengths no longer than ``max_len`` bits (package-merge).

    Minimises ``sum(freqs * lengths)`` over all prefix codes whose lengths are
    at most ``max_len`` (Larmore and Hirschberg's package-merge, which is exact).

    Parameters
    ----------
    freqs : array_like of non-negative numbers
        Frequency of each symbol (index = symbol value).
    max_len : int
        Longest code allowed.

    Returns
    -------
    numpy.ndarray of int64
        Code length per symbol; 0 for symbols of zero frequency (absent from the
        code).  A single present symbol gets length 1.

    Raises
    ------
    ValueError
        More present symbols than ``2**max_len`` codes can hold.
    """
    w = _weights(freqs)
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    lengths = np.zeros(w.size, dtype=np.int64)
    present = np.flatnonzero(w > 0)
    n = present.size
    if n == 0:
        return lengths
    if n == 1:
        lengths[present[0]] = 1
        return lengths
    if n > 1 << min(max_len, 62):
        raise ValueError(f"{n} symbols do not fit in codes of at most {max_len} bits")
    # Coin collector's view: each symbol is a coin of face value 2**-L for every
    # L = 1..max_len, numismatic value its frequency; the cheapest set of coins
    # worth n - 1 gives the optimal lengths (a symbol's length = its coins in the
    # set).  Level by level from the longest length: the coins of a level are the
    # leaves plus the pairs ("packages") of the level below.  Each item carries
    # how many coins of each symbol it contains.
    order = present[np.lexsort((present, w[present]))]  # by weight, ties by symbol: deterministic
    leaf_w = w[order]
    leaf_c = np.eye(n, dtype=np.int32)
    items_w, items_c = leaf_w, leaf_c
    for _ in range(max_len - 1):
        pairs = items_w.size // 2
        pack_w = items_w[0:2 * pairs:2] + items_w[1:2 * pairs:2]
        pack_c = items_c[0:2 * pairs:2] + items_c[1:2 * pairs:2]
        # Leaves before packages of equal weight, stably: any tie order is optimal.
        all_w = np.concatenate([leaf_w, pack_w])
        all_c = np.concatenate([leaf_c, pack_c])
        keep = np.argsort(all_w, kind="stable")[:2 * n - 2]
        items_w, items_c = all_w[keep], all_c[keep]
    chosen = items_c[:2 * n - 2].sum(axis=0)
    lengths[order] = chosen
    return lengths


def entropy_bits(freqs) -> float:
    """Shannon entropy of the symbol distribution, in bits per symbol."""
    w = np.asarray(_weights(freqs), dtype=np.float64)
    total = w.sum()
    if total <= 0:
        return 0.0
    p = w[w > 0] / total
    return float(-(p * np.log2(p)).sum())


def average_length(freqs, lengths) -> float:
    """Average code length in bits per symbol, weighted by ``freqs``."""
    w = np.asarray(_weights(freqs), dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    if w.shape != lengths.shape:
        raise ValueError("freqs and lengths differ in size")
    total = w.sum()
    return float((w * lengths).sum() / total) if total > 0 else 0.0


def kraft_sum(lengths) -> float:
    """``sum(2**-L)`` over the present (non-zero) lengths."""
    return float(sum(math.ldexp(1.0, -int(n)) for n in np.asarray(lengths).ravel() if n > 0))


def canonical_codes(lengths) -> np.ndarray:
    """DEFLATE-style canonical code per symbol (0 where the length is 0)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    longest = int(lengths.max(initial=0))
    counts = np.bincount(lengths, minlength=longest + 1)
    counts[0] = 0
    code = 0
    next_code = [0] * (longest + 2)
    for length in range(1, longest + 1):
        code = (code + int(counts[length - 1])) << 1
        next_code[length] = code
    for symbol in range(lengths.size):  # increasing symbol value within each length
        length = int(lengths[symbol])
        if length:
            codes[symbol] = next_code[length]
            next_code[length] += 1
    return codes


def _reverse(value: int, width: int) -> int:
    return int(format(value, f"0{width}b")[::-1], 2) if width else 0
