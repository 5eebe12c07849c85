"""Sparse (Huffman-coded) layers on P processing elements: the stream each PE's sub-stream, interleaved
(model.contract.layout, "Sparse Huffman-coded layers", *Processing elements*), written by the program writer and
decoded by the golden model as P = 1 decodes it, counters and errors included."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from model.codecs.huffman import HuffmanTable, encode
from model.codecs.layers.huffman import HuffmanCodec
from model.codecs.sparse_rows import SparseLayer, encode_layer, joint_symbols, layer_bits, row_symbols, size_word_split
from model.codecs.vectors import random_vectors
from model.contract.config import EngineConfig
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault, ProgramError
from model.contract.layout import (FIELD16, JOB_WORDS, PES, REL_BITS, WORD_BITS, LayerMode, huffman_index_bits,
                                   pe_stream_position, pe_substream_positions)
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_lowered, random_sparse_layer
from model.program.writer import build_program, lay_out_for_pes

LANES, MAX_LEN = 4, 15
#: Stream words, which the P-layout changes (P requantization words and table copies, padding).
STREAM_COUNTERS = {"dram_read_words", "weight_sram_reads", "weight_sram_writes"}
STREAM_AT = 16   # the stream's word address in the test images


def sparse_matrix(rng, n_out: int, n_in: int, k: int) -> np.ndarray:
    """Random centroid indices with rows of no kept weight and long zero runs (fillers) among dense rows."""
    density = rng.choice([0.0, 0.01, 0.05, 0.3, 1.0], size=n_out)
    keep = rng.random((n_out, n_in)) < density[:, None]
    idx = np.where(keep, rng.integers(1, k, size=(n_out, n_in)), 0)
    idx[0] = 0                               # a row with no weight at all
    if n_out > 1 and n_in > 40:              # one weight after a gap of many filler lengths
        idx[1] = 0
        idx[1, n_in - 1] = 1
    return idx


def engine(k: int, pes: int, symbol_bits: int) -> tuple[EngineConfig, np.ndarray]:
    rom = np.zeros((-(-k // LANES), LANES), dtype=np.int64)
    rom.reshape(-1)[1:k] = np.arange(1, k) * 3 - 40
    cfg = EngineConfig(lanes=LANES, rom=tuple(map(tuple, rom.tolist())), huffman_max_len=MAX_LEN,
                       huffman_symbol_bits=symbol_bits, pes=pes)
    return cfg, rom


def stream_image(stream: np.ndarray, n_in: int, n_out: int, k: int, table_words: int):
    image = np.concatenate([np.zeros(STREAM_AT, dtype=np.uint32), stream]).astype(np.uint32)
    return image, Descriptor(n_in, n_out, 0, k, STREAM_AT, table_words, False, LayerMode.HUFFMAN)


def decoded(stream, n_in, n_out, k, table_words, pes, symbol_bits):
    """The golden decode of a stream on a ``pes``-PE engine, and its counters for one image."""
    cfg, rom = engine(k, pes, symbol_bits)
    image, desc = stream_image(stream, n_in, n_out, k, table_words)
    codec = HuffmanCodec()
    layer = codec.decode(image, desc, cfg, 0, rom)
    layer.stream_words = codec.stream_words(image, desc, "layer 0")
    return layer, codec.counters(layer, 1, cfg)


def fault(stream, n_in, n_out, k, table_words, pes, symbol_bits) -> EngineFault:
    with pytest.raises(EngineFault) as err:
        decoded(stream, n_in, n_out, k, table_words, pes, symbol_bits)
    return err.value


@pytest.mark.parametrize("n_out, n_in, k", [(1, 5, 2), (3, 17, 4), (13, 300, 16), (37, 90, 5), (64, 40, 9)])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_p_decodes_to_the_one_pe_layer(n_out, n_in, k, seed):
    """The P-layout of random sparse matrices (out_features not a multiple of P, empty rows, fillers) decodes to
    P = 1's weights, biases, requantization and counters (but the stream's words); its size word's rows are a
    multiple of P and body word s * P + p is PE p's sub-stream word s."""
    rng = np.random.default_rng(seed * 100 + n_out)
    idx = sparse_matrix(rng, n_out, n_in, k)
    symbol_bits = REL_BITS + max(1, huffman_index_bits(k))
    sparse = encode_layer(idx, k, symbol_bits, MAX_LEN)
    assert sparse.fillers > 0 or n_in <= 40
    bias = rng.integers(-(1 << 20), 1 << 20, size=n_out)
    mult, shift = np.full(n_out, 12345), np.full(n_out, 17)
    table = sparse.table.to_words()
    one_stream = sparse.stream(bias, mult, shift)
    one, c1 = decoded(one_stream, n_in, n_out, k, len(table), 1, symbol_bits)
    for pes in PES:
        stream = sparse.stream(bias, mult, shift, pes)
        size = int(stream[0])
        rows, row_words = size & FIELD16, size >> 16
        assert rows % pes == 0 and len(stream) == 1 + rows * row_words
        # Each PE's sub-stream: requantization word, table, its rows' headers and codes, then zeros.
        body = stream[1:]
        length = rows // pes * row_words
        subs = sparse.substream_words(pes)
        assert length == max(subs) and (rows, row_words) == size_word_split(max(subs), pes)
        for p in range(pes):
            sub = body[p::pes]
            assert len(sub) == length
            np.testing.assert_array_equal(sub, body[pe_substream_positions(p, rows, row_words, pes)])
            assert int(sub[0]) == 12345 | 17 << 16
            np.testing.assert_array_equal(sub[1:1 + len(table)], table)
            expect = np.concatenate([[(int(bias[r]) & 0x3FFFFF) | (len(sparse.symbols[r]) - 1) << 22,
                                      *sparse.row_words[r]] for r in range(p, n_out, pes)] or [[]]).astype(np.uint32)
            np.testing.assert_array_equal(sub[1 + len(table):subs[p]], expect)
            assert not sub[subs[p]:].any()
        layer, counters = decoded(stream, n_in, n_out, k, len(table), pes, symbol_bits)
        np.testing.assert_array_equal(layer.weights(), one.weights())
        for name in ("bias", "mult", "shift", "act"):
            np.testing.assert_array_equal(getattr(layer, name), getattr(one, name))
        assert layer.stream_words == len(stream)
        assert {n: v for n, v in counters.items() if n not in STREAM_COUNTERS} == \
            {n: v for n, v in c1.items() if n not in STREAM_COUNTERS}
        assert counters["dram_read_words"] - c1["dram_read_words"] == len(stream) - len(one_stream)
        # The bit account matches the stream: everything but the descriptor and the centroids.
        bits = layer_bits(sparse, n_in, n_out, k, LANES, pes)
        assert bits["total_bits"] - bits["centroid_bits"] == WORD_BITS * (len(stream) + 8)
        assert bits["table_bits"] == pes * WORD_BITS * len(table)


def test_substream_positions_of_any_size_word():
    """Every body word belongs to one PE; a rows field that is not a multiple of P (a corrupted size word) deals the
    stream rows as the word distributor does."""
    for pes in PES:
        for rows in range(0, 3 * pes + 2):
            for row_words in (1, 3):
                got = [pe_substream_positions(p, rows, row_words, pes) for p in range(pes)]
                assert sorted(sum(got, [])) == list(range(rows * row_words))
                for p in range(pes):
                    assert got[p] == [pe_stream_position(r, w, rows, row_words, pes)
                                      for r in range(p, rows, pes) for w in range(row_words)]
                    if rows % pes == 0:
                        assert got[p] == list(range(p, rows * row_words, pes))


def test_the_size_word_split():
    assert size_word_split(10) == (1, 10) and size_word_split(10, 4) == (4, 10)
    assert size_word_split(FIELD16 + 1, 2) == (4, (FIELD16 + 2) // 2)
    assert size_word_split(FIELD16 * 8, 8) == (64, FIELD16)
    with pytest.raises(ValueError, match="too long for the size word"):
        size_word_split(FIELD16 * FIELD16 // 4 + 1, 8)


# --- errors ------------------------------------------------------------------------------------------------------
K, N_IN, N_OUT = 5, 40, 11          # idx_bits 3: indices 5..7 are bad
SYMBOL_BITS = REL_BITS + 3


def coded(rows_symbols: list[list[int]]) -> SparseLayer:
    """A sparse layer of any symbols (bad ones too), with a table over all of them."""
    syms = [np.asarray(s, dtype=np.int64) for s in rows_symbols]
    freqs = np.bincount(np.concatenate(syms), minlength=1 << SYMBOL_BITS)
    table = HuffmanTable.from_freqs(freqs, SYMBOL_BITS, MAX_LEN)
    words, bits = zip(*(encode(s, table) for s in syms))
    return SparseLayer(table, 3, REL_BITS, syms, 0, 0, list(words), list(bits))


def good_rows(rng) -> list[list[int]]:
    idx = sparse_matrix(rng, N_OUT, N_IN, K)
    return [list(joint_symbols(*row_symbols(row), 3)) for row in idx]


def bad_index(rows, r):
    rows[r] = rows[r][:-1] + [(rows[r][-1] >> 3 << 3) | 6]      # same position, index 6 >= k


def bad_position(rows, r):
    rows[r] = rows[r] + [15 << 3 | 1] * 4                          # runs of 15 past the row's 40 positions


def layer_stream(rows, pes):
    zeros = np.zeros(N_OUT, dtype=np.int64)
    layer = coded(rows)
    return layer.stream(np.arange(N_OUT) - 5, zeros + 300, zeros + 9, pes), len(layer.table.to_words())


@pytest.mark.parametrize("defect, code", [(bad_index, EngineError.BAD_INDEX), (bad_position, EngineError.BAD_SPARSE)])
def test_one_bad_row_is_the_one_pe_error(defect, code):
    rng = np.random.default_rng(7)
    for r in (0, 5, N_OUT - 1):
        rows = good_rows(rng)
        defect(rows, r)
        for pes in PES:
            stream, table_words = layer_stream(rows, pes)
            err = fault(stream, N_IN, N_OUT, K, table_words, pes, SYMBOL_BITS)
            assert err.code == code
            assert (f"row {r}:" if pes == 1 else f"row {r} (PE {r % pes}):") in err.detail


def test_a_truncated_size_word_is_bad_stream():
    """The size word's row_words cut short: the PE whose sub-stream needs a word past it stops with BAD_STREAM, as
    P = 1.  Its rows cut to one that is not a multiple of P: the stream rows are dealt as the word distributor deals
    them (the last PE gets none, the others words of every PE), and the lowest PE reports its error."""
    rows = good_rows(np.random.default_rng(8))
    for pes in PES:
        stream, table_words = layer_stream(rows, pes)
        n_rows, row_words = int(stream[0]) & FIELD16, int(stream[0]) >> 16
        for cut in (dict(row_words=row_words - 1), dict(row_words=1), dict(rows=n_rows - 1)):
            short = stream.copy()
            short[0] = cut.get("rows", n_rows) | cut.get("row_words", row_words) << 16
            err = fault(short, N_IN, N_OUT, K, table_words, pes, SYMBOL_BITS)
            if "rows" in cut and pes > 1:
                assert "PE 0" in err.detail    # PE 0's sub-stream is now words of every PE
            else:
                assert err.code == EngineError.BAD_STREAM


def test_two_bad_pes_give_the_lowest_pes_error():
    """Row 2 (PE 2 of 4) has a bad index, row 5 (PE 1) a bad position: P = 4 reports PE 1's error, P = 1 row 2's."""
    rows = good_rows(np.random.default_rng(9))
    bad_index(rows, 2)
    bad_position(rows, 5)
    stream, table_words = layer_stream(rows, 1)
    assert fault(stream, N_IN, N_OUT, K, table_words, 1, SYMBOL_BITS).code == EngineError.BAD_INDEX
    stream, table_words = layer_stream(rows, 4)
    err = fault(stream, N_IN, N_OUT, K, table_words, 4, SYMBOL_BITS)
    assert err.code == EngineError.BAD_SPARSE and "row 5 (PE 1):" in err.detail
    # On 2 PEs row 2 is PE 0's: its error.  On 8, row 2 is PE 2's and row 5 PE 5's: PE 2's.
    for pes in (2, 8):
        stream, table_words = layer_stream(rows, pes)
        err = fault(stream, N_IN, N_OUT, K, table_words, pes, SYMBOL_BITS)
        assert err.code == EngineError.BAD_INDEX and f"row 2 (PE {2 % pes}):" in err.detail


def test_a_bad_table_copy_of_one_pe():
    rows = good_rows(np.random.default_rng(11))
    stream, table_words = layer_stream(rows, 4)
    one, _ = layer_stream(rows, 1)
    bad = stream.copy()
    bad[1 + 1 * 4 + 3] = 0xFFFFFFFF        # word 1 of PE 3's sub-stream: its table's header
    bad1 = one.copy()
    bad1[2] = 0xFFFFFFFF
    code1 = fault(bad1, N_IN, N_OUT, K, table_words, 1, SYMBOL_BITS).code
    err = fault(bad, N_IN, N_OUT, K, table_words, 4, SYMBOL_BITS)
    assert err.code == code1 and "PE 3 Huffman table" in err.detail


# --- whole programs ----------------------------------------------------------------------------------------------
def deepcomp_like(seed: int, shapes):
    rng = np.random.default_rng(seed)
    layers = [random_sparse_layer(rng, n_in, n_out, 16, i < len(shapes) - 2)
              for i, (n_in, n_out) in enumerate(zip(shapes[:-1], shapes[1:]))]
    return SimpleNamespace(name="sparse", method="deepcomp", lanes=LANES, input_scale=1 / 127, output_scale=1.0,
                           layers=layers, info={})


def golden(program, x):
    image, _, _ = program.dram_image(x)
    return GoldenEngine(program.config).run(image)


@pytest.mark.parametrize("seed, shapes", [(0, [37, 23, 10]), (1, [50, 31, 17, 6]), (2, [9, 3, 5])])
def test_programs_on_p_pes_run_as_on_one(seed, shapes):
    """build_program(pes=P) of a deepcomp-like network and of a mixed VQ / sparse one: the golden outputs of P = 1,
    each sparse layer's counters but its stream words; the layers' metadata record P."""
    mixed = random_lowered(np.random.default_rng(seed), LANES, shapes, 16, huffman_k_max=8)
    for lowered in (deepcomp_like(seed, shapes), mixed):
        x = random_vectors(np.random.default_rng(seed + 50), 3, shapes[0])
        programs = {p: build_program(lowered, codebook_depth=16, config_max_features=64, pes=p,
                                     weight_sram_words=64) for p in (1, 2, 4)}
        one = golden(programs[1], x)
        for pes, program in programs.items():
            assert program.config.pes == pes
            sparse = [i for i, l in enumerate(program.meta["layers"]) if l["mode"] == "huffman"]
            assert sparse and all(program.meta["layers"][i].get("pes", 1) == pes for i in sparse)
            assert all("pes" not in l for l in program.meta["layers"] if l["mode"] != "huffman")
            # The compression account is the image's words.
            stats = program.meta["compression"]
            assert stats["bytes"] == 4 * len(program.image) + stats["codebook_bytes"]
            if lowered.method == "deepcomp":   # every bit is a sparse layer's but the job header's
                assert 8 * stats["bytes"] == stats["sparse"]["total_bits"] + WORD_BITS * JOB_WORDS
            run = golden(program, x)
            np.testing.assert_array_equal(run.outputs, one.outputs)
            # A layer after one whose hidden units were balanced across the PEs (row_order, see
            # tests/model/program/test_sparse_balance.py) has its columns moved, so other runs and codes.
            moved = {i + 1 for i, l in enumerate(program.meta["layers"]) if "row_order" in l}
            coding = {"huffman_symbols", "huffman_bits", "huffman_busy_cycles"}
            for i in sparse:
                skip = STREAM_COUNTERS | (coding if i in moved else set())
                assert {n: v for n, v in run.layer_counters[i].items() if n not in skip} == \
                    {n: v for n, v in one.layer_counters[i].items() if n not in skip}
            if lowered.method == "deepcomp":
                skip = STREAM_COUNTERS | (coding if moved else set())
                assert {n: v for n, v in run.counters.items() if n not in skip} == \
                    {n: v for n, v in one.counters.items() if n not in skip}
        words = [sum(l["placement"]["words"] for l in programs[p].meta["layers"]) for p in (1, 2, 4)]
        assert words[0] < words[1] < words[2]


def test_lay_out_for_pes_refuses_sparse_layers_written_for_another_p():
    lowered = deepcomp_like(3, [20, 12, 7])
    one, four = (build_program(lowered, codebook_depth=16, config_max_features=64, pes=p) for p in (1, 4))
    assert lay_out_for_pes(four, 4) is four and lay_out_for_pes(one, 1) is one
    for program, pes, written in ((one, 4, "1 processing element:"), (four, 2, "4 processing elements:"),
                                  (four, 1, "4 processing elements:")):
        with pytest.raises(ProgramError) as err:
            lay_out_for_pes(program, pes)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"layer 0 is sparse (Huffman-coded), written for {written}")
        assert message.endswith(f"compress it again with --pes {pes}")
