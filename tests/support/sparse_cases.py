"""Sparse Huffman-coded layers for the engine tests: taking a layer's stream apart, and corrupting it.

A corrupted stream is laid out again at the end of the DRAM image (inputs and
outputs keep their addresses) and the layer's descriptor points at it, so
defects that change the stream's length need no other change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from model.codecs.huffman import HuffmanTable, count_bits, encode
from model.codecs.vectors import random_vectors
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineFault
from model.contract.ints import ceil_div
from model.contract.layout import (DESC_WORDS, DRAM_WORDS_WORD, FIELD16, REL_BITS, SPARSE_BIAS_BITS, SPARSE_LAYER_WORDS, WORD_BITS,
                                   LayerMode, huffman_index_bits)
from model.golden.engine import GoldenEngine
from model.program.writer import build_program

from engine_cases import random_case

#: Defects :func:`corrupt_sparse` can make, by the error the engine must report.
SPARSE_DEFECTS = ("HUFF_OVERSUBSCRIBED", "HUFF_INCOMPLETE", "HUFF_LENGTH", "HUFF_SYMBOL", "HUFF_TRUNCATED",
                  "HUFF_INVALID_CODE", "BAD_SPARSE", "BAD_INDEX", "BAD_STREAM", "BAD_CODEBOOK")


@dataclass
class SparseParts:
    """A HUFFMAN layer's stream, taken apart (see model.contract.layout)."""
    layer: int
    desc: Descriptor
    rq: int               # the layer's requantization word
    counts: list          # counts[L], L = 0..longest
    symbols: list
    rows: list = field(default_factory=list)   # [bias, n_symbols, code words (list)]


def desc_addr(image, layer: int) -> int:
    return int(image[2]) + layer * DESC_WORDS


def sparse_layers(image) -> list[int]:
    n = int(image[1]) & FIELD16
    return [i for i in range(n)
            if Descriptor.decode(image[desc_addr(image, i):desc_addr(image, i) + DESC_WORDS]).mode
            == LayerMode.HUFFMAN]


def take_apart(image, program, layer: int) -> SparseParts:
    cfg = program.config
    a = desc_addr(image, layer)
    d = Descriptor.decode(image[a:a + DESC_WORDS])
    size = int(image[d.stream_addr])
    stream = image[d.stream_addr + 1:d.stream_addr + 1 + (size & FIELD16) * (size >> 16)]
    from model.codecs.huffman import decode_stream
    skip = SPARSE_LAYER_WORDS - 1
    table, cur = HuffmanTable.parse_words(stream[skip:], cfg.huffman_max_len, cfg.huffman_symbol_bits)
    cur += skip
    parts = SparseParts(layer, d, int(stream[0]), list(table.counts), list(table.symbols))
    for _ in range(d.out_features):
        header = int(stream[cur])
        n_symbols = (header >> SPARSE_BIAS_BITS) + 1
        used = decode_stream(stream[cur + 1:], table, n_symbols).words_used
        parts.rows.append([header & ((1 << SPARSE_BIAS_BITS) - 1), n_symbols,
                           [int(w) for w in stream[cur + 1:cur + 1 + used]]])
        cur += 1 + used
    return parts


def table_words(counts, symbols, symbol_bits: int, n_lengths: int | None = None) -> list[int]:
    """A table's words without any validation (so bad tables can be written)."""
    cb = count_bits(symbol_bits)
    bits = pos = 0
    for c in counts[1:]:
        bits |= (c & ((1 << cb) - 1)) << pos
        pos += cb
    for s in symbols:
        bits |= (s & ((1 << symbol_bits) - 1)) << pos
        pos += symbol_bits
    header = len(counts) - 1 if n_lengths is None else n_lengths
    return [header] + [(bits >> (WORD_BITS * i)) & 0xFFFFFFFF for i in range(ceil_div(pos, WORD_BITS))]


def lay_out(image, parts: SparseParts, twords: list[int], table_budget: int | None = None,
            size_total: int | None = None) -> np.ndarray:
    """The image with the layer's stream rebuilt from ``parts`` at its end."""
    body = [parts.rq] + list(twords)
    for b, n_sym, words in parts.rows:
        body += [b | (n_sym - 1) << SPARSE_BIAS_BITS] + list(words)
    total = len(body) if size_total is None else size_total
    rows = max(1, ceil_div(total, FIELD16))
    row_words = ceil_div(total, rows)
    body += [0] * max(0, rows * row_words - len(body))
    addr = len(image)
    d = parts.desc
    d.stream_addr = addr
    d.row_words = len(twords) if table_budget is None else table_budget
    img = np.concatenate([image, np.array([rows | row_words << 16] + body, dtype=np.uint32)]).astype(np.uint32)
    img[DRAM_WORDS_WORD] = len(img)   # the DRAM grew by the new stream
    a = desc_addr(img, parts.layer)
    img[a:a + DESC_WORDS] = d.encode()
    return img


def _reencode(parts: SparseParts, program, row: int, symbols) -> None:
    cfg = program.config
    table = HuffmanTable(tuple(parts.counts), tuple(parts.symbols), cfg.huffman_symbol_bits, cfg.huffman_max_len)
    words, _ = encode(symbols, table)
    parts.rows[row][1:] = [len(symbols), [int(w) for w in words]]


def _row_symbols(parts: SparseParts, program, row: int) -> list[int]:
    from model.codecs.huffman import decode
    cfg = program.config
    table = HuffmanTable(tuple(parts.counts), tuple(parts.symbols), cfg.huffman_symbol_bits, cfg.huffman_max_len)
    return [int(s) for s in decode(parts.rows[row][2], table, parts.rows[row][1])]


def corrupt_sparse(image, program, what: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``image`` whose sparse layer has one defect the engine must report as ``what``.

    Raises ValueError when this program has no room for the defect.
    """
    cfg = program.config
    layers = sparse_layers(image)
    if not layers:
        raise ValueError("no sparse layer")
    parts = take_apart(image, program, int(rng.choice(layers)))
    sb = cfg.huffman_symbol_bits
    counts, symbols = parts.counts, parts.symbols
    longest = len(counts) - 1
    row = int(rng.integers(0, len(parts.rows)))
    k = parts.desc.codebook_size
    idx_bits = huffman_index_bits(k)
    budget = size_total = None
    if what == "HUFF_OVERSUBSCRIBED":
        # Codes added at one length, each with a symbol of its own, so only the Kraft sum is wrong.
        length, extra = int(rng.integers(1, longest + 1)), int(rng.integers(1, 3))
        unused = [v for v in range(1 << sb) if v not in set(symbols)][:extra]
        if len(unused) < extra:
            raise ValueError("no unused symbols to add")
        at = sum(counts[1:length + 1])
        counts[length] += extra
        if sum(c / 2 ** L for L, c in enumerate(counts) if L) <= 1:
            raise ValueError("a one-symbol table has room for these codes")
        symbols[at:at] = unused
    elif what == "HUFF_INCOMPLETE":
        choices = [L for L in range(1, longest + 1) if counts[L]]
        L = int(rng.choice(choices))
        counts[L] -= 1
        if sum(counts) == 1 and counts[1] == 1:
            raise ValueError("the smaller table is the accepted one-symbol table")
        symbols.pop()
    elif what == "HUFF_LENGTH":
        return lay_out(image, parts, table_words(counts, symbols, sb,
                                                 n_lengths=cfg.huffman_max_len + int(rng.integers(1, 8))))
    elif what == "HUFF_SYMBOL":
        if len(symbols) < 2:
            raise ValueError("a one-symbol table cannot repeat a symbol")
        i, j = sorted(rng.choice(len(symbols), size=2, replace=False))
        symbols[j] = symbols[i]
    elif what == "HUFF_TRUNCATED":   # the table longer than its budget
        budget = int(rng.integers(0, len(table_words(counts, symbols, sb))))
    elif what == "HUFF_INVALID_CODE":
        if len(symbols) != 1:
            raise ValueError("only a one-symbol table has invalid codes")
        n = parts.rows[row][1]
        bit = int(rng.integers(0, n))
        parts.rows[row][2][bit // WORD_BITS] |= 1 << (bit % WORD_BITS)
    elif what == "BAD_SPARSE":
        # Symbols appended until the position runs past the row's end.
        longest_run = max(symbols, key=lambda s: s >> idx_bits)
        extra = parts.desc.in_features // ((longest_run >> idx_bits) + 1) + 1
        _reencode(parts, program, row, _row_symbols(parts, program, row) + [longest_run] * extra)
    elif what == "BAD_INDEX":
        free = [(s >> idx_bits << idx_bits) | i for s in symbols for i in range(k, 1 << idx_bits)
                if (s >> idx_bits << idx_bits) | i not in symbols]
        if not free:
            raise ValueError(f"no free index at or above k={k}")
        used = sorted(set(_row_symbols(parts, program, row)))
        old = int(rng.choice(used))
        new = [s for s in free if s >> idx_bits == old >> idx_bits]   # same run: same position
        if not new:
            raise ValueError("no free index with the same run")
        symbols[symbols.index(old)] = int(rng.choice(new))
    elif what == "BAD_STREAM":
        full = SPARSE_LAYER_WORDS - 1 + len(table_words(counts, symbols, sb)) + sum(1 + len(p[2]) for p in parts.rows)
        size_total = int(rng.integers(0, full))
    elif what == "BAD_CODEBOOK":
        d = parts.desc
        d.codebook_size = [0, cfg.huffman_k_max + 1, (cfg.rom_entries - d.codebook_base) * cfg.lanes + 1][
            int(rng.integers(0, 3))]
        if d.codebook_size > FIELD16:
            raise ValueError("ROM too large to run past")
    else:
        raise ValueError(what)
    return lay_out(image, parts, table_words(counts, symbols, sb), budget, size_total)


def one_symbol_case(lanes: int, n_in: int = 23, n_out: int = 5, n_images: int = 1, seed: int = 0):
    """A sparse layer with every weight kept and equal: its table has one symbol (for invalid codes)."""
    rng = np.random.default_rng(seed)
    layer = SimpleNamespace(mode="huffman", in_features=n_in, out_features=n_out,
                            codebook=np.array([[0], [37]]), indices=np.ones((n_out, n_in), dtype=np.int64),
                            bias=rng.integers(-1000, 1000, size=n_out), mult=np.full(n_out, 1 << 14),
                            shift=np.full(n_out, 20), relu=False)
    lowered = SimpleNamespace(name="one-symbol", method="random", lanes=lanes, input_scale=1 / 127,
                              output_scale=1.0, layers=[layer], info={})
    program = build_program(lowered, codebook_depth=4, config_max_features=64,
                            huffman_symbol_bits=REL_BITS + 2)
    x = random_vectors(rng, n_images, n_in)
    image, out_addr, out_words = program.dram_image(x)
    return program, image, out_addr, out_words * n_images


_BASES = []


def fuzz_bases(k_max: int) -> list:
    """A few small sparse programs for fuzzing, on engines of ``k_max`` centroids (built once)."""
    if not _BASES:
        for seed in range(6):
            _BASES.append(random_case(9000 + seed, [1, 2, 4][seed % 3], n_images=1, huffman_k_max=k_max))
        _BASES.append(one_symbol_case(2))
    return _BASES


def fuzz_image(rng: np.random.Generator, case) -> np.ndarray:
    """A corrupted image: a structured defect of one class, or random bit flips in a sparse stream.

    Images whose stream runs past the end of DRAM are drawn again: the RTL does
    not know the DRAM's size, and the program loader rejects them (README).
    """
    for _ in range(100):
        img = _fuzz_once(rng, case)
        try:
            GoldenEngine(case[0].config).run(img)
        except EngineFault as fault:
            if "past the end of DRAM" in fault.detail:
                continue
        return img
    raise AssertionError("no corruption that stays inside DRAM")


def _fuzz_once(rng: np.random.Generator, case) -> np.ndarray:
    program, image, _, _ = case
    if rng.integers(0, 2):
        what = SPARSE_DEFECTS[int(rng.integers(0, len(SPARSE_DEFECTS)))]
        try:
            return corrupt_sparse(image, program, what, rng)
        except ValueError:
            pass
    img = image.copy()
    layer = int(rng.choice(sparse_layers(img)))
    a = int(img[2]) + layer * DESC_WORDS
    d = Descriptor.decode(img[a:a + DESC_WORDS])
    size = int(img[d.stream_addr])
    end = min(len(img), d.stream_addr + 1 + (size & 0xFFFF) * (size >> 16))
    for _ in range(int(rng.integers(1, 5))):
        w = int(rng.integers(d.stream_addr, end))
        img[w] ^= np.uint32(1 << int(rng.integers(0, WORD_BITS)))
    if rng.integers(0, 4) == 0:      # and sometimes a wrong table budget
        d.row_words = int(rng.integers(0, 2 * d.row_words + 2))
        img[a:a + DESC_WORDS] = d.encode()
    return img
