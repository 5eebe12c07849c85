"""model.codecs.huffman: length-limited code design, canonical tables, table words, the golden decoder.

Code design is checked against exhaustive search on small alphabets and
against a textbook (unlimited) Huffman construction when the limit does not
bind; tables against the Kraft equality and the canonical ordering; the
golden decoder (limit comparisons, as in the RTL) against an independent
bit-by-bit walk of the code tree (:func:`reference_decode`), which the RTL
tests reuse.  Every error class is provoked through the public API.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from model.codecs.huffman import (ERROR_CLASSES, BadSymbolError, HuffmanError, HuffmanStatus, HuffmanTable,
                                  IncompleteError, InvalidCodeError, LengthOverLimitError, NoTableError,
                                  OversubscribedError, TruncatedError, count_bits, decode, decode_stream, encode,
                                  table_words)
from model.codecs.huffman_design import average_length, canonical_codes, code_lengths, entropy_bits, kraft_sum
from model.contract.counters import COUNTERS
from model.contract.layout import WORD_BITS
from model.golden.huffman import HuffmanDecoder

from huffman_cases import brute_force_cost, huffman_lengths, random_freqs, reference_decode, reference_steps, words_of

# --- code design -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(40))
def test_code_lengths_optimal_vs_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    max_len = int(rng.integers(max(1, math.ceil(math.log2(n))), 6))
    freqs = np.zeros(n + 2, dtype=np.int64)
    freqs[rng.choice(n + 2, size=n, replace=False)] = rng.integers(1, 60, size=n)
    if seed % 4 == 0:
        freqs[freqs > 0] = [1, 1, 2, 3, 5, 8][:n]  # Fibonacci: unlimited Huffman is n - 1 deep
    lengths = code_lengths(freqs, max_len)
    assert lengths.max() <= max_len
    assert np.array_equal(lengths > 0, freqs > 0)
    assert kraft_sum(lengths) == 1.0
    assert float((freqs * lengths).sum()) == brute_force_cost(freqs, max_len)


@pytest.mark.parametrize("seed", range(30))
def test_code_lengths_match_huffman_when_limit_does_not_bind(seed):
    rng = np.random.default_rng(100 + seed)
    freqs = random_freqs(rng, 6, 15)
    reference = huffman_lengths(freqs)
    deepest = int(reference.max())
    for max_len in (deepest, deepest + 3, 40):
        lengths = code_lengths(freqs, max_len)
        assert int((freqs * lengths).sum()) == int((freqs * reference).sum())
        assert lengths.max() <= max_len
    if deepest > 2 and (freqs > 0).sum() <= 1 << (deepest - 1):
        # a binding limit costs at least as much, and the result respects it
        limited = code_lengths(freqs, deepest - 1)
        assert limited.max() <= deepest - 1
        assert int((freqs * limited).sum()) >= int((freqs * reference).sum())
        assert kraft_sum(limited) == 1.0


def test_code_lengths_edge_cases():
    assert list(code_lengths([0, 0, 0])) == [0, 0, 0]
    assert list(code_lengths([0, 7, 0])) == [0, 1, 0]           # one symbol: one bit
    assert list(code_lengths([3, 0, 5])) == [1, 0, 1]
    assert list(code_lengths([1, 1, 1, 1], max_len=2)) == [2, 2, 2, 2]
    assert list(code_lengths([0.5, 0.25, 0.25])) == [1, 2, 2]    # non-integer weights
    fib = [1, 1, 2, 3, 5, 8, 13, 21]
    assert code_lengths(fib, 20).max() == 7 and code_lengths(fib, 4).max() == 4
    with pytest.raises(ValueError):
        code_lengths([1, 1, 1, 1, 1], max_len=2)                 # 5 symbols need 3 bits
    with pytest.raises(ValueError):
        code_lengths([1, -1])


@pytest.mark.parametrize("seed", range(20))
def test_average_length_vs_entropy(seed):
    rng = np.random.default_rng(200 + seed)
    freqs = random_freqs(rng, 7, 15, n_present=int(rng.integers(2, 100)))
    h = entropy_bits(freqs)
    unlimited = average_length(freqs, code_lengths(freqs, 64))
    assert h <= unlimited + 1e-12 and unlimited < h + 1
    limited = average_length(freqs, code_lengths(freqs, 8))
    assert limited >= unlimited - 1e-12


def test_entropy_and_average_length_values():
    assert entropy_bits([1, 1, 1, 1]) == 2.0
    assert entropy_bits([4, 0, 0]) == 0.0
    assert average_length([1, 1, 2], [2, 2, 1]) == 1.5
    assert average_length([5], [1]) == 1.0                          # one symbol costs one bit


# --- canonical codes and tables ----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(20))
def test_canonical_property(seed):
    rng = np.random.default_rng(300 + seed)
    symbol_bits = int(rng.integers(2, 9))
    freqs = random_freqs(rng, symbol_bits, 12)
    if (freqs > 0).sum() < 2:
        freqs[:2] += 1
    lengths = code_lengths(freqs, 12)
    codes = canonical_codes(lengths)
    table = HuffmanTable.from_lengths(lengths, symbol_bits, 12)
    present = [int(s) for s in np.flatnonzero(lengths)]
    for s in present:
        assert table.code(s) == (int(codes[s]), int(lengths[s]))
    # shorter codes first, then by symbol value: left-justified codes increase in that order
    order = sorted(present, key=lambda s: (lengths[s], s))
    just = [int(codes[s]) << (12 - int(lengths[s])) for s in order]
    assert just == sorted(just) and len(set(just)) == len(just)
    assert list(table.symbols) == order
    # prefix-free
    for a in present:
        for b in present:
            if a != b and lengths[a] <= lengths[b]:
                assert int(codes[b]) >> int(lengths[b] - lengths[a]) != int(codes[a])
    assert np.array_equal(table.lengths()[:lengths.size], lengths)


def test_canonical_example():
    # DEFLATE's own example (RFC 1951 3.2.2): lengths (3,3,3,3,3,2,4,4) for A..H
    codes = canonical_codes([3, 3, 3, 3, 3, 2, 4, 4])
    assert list(codes) == [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111]


def example_table() -> HuffmanTable:
    """3-bit symbols: 1 -> '0', 0 -> '10', 2 -> '110', 5 -> '111'."""
    return HuffmanTable.from_lengths([2, 1, 3, 0, 0, 3], symbol_bits=3, max_len=4)


def test_table_word_layout_example():
    t = example_table()
    assert t.counts == (0, 1, 1, 2) and t.symbols == (1, 0, 2, 5)
    words = t.to_words()
    # header: n_lengths = 3; then 4-bit counts 1, 1, 2, then 3-bit symbols 1, 0, 2, 5
    body = 0x1 | 0x1 << 4 | 0x2 << 8 | 1 << 12 | 0 << 15 | 2 << 18 | 5 << 21
    assert list(words) == [3, body]
    assert table_words(3, 4, 3) == 2 and count_bits(3) == 4


def test_bit_order_example():
    """A code's first (most significant) bit goes to the next stream bit, LSB-first."""
    t = example_table()
    assert t.code(0) == (0b10, 2)
    words, n_bits = encode([0], t)
    assert n_bits == 2 and list(words) == [0b01]              # stream bits: 1, 0
    words, n_bits = encode([2, 1, 5], t)
    assert n_bits == 7 and list(words) == [0b111_0_011]        # 1,1,0 | 0 | 1,1,1
    assert list(decode(words, t, 3)) == [2, 1, 5]


@pytest.mark.parametrize("seed", range(25))
def test_table_word_round_trip(seed):
    rng = np.random.default_rng(400 + seed)
    symbol_bits = int(rng.choice([1, 2, 3, 5, 8, 10, 16]))
    max_len = int(rng.choice([1, 4, 7, 15, 24, 32]))
    if symbol_bits == 16:
        freqs = np.zeros(1 << 16, dtype=np.int64)
        freqs[rng.choice(1 << 16, size=300, replace=False)] = rng.integers(1, 100, size=300)
        max_len = max(max_len, 9)
    else:
        freqs = random_freqs(rng, symbol_bits, max_len)
    table = HuffmanTable.from_freqs(freqs, symbol_bits, max_len)
    words = table.to_words()
    assert words.dtype == np.uint32
    assert len(words) == table_words(table.longest, table.n_symbols, symbol_bits)
    again, used = HuffmanTable.parse_words(words, max_len, symbol_bits)
    assert again == table and used == len(words)
    # trailing words are not part of the table
    padded = np.concatenate([words, rng.integers(0, 1 << 32, size=3, dtype=np.uint64).astype(np.uint32)])
    assert HuffmanTable.parse_words(padded, max_len, symbol_bits) == (table, len(words))
    # a larger decoder limit reads the same table
    assert HuffmanTable.from_words(words, 32, symbol_bits).symbols == table.symbols


# --- encode / decode ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(30))
def test_encode_decode_round_trip(seed):
    rng = np.random.default_rng(500 + seed)
    symbol_bits = int(rng.choice([1, 3, 4, 8]))
    max_len = int(rng.choice([1, 3, 6, 15, 32]))
    freqs = random_freqs(rng, symbol_bits, max_len)
    table = HuffmanTable.from_freqs(freqs, symbol_bits, max_len)
    present = np.flatnonzero(freqs)
    n = int(rng.integers(0, 300))
    symbols = rng.choice(present, size=n, p=freqs[present] / freqs[present].sum())
    words, n_bits = encode(symbols, table)
    assert n_bits == int(table.lengths()[symbols].sum())
    assert len(words) == -(-n_bits // WORD_BITS)
    result = decode_stream(words, table, n)
    assert np.array_equal(result.symbols, symbols)
    assert result.counters == {"huffman_symbols": n, "huffman_bits": n_bits,
                               "huffman_busy_cycles": reference_steps(n, False, max_len)}
    assert result.words_used == len(words)
    assert set(result.counters) <= set(COUNTERS)
    ref = reference_decode(words, table, n)
    assert ref == (list(symbols), HuffmanStatus.NONE, n_bits, len(words))


def test_one_symbol_alphabet():
    table = HuffmanTable.from_freqs([0, 0, 9, 0], symbol_bits=2, max_len=5)
    assert table.counts == (0, 1) and table.one_symbol and table.code(2) == (0, 1)
    words, n_bits = encode([2] * 40, table)
    assert n_bits == 40 and list(words) == [0, 0]
    assert list(decode(words, table, 40)) == [2] * 40
    assert list(decode(words, table, 64)) == [2] * 64     # the padding zeros are codes too
    assert HuffmanTable.from_words(table.to_words(), 5, 2) == table


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case,words,status,used", [
    ("oversubscribed", words_of(2, [1, 3], [0, 1, 2, 3], 2), HuffmanStatus.OVERSUBSCRIBED, 2),
    ("oversubscribed at 1", words_of(3, [3, 0, 0], [0, 1, 2], 2), HuffmanStatus.OVERSUBSCRIBED, 2),
    ("incomplete", words_of(2, [1, 1], [0, 1], 2), HuffmanStatus.INCOMPLETE, 2),
    ("empty", words_of(0, [], [], 2), HuffmanStatus.INCOMPLETE, 1),
    ("one symbol, long code", words_of(2, [0, 1], [3], 2), HuffmanStatus.INCOMPLETE, 2),
    ("over limit", words_of(6, [0, 0, 0, 0, 0, 0], [], 2), HuffmanStatus.LENGTH_OVER_LIMIT, 1),
    ("duplicate", words_of(2, [0, 4], [0, 1, 1, 2], 2), HuffmanStatus.BAD_SYMBOL, 2),
    ("too many symbols", words_of(3, [0, 1, 6], [0, 1, 2, 3, 0, 1, 2], 2), HuffmanStatus.BAD_SYMBOL, 2),
    ("no header", [], HuffmanStatus.TRUNCATED, 0),
    ("counts cut", words_of(5, [0, 4, 0, 0, 0], [0, 1, 2, 3], 8)[:1], HuffmanStatus.TRUNCATED, 1),
    ("symbols cut", words_of(5, [0, 4, 0, 0, 0], [0, 1, 2, 3], 8)[:2], HuffmanStatus.TRUNCATED, 2),
])
def test_table_errors(case, words, status, used):
    max_len, symbol_bits = 5, (8 if "cut" in case else 2)
    with pytest.raises(ERROR_CLASSES[status]) as info:
        HuffmanTable.parse_words(words, max_len, symbol_bits)
    assert info.value.status == status and isinstance(info.value, ValueError)
    assert info.value.words_used == used
    golden = HuffmanDecoder(max_len, symbol_bits)
    with pytest.raises(HuffmanError):
        golden.load(words)
    assert golden.status == status and golden.table is None and golden.words_used == used
    # a run after a failed load is refused with the load's error, which stays until the next load
    for _ in range(2):
        with pytest.raises(HuffmanError) as info:
            golden.run([0], 1)
        assert info.value.status == status == golden.status and golden.words_used == 0


def test_table_constructor_errors():
    with pytest.raises(OversubscribedError):
        HuffmanTable((0, 1, 3), (0, 1, 2, 3), 2, 4)
    with pytest.raises(IncompleteError):
        HuffmanTable((0, 1, 1), (0, 1), 2, 4)
    with pytest.raises(IncompleteError):
        HuffmanTable((0,), (), 2, 4)
    with pytest.raises(LengthOverLimitError):
        HuffmanTable.from_lengths([1, 2, 3, 3], 2, max_len=2)
    with pytest.raises(BadSymbolError):
        HuffmanTable((0, 2), (1, 1), 2, 4)                      # duplicated
    with pytest.raises(BadSymbolError):
        HuffmanTable((0, 2), (1, 4), 2, 4)                      # out of range
    with pytest.raises(BadSymbolError):
        HuffmanTable((0, 0, 0, 8), tuple(range(8)), 2, 4)       # more symbols than the alphabet
    with pytest.raises(BadSymbolError):
        HuffmanTable.from_lengths([0, 0, 0, 0, 1, 1], 2, 4)     # symbol 5 of a 4-symbol alphabet
    with pytest.raises(BadSymbolError):
        encode([3], example_table())                             # no code for 3
    assert issubclass(HuffmanError, ValueError)
    assert {cls.status for cls in ERROR_CLASSES.values()} == set(HuffmanStatus) - {HuffmanStatus.NONE}


def test_stream_errors():
    t = example_table()
    words, n_bits = encode([2, 5, 0, 1] * 10, t)                # 80 bits: 3 words
    # fewer words than the symbols need: truncated at a symbol boundary or inside a code
    with pytest.raises(TruncatedError) as info:
        decode(words[:2], t, 40)
    assert info.value.words_used == 2 and len(info.value.symbols) < 40
    assert info.value.symbols == [2, 5, 0, 1] * (len(info.value.symbols) // 4) + \
        [2, 5, 0, 1][:len(info.value.symbols) % 4]
    with pytest.raises(TruncatedError):
        decode([], t, 1)
    assert list(decode([], t, 0)) == []
    # ending exactly at the end of the words is not truncation; one symbol more is
    one = HuffmanTable.from_lengths([1, 1], 1, 3)
    assert list(decode([0xFFFF0000], one, 32)) == [0] * 16 + [1] * 16
    with pytest.raises(TruncatedError) as info:
        decode([0xFFFF0000], one, 33)
    assert info.value.bits == 32 and len(info.value.symbols) == 32
    # a code cut by the end of the words: '11' then the end, needing 3 bits
    with pytest.raises(TruncatedError) as info:
        decode([0xC0000000], t, 100)
    assert info.value.bits == 30 and info.value.symbols == [1] * 30
    # invalid code: only the one-symbol table has one ('1' instead of '0')
    single = HuffmanTable.from_lengths([0, 1], 1, 4)
    with pytest.raises(InvalidCodeError) as info:
        decode([0, 0b100], single, 40)
    assert info.value.symbols == [1] * 34 and info.value.bits == 34 and info.value.words_used == 2
    # Two codes a step: 17 steps of two, then the step that finds the bad bit.
    assert info.value.counters == {"huffman_symbols": 34, "huffman_bits": 34, "huffman_busy_cycles": 18}
    assert reference_decode([0, 0b100], single, 40) == ([1] * 34, HuffmanStatus.INVALID_CODE, 34, 2)


def test_golden_decoder_states():
    golden = HuffmanDecoder(4, 3)
    with pytest.raises(NoTableError):
        golden.run([0], 1)
    assert golden.status == HuffmanStatus.NO_TABLE
    t = example_table()
    assert golden.load(t.to_words()) == t and golden.status == HuffmanStatus.NONE
    words, n_bits = encode([5, 5, 1], t)
    assert list(golden.run(list(words) + [123], 3)) == [5, 5, 1]
    assert golden.words_used == 1 and golden.counters["huffman_bits"] == n_bits
    with pytest.raises(TruncatedError):
        golden.run([], 2)
    assert golden.status == HuffmanStatus.TRUNCATED
    assert list(golden.run(words, 3)) == [5, 5, 1] and golden.status == HuffmanStatus.NONE
    with pytest.raises(LengthOverLimitError):
        HuffmanDecoder(2, 3).load(t.to_words())      # codes of 3 bits, window of 2
