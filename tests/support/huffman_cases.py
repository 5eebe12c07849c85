"""Reference Huffman helpers shared by the codec tests and the decoder RTL tests."""
from __future__ import annotations

import heapq
import itertools

import numpy as np

from model.codecs.huffman import HuffmanError, HuffmanStatus, HuffmanTable, count_bits, decode_stream
from model.contract.layout import WORD_BITS


def huffman_lengths(freqs) -> np.ndarray:
    """Textbook unlimited Huffman code lengths (merge the two lightest), as a reference."""
    freqs = np.asarray(freqs)
    lengths = np.zeros(freqs.size, dtype=np.int64)
    present = [int(i) for i in np.flatnonzero(freqs > 0)]
    if len(present) == 1:
        lengths[present[0]] = 1
    if len(present) < 2:
        return lengths
    heap = [(float(freqs[i]), n, [i]) for n, i in enumerate(present)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        wa, _, a = heapq.heappop(heap)
        wb, _, b = heapq.heappop(heap)
        for i in a + b:
            lengths[i] += 1
        heapq.heappush(heap, (wa + wb, tie, a + b))
        tie += 1
    return lengths


def brute_force_cost(freqs, max_len: int) -> float:
    """Smallest ``sum(f * L)`` over all length vectors 1..max_len with Kraft sum <= 1."""
    f = np.array([x for x in freqs if x > 0], dtype=np.float64)
    n = f.size
    if n <= 1:
        return float(f.sum())
    grid = np.array(list(itertools.product(range(1, max_len + 1), repeat=n)), dtype=np.int64)
    ok = (np.ldexp(1.0, -grid).sum(axis=1) <= 1.0 + 1e-12)
    return float((grid[ok] * f).sum(axis=1).min())


def reference_decode(words, table: HuffmanTable, n_symbols: int):
    """Independent decoder: walks the stream bit by bit through a code -> symbol dictionary.

    Returns ``(symbols, status, bits_used, words_used)`` with the rules of the
    model.codecs.huffman docstring (never raises).
    """
    codes = {table.code(s): s for s in table.symbols}
    bits = []
    for w in words:
        bits += [(int(w) >> i) & 1 for i in range(WORD_BITS)]
    out, pos = [], 0
    for _ in range(n_symbols):
        remaining = len(bits) - pos
        if remaining <= 0:
            return out, HuffmanStatus.TRUNCATED, pos, len(words)
        code = 0
        for length in range(1, table.longest + 1):
            bit = bits[pos + length - 1] if pos + length - 1 < len(bits) else 0
            code = code << 1 | bit
            if (code, length) in codes:
                break
        else:
            return out, HuffmanStatus.INVALID_CODE, pos, pos // WORD_BITS + 1
        if length > remaining:
            return out, HuffmanStatus.TRUNCATED, pos, len(words)
        out.append(codes[(code, length)])
        pos += length
    return out, HuffmanStatus.NONE, pos, -(-pos // WORD_BITS)


def golden_outcome(words, table, n_symbols):
    """(symbols, status, bits, words_used, counters) from the golden decoder, errors included."""
    try:
        r = decode_stream(words, table, n_symbols)
        return list(r.symbols), HuffmanStatus.NONE, r.counters["huffman_bits"], r.words_used, r.counters
    except HuffmanError as err:
        return list(err.symbols), err.status, err.bits, err.words_used, err.counters


def random_freqs(rng, symbol_bits: int, max_len: int, *, n_present=None, skew=None) -> np.ndarray:
    """Frequencies over ``2**symbol_bits`` symbols, some absent, at most ``2**max_len`` present."""
    alphabet = 1 << symbol_bits
    cap = min(alphabet, 1 << max_len)
    n = n_present if n_present is not None else int(rng.integers(1, cap + 1))
    freqs = np.zeros(alphabet, dtype=np.int64)
    chosen = rng.choice(alphabet, size=n, replace=False)
    skew = skew if skew is not None else float(rng.choice([0.3, 1.0, 2.5]))
    # heavy-tailed weights make long codes, so the length limit often binds
    freqs[chosen] = np.maximum(1, (rng.pareto(skew, size=n) * 50).astype(np.int64) + 1)
    return freqs


def words_of(n_lengths: int, counts, symbols, symbol_bits: int) -> list[int]:
    """Hand-built table words (counts for lengths 1..n_lengths), possibly invalid."""
    cb = count_bits(symbol_bits)
    bits, pos = 0, 0
    for c in counts:
        bits |= c << pos
        pos += cb
    for s in symbols:
        bits |= s << pos
        pos += symbol_bits
    return [n_lengths] + [(bits >> (32 * i)) & 0xFFFFFFFF for i in range(-(-pos // 32))]


def reference_steps(n_symbols: int, failed: bool, max_len: int) -> int:
    """The decoder's busy cycles, from the rule alone: steps of two codes when ``2 * max_len <= 32``
    (a run's odd last symbol alone), else one; a step that finds an error is busy and delivers
    ``n_symbols``' odd one out, if any (every step before it took two)."""
    if 2 * max_len > 32:
        return n_symbols + failed
    return n_symbols // 2 + 1 if failed else (n_symbols + 1) // 2
