"""Column-wise sparse layers (LayerMode.COLUMNS) in the engine's column unit: writer, golden model, RTL.

The golden model and the RTL must agree on outputs and every counter for random programs under random DRAM
latency and stalls (the unit's own handshakes stall too: its queues fill, its output waits), and on the error
of every defect the contract lists.  The same network written with Huffman-coded rows computes the same outputs
with the same ``macs`` and ``zero_skips``.
"""
import copy

import numpy as np
import pytest

from model.codecs.layers.columns import local_rows
from model.codecs.vectors import random_vectors
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault, ProgramError
from model.contract.layout import (COLUMN_ROW_BITS, COLUMNS_KEPT_WORD, DESC_WORDS, FIELD16, FLAG_RESIDENT, JOB_WORDS,
                                   LayerMode, vector_words)
from model.golden.engine import GoldenEngine
from model.program.balance import stored_weights
from model.program.file import Program
from model.program.synthetic import random_lowered
from model.program.writer import build_program

from cli_helpers import assert_user_error, vqe
from engine_cases import assert_bit_exact, random_case, run_both, same_outcome

K_MAX = 32


def columns_case(seed: int, lanes: int, n_images: int = 2):
    return random_case(seed, lanes, n_images=n_images, huffman_k_max=K_MAX, sparse_format="columns")


def sparse_lowered(seed: int, lanes: int, shapes):
    """A random network of sparse layers only, pruned row by row to between 5 % and all of their weights."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        lowered = random_lowered(rng, lanes, shapes, 16, huffman_k_max=K_MAX)
        if all(getattr(l, "mode", "vq") == "huffman" for l in lowered.layers):
            break
    else:
        raise AssertionError("no all-sparse random network")
    pruned = []
    for layer in lowered.layers:
        layer = copy.copy(layer)
        idx = np.asarray(layer.indices)
        keep = rng.random(idx.shape) < rng.uniform(0.05, 1.0, size=(idx.shape[0], 1))
        layer.indices = np.where(keep, idx, 0)
        pruned.append(layer)
    lowered = copy.copy(lowered)
    lowered.layers = pruned
    return lowered, rng


# --- writer and golden model ----------------------------------------------------------------------------------

@pytest.mark.parametrize("lanes,seed", [(1, 0), (4, 1), (8, 2), (2, 3)])
def test_columns_compute_what_huffman_rows_compute(lanes, seed):
    """One network in both formats: the same outputs, MACs and zero skips; columns read their stream once."""
    lowered, rng = sparse_lowered(seed, lanes, [37, 29, 18, 7])
    x = random_vectors(rng, 5, 37)
    x[rng.random(x.shape) < 0.4] = 0
    rows, cols = (build_program(lowered, config_max_features=64, sparse_format=f) for f in ("huffman", "columns"))
    a, b = (GoldenEngine(p.config).run(p.dram_image(x)[0]) for p in (rows, cols))
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for name in ("macs", "zero_skips", "sram_writes", "dram_write_words"):
        assert a.counters[name] == b.counters[name], name
    assert b.counters["huffman_symbols"] == b.counters["rom_reads"] == 0
    one = GoldenEngine(cols.config).run(cols.dram_image(x[:1])[0])
    stream = sum(layer["placement"]["words"] for layer in cols.meta["layers"])
    # Image 0 reads the streams; every later image only the descriptors.
    assert b.counters["dram_read_words"] - one.counters["dram_read_words"] == \
        4 * (len(lowered.layers) * DESC_WORDS + vector_words(37, lanes))
    assert one.counters["dram_read_words"] == \
        JOB_WORDS + vector_words(37, lanes) + len(lowered.layers) * DESC_WORDS + stream


def test_slots_are_balanced_by_permuting_hidden_units():
    """The writer deals hidden units so each slot's kept weights balance (the last layer keeps its order)."""
    lowered, _ = sparse_lowered(11, 4, [40, 48, 24, 6])
    program = build_program(lowered, config_max_features=64, sparse_format="columns")
    orders = {i: layer.get("row_order") for i, layer in enumerate(program.meta["layers"])}
    assert orders[2] is None and orders[0] is not None
    before = stored_weights(lowered.layers[0].indices)
    order = np.asarray(orders[0])
    busiest = lambda w: max(int(w[s::4].sum()) for s in range(4))   # noqa: E731
    assert busiest(before[order]) < busiest(before)


def test_writer_refuses_what_the_unit_cannot_run():
    lowered, _ = sparse_lowered(5, 4, [12, 8, 5])
    with pytest.raises(ProgramError, match="one processing element"):
        build_program(lowered, config_max_features=64, sparse_format="columns", pes=2)
    with pytest.raises(ProgramError, match="sparse format"):
        build_program(lowered, config_max_features=64, sparse_format="csr")
    layer = copy.copy(lowered.layers[0])
    layer.mult = np.arange(layer.out_features) + 1
    bad = copy.copy(lowered)
    bad.layers = [layer] + lowered.layers[1:]
    with pytest.raises(ProgramError, match="one requantization"):
        build_program(bad, config_max_features=64, sparse_format="columns")
    wide, _ = sparse_lowered(6, 1, [260, 260])     # 67,600 kept weights in the one slot: past a 16-bit start
    wide.layers[0].indices = np.ones((260, 260), dtype=np.int64)
    with pytest.raises(ProgramError, match="16-bit start"):
        build_program(wide, config_max_features=512, sparse_format="columns")


# --- RTL ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lanes,seed", [(1, 0), (2, 1), (4, 2), (8, 3)])
def test_random_columns_programs_amaranth(lanes, seed):
    """Mixed VQ and column-wise layers, three images, random DRAM latency and stalls: outputs and every counter."""
    rng = np.random.default_rng(seed)
    program, image, out_addr, out_words = columns_case(900 + 10 * lanes + seed, lanes, n_images=3)
    golden, rtl = run_both(program, image, out_addr, out_words, "amaranth",
                           latency=int(rng.integers(3, 16)), stall=int(rng.choice([32, 128])), seed=seed + 3)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert golden.counters["macs"] > 0 and golden.counters["weight_sram_writes"] > 0


@pytest.mark.parametrize("backend", ["icarus", "verilator"])
def test_columns_program_verilog(backend):
    """Column-wise layers in the generated Verilog under Icarus and Verilator, with stalls."""
    program, image, out_addr, out_words = columns_case(941, 4, n_images=3)
    golden, rtl = run_both(program, image, out_addr, out_words, backend, latency=10, stall=64, seed=3)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert golden.counters["zero_skips"] + golden.counters["macs"] > 0


# --- defects -----------------------------------------------------------------------------------------------------

def _columns_layer(image, program):
    """(descriptor address, descriptor, stream body start, centroid words) of the program's first COLUMNS layer."""
    desc_addr = int(image[2])
    for i in range(len(program.meta["layers"])):
        at = desc_addr + i * DESC_WORDS
        d = Descriptor.decode(image[at:at + DESC_WORDS])
        if d.mode == LayerMode.COLUMNS:
            return at, d, d.stream_addr + 1, -(-d.row_words // 4)
    raise ValueError("no COLUMNS layer")


def _slot(image, d, body, centroid_words, lanes):
    """(header address, E_s, R, column table address) of the first slot with entries."""
    rows = local_rows(d.out_features, lanes)
    at = body + centroid_words
    for _ in range(lanes):
        n = int(image[at])
        if n:
            return at, n, rows, at + 1 + rows
        at += 1 + rows + d.in_features
    raise ValueError("no slot with entries")


def corrupt_columns(image, program, what):
    """The DRAM image with one defect in its first COLUMNS layer; ``what`` names it."""
    img = image.copy()
    lanes = program.config.lanes
    at, d, body, cw = _columns_layer(img, program)
    if what == "BAD_CODEBOOK":
        img[at + 3] &= ~FIELD16 & 0xFFFFFFFF
        return img, EngineError.BAD_CODEBOOK
    if what == "resident":
        img[at + 3] |= FLAG_RESIDENT << 16
        return img, EngineError.BAD_STREAM
    if what == "kept":
        img[at + COLUMNS_KEPT_WORD] += 1
        return img, EngineError.BAD_STREAM
    if what == "short":
        size = int(img[d.stream_addr])
        total = (size & FIELD16) * (size >> 16)
        img[d.stream_addr] = 1 | (total // 2) << 16
        return img, EngineError.BAD_STREAM
    header, n, rows, table = _slot(img, d, body, cw, lanes)
    entries = table + d.in_features
    if what == "too_many_entries":
        img[header] = 1 << 20
        return img, EngineError.BAD_STREAM
    if what == "column_span":
        img[table] = n | 1 << 16
        return img, EngineError.BAD_SPARSE
    if what == "local_row":
        if rows >= 1 << COLUMN_ROW_BITS:
            raise ValueError("no room")
        img[entries] = (int(img[entries]) & ~((1 << COLUMN_ROW_BITS) - 1)) | rows
        return img, EngineError.BAD_SPARSE
    if what == "index_zero":
        img[entries] = int(img[entries]) & ~(FIELD16 & ~((1 << COLUMN_ROW_BITS) - 1))
        return img, EngineError.BAD_INDEX
    raise KeyError(what)


DEFECTS = ("BAD_CODEBOOK", "resident", "kept", "short", "too_many_entries", "column_span", "local_row",
           "index_zero")


@pytest.mark.parametrize("what", DEFECTS)
def test_each_defect_stops_golden_and_rtl_alike(what):
    program, image, out_addr, out_words = columns_case(77, 4)
    bad, code = corrupt_columns(image, program, what)
    golden, rtl = run_both(program, bad, out_addr, out_words, "amaranth", latency=5, stall=48)
    assert isinstance(golden, EngineFault) and golden.code == code, golden
    assert rtl["done"], "engine hung on a bad stream"
    assert rtl["error"] == code


def test_a_layer_that_does_not_fit_the_unit():
    """An engine whose column table is one entry short: BAD_STREAM before the last layer's stream is read."""
    program, image, out_addr, out_words = columns_case(78, 2)
    meta = copy.deepcopy(program.meta)
    meta["engine"]["column_columns"] -= 1
    small = Program(meta, program.image)
    golden, rtl = run_both(small, image, out_addr, out_words, "amaranth", latency=5, stall=0)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_STREAM
    assert rtl["done"] and rtl["error"] == EngineError.BAD_STREAM


def test_fuzzed_columns_streams():
    """Random words of a COLUMNS stream replaced: the same outputs and counters, or the same error; no hang."""
    rng = np.random.default_rng(2026)
    outcomes = set()
    for trial in range(12):
        program, image, out_addr, out_words = columns_case(300 + trial % 3, 4)
        _, d, body, _ = _columns_layer(image, program)
        size = int(image[d.stream_addr])
        bad = image.copy()
        for _ in range(int(rng.integers(1, 4))):
            w = body + int(rng.integers(0, (size & FIELD16) * (size >> 16)))
            bad[w] = int(rng.integers(0, 1 << 32)) if rng.random() < 0.5 else int(bad[w]) ^ (1 << int(rng.integers(0, 32)))
        golden, rtl = run_both(program, bad, out_addr, out_words, "amaranth", latency=4, stall=32,
                               seed=int(rng.integers(1, 100)))
        outcomes.add(same_outcome(golden, rtl, program.meta["output_features"]))
    assert len(outcomes) >= 2, outcomes


# --- command line ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    (["--method", "kmeans", "--sparse-format", "columns"], ["--sparse-format", "deepcomp"]),
    (["--method", "deepcomp", "--sparse-format", "columns", "--pes", "2"], ["one processing element", "--pes 2"]),
])
def test_compress_refuses_sparse_format_where_it_cannot_apply(tmp_path, args, needles):
    """Before any training or data: one line, exit 1, nothing written."""
    res = vqe("compress", "--network", "lenet300", *args, "-o", tmp_path / "p.vqz", cwd=tmp_path)
    assert_user_error(res, *needles)
    assert not (tmp_path / "p.vqz").exists()
