"""Sparse Huffman-coded layers (LayerMode.HUFFMAN): encoder, accounting, golden model, engine RTL."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from model.codecs.layers.base import layer_act
from model.codecs.sparse_rows import SparseRowError, decode_row, encode_layer, joint_symbols, layer_bits, row_symbols
from model.codecs.vectors import random_vectors
from model.contract.errors import EngineError, EngineFault
from model.contract.fixedpoint import requantize, wrap_acc
from model.contract.layout import DESC_WORDS, WORD_BITS, LayerMode
from model.golden.engine import GoldenEngine
from model.program.file import Program
from model.program.synthetic import random_lowered
from model.program.writer import build_program

from engine_cases import assert_bit_exact, random_case, run_both, same_outcome
from huffman_cases import reference_steps
from sparse_cases import SPARSE_DEFECTS, corrupt_sparse, fuzz_bases, fuzz_image

#: Centroids the random sparse programs' engines take (5-bit indices, 9-bit symbols).
K_MAX = 32


# --- encoder and accounting ------------------------------------------------------------------------

def test_row_symbols_fillers_and_positions():
    row = np.zeros(50, dtype=np.int64)
    row[[0, 3, 20, 49]] = [2, 1, 3, 1]
    runs, idx = row_symbols(row, rel_bits=4)
    # Gaps of 16 and 28 zeros each need one filler (15, 0), which covers 16 positions.
    assert runs.tolist() == [0, 2, 15, 0, 15, 12]
    assert idx.tolist() == [2, 1, 0, 3, 0, 1]
    positions, back = decode_row(joint_symbols(runs, idx, 2), idx_bits=2, k=4, in_features=50)
    assert positions.tolist() == [0, 3, 19, 20, 36, 49]
    assert back.tolist() == idx.tolist()
    # A row with no weight still has one symbol: the zero at position 0.
    runs, idx = row_symbols(np.zeros(7, dtype=np.int64))
    assert runs.tolist() == [0] and idx.tolist() == [0]


def test_decode_row_errors():
    with pytest.raises(SparseRowError) as e:
        decode_row([], 2, 4, 10)
    assert e.value.kind == "empty"
    with pytest.raises(SparseRowError) as e:      # 9 << 2: run 9 lands on position 9, then 19
        decode_row([9 << 2 | 1, 9 << 2 | 1], 2, 4, 10)
    assert (e.value.kind, e.value.symbol) == ("position", 1)
    with pytest.raises(SparseRowError) as e:      # the position is checked before the index
        decode_row([1 << 2 | 3, 1 << 2 | 3], 2, 3, 3)
    assert (e.value.kind, e.value.symbol) == ("index", 0)


@pytest.mark.parametrize("seed", range(20))
def test_encode_layer_round_trip_and_bit_count(seed):
    rng = np.random.default_rng(seed)
    n_out, n_in, k = int(rng.integers(1, 30)), int(rng.integers(1, 200)), int(rng.integers(1, 33))
    indices = np.where(rng.random((n_out, n_in)) < rng.choice([0.01, 0.1, 0.5]),
                       rng.integers(0, k, size=(n_out, n_in)), 0)
    sparse = encode_layer(indices, k, symbol_bits=9)
    from model.codecs.huffman import decode
    for r in range(n_out):
        syms = decode(sparse.row_words[r], sparse.table, len(sparse.symbols[r]))
        positions, idx = decode_row(syms, sparse.idx_bits, k, n_in)
        dense = np.zeros(n_in, dtype=np.int64)
        dense[positions] = idx
        np.testing.assert_array_equal(dense, indices[r])
    stream = sparse.stream(np.zeros(n_out), np.zeros(n_out), np.zeros(n_out))
    bits = layer_bits(sparse, n_in, n_out, k, lanes=4)
    centroid_bits = -(-k // 4) * 4 * 8
    assert bits["total_bits"] == (len(stream) + DESC_WORDS) * WORD_BITS + centroid_bits
    assert bits["kept"] == np.count_nonzero(indices)
    assert bits["symbols"] == sum(len(s) for s in sparse.symbols)
    assert bits["rel_bits"] == 4 * bits["symbols"]
    assert bits["average_length"] >= bits["entropy"] - 1e-9


# --- golden model ---------------------------------------------------------------------------------

def dense_reference(lowered, x):
    """The network's integer arithmetic straight from the lowered layers (no DRAM image)."""
    h = x.astype(np.int64)
    for l in lowered.layers:
        if getattr(l, "mode", "vq") == "huffman":
            w = np.asarray(l.codebook)[:, 0][l.indices]
        else:
            w = np.asarray(l.codebook)[l.indices].reshape(l.out_features, -1)[:, :l.in_features]
        acc = wrap_acc(np.asarray(l.bias)[None] + h @ w.T)
        h = requantize(acc, np.asarray(l.mult)[None], np.asarray(l.shift)[None], l.relu, layer_act(l)[None],
                       getattr(l, "floor", False)).astype(np.int64)
    return h


@pytest.mark.parametrize("seed", range(25))
def test_golden_runs_sparse_programs(seed):
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([1, 2, 4, 8]))
    shapes = [int(rng.integers(1, 80)) for _ in range(int(rng.integers(2, 5)))]
    lowered = random_lowered(rng, lanes, shapes, 16, huffman_k_max=K_MAX)
    program = Program.from_bytes(build_program(lowered, codebook_depth=16, config_max_features=128).to_bytes())
    x = random_vectors(rng, 3, shapes[0])
    image, _, _ = program.dram_image(x)
    result = GoldenEngine(program.config).run(image)
    np.testing.assert_array_equal(result.outputs, dense_reference(lowered, x))
    sparse = [l for l in lowered.layers if getattr(l, "mode", "vq") == "huffman"]
    kept = sum(int(np.count_nonzero(l.indices)) for l in sparse)
    stats = program.meta["compression"]
    c = result.counters
    if sparse:
        assert c["huffman_symbols"] == 3 * stats["sparse"]["symbols"]
        # The decoder takes two codes a step; a row with an odd count takes its last alone.
        steps = sum(reference_steps(len(row_symbols(row)[0]), False, program.config.huffman_max_len)
                    for layer in sparse for row in np.asarray(layer.indices))
        assert c["huffman_busy_cycles"] == 3 * steps
        assert c["huffman_bits"] == 3 * stats["sparse"]["huffman_bits"]
        assert stats["sparse"]["kept"] == kept
    # Every stored bit: the image (descriptors, size words, tables, rows, padding) and the ROM.
    assert stats["bytes"] == len(program.image) * 4 + len(program.meta["rom"]) * lanes


def test_build_program_rejects_bad_sparse_layers():
    from model.program.file import ProgramError
    rng = np.random.default_rng(0)
    lowered = random_lowered(rng, 4, [10, 6], 16, huffman_k_max=8)
    layer = lowered.layers[0]
    if getattr(layer, "mode", "vq") != "huffman":
        lowered = random_lowered(np.random.default_rng(1), 4, [10, 6], 16, huffman_k_max=8)
        layer = lowered.layers[0]
    assert layer.mode == "huffman"
    layer.codebook = np.array([[5], [7]])
    with pytest.raises(ProgramError, match="exact zero"):
        build_program(lowered)
    layer.codebook = np.array([[0], [7]])
    layer.indices = np.full((6, 10), 2)
    with pytest.raises(ProgramError, match="out of range"):
        build_program(lowered)
    layer.indices = np.ones((6, 10), dtype=np.int64)
    build_program(lowered)
    layer.mult = np.arange(6) + 100        # the requantization is stored once per sparse layer
    with pytest.raises(ProgramError, match="share one requantization"):
        build_program(lowered)
    layer.mult = np.full(6, 100)
    layer.bias = np.full(6, 1 << 21)       # above the row header's 22-bit signed bias
    with pytest.raises(ProgramError, match="bias does not fit"):
        build_program(lowered)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32 - 1))
def test_golden_fuzzed_sparse_streams(seed):
    """Thousands of corrupted streams: the golden model finishes or names an engine error, nothing else."""
    rng = np.random.default_rng(seed)
    cases = fuzz_bases(K_MAX)
    case = cases[int(rng.integers(0, len(cases)))]
    img = fuzz_image(rng, case)
    try:
        result = GoldenEngine(case[0].config).run(img)
    except EngineFault as fault:
        assert fault.code != EngineError.NONE and fault.code != EngineError.HUFF_NO_TABLE
        return
    assert result.outputs.shape == (1, case[0].meta["output_features"])


@pytest.mark.parametrize("what", SPARSE_DEFECTS)
def test_golden_names_each_defect(what):
    rng = np.random.default_rng(sum(map(ord, what)))
    for case in fuzz_bases(K_MAX) * 4:
        program, image, _, _ = case
        try:
            bad = corrupt_sparse(image, program, what, rng)
        except ValueError:
            continue
        with pytest.raises(EngineFault) as e:
            GoldenEngine(program.config).run(bad)
        assert e.value.code == EngineError[what], e.value
        return
    pytest.fail("no base case had room for the defect")


# --- engine RTL -----------------------------------------------------------------------------------

@pytest.mark.parametrize("lanes,seed", [(1, 0), (2, 1), (4, 2), (8, 3)])
def test_random_sparse_programs_amaranth(lanes, seed):
    """Mixed VQ and sparse layers, random DRAM latency and stalls: outputs and every counter match."""
    rng = np.random.default_rng(seed)
    program, image, out_addr, out_words = random_case(700 + 10 * lanes + seed, lanes, huffman_k_max=K_MAX)
    golden, rtl = run_both(program, image, out_addr, out_words, "amaranth",
                           latency=int(rng.integers(3, 16)), stall=int(rng.choice([32, 128])), seed=seed + 3)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    c = golden.counters
    assert c["huffman_symbols"] > 0
    # Two codes a step, at most (and the golden model's exact count, checked above).
    assert rtl["counters"]["huffman_busy_cycles"] < rtl["counters"]["huffman_symbols"] \
        <= 2 * rtl["counters"]["huffman_busy_cycles"]


@pytest.mark.parametrize("backend", ["icarus", "verilator"])
def test_random_sparse_program_verilog(backend):
    """Sparse layers in the generated Verilog under Icarus and Verilator, with stalls."""
    program, image, out_addr, out_words = random_case(741, 4, huffman_k_max=K_MAX)
    golden, rtl = run_both(program, image, out_addr, out_words, backend, latency=10, stall=64, seed=3)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert golden.counters["huffman_symbols"] > 0


def zero_heavy_case(seed: int, lanes: int):
    """A random program with sparse layers, its inputs about half zeros (as after a ReLU)."""
    rng = np.random.default_rng(seed)
    program, *_ = random_case(seed, lanes, huffman_k_max=K_MAX)
    x = random_vectors(rng, 2, program.meta["input_features"])
    x[rng.random(x.shape) < 0.5] = 0
    image, out_addr, out_words = program.dram_image(x)
    return program, image, out_addr, out_words * 2, x


@pytest.mark.parametrize("seed", [770, 771, 776, 777])
def test_golden_zero_skips_count_zero_activations(seed):
    """``zero_skips + macs`` is the sparse layers' non-zero weights per image, and the first layer's
    skips are exactly its non-zero weights in the zero inputs' columns."""
    program, image, _, _, x = zero_heavy_case(seed, 4)
    golden = GoldenEngine(program.config)
    result = golden.run(image)
    _, layers = golden.decode(image)
    for layer, c in zip(layers, result.layer_counters):
        if layer.desc.mode != LayerMode.HUFFMAN:
            assert c["zero_skips"] == 0
            continue
        assert c["macs"] + c["zero_skips"] == 2 * layer.events["kept"]
    first = layers[0]
    assert first.desc.mode == LayerMode.HUFFMAN, "pick seeds whose first layer is sparse"
    # One weight at a time: a stored centroid other than centroid 0 is never zero in these programs,
    # so the non-zero weights are the stored ones.
    d = first.desc
    centroids = np.asarray(program.config.rom).reshape(-1)[d.codebook_base * 4:d.codebook_base * 4 + d.codebook_size]
    assert np.all(centroids[1:] != 0)
    w = first.weights()[:, :d.in_features]
    brute = sum(int(w[r, p] != 0 and img[p] == 0) for img in x for r in range(w.shape[0]) for p in range(w.shape[1]))
    assert result.layer_counters[0]["zero_skips"] == brute > 0


@pytest.mark.parametrize("backend,lanes,seed", [("amaranth", 4, 0), ("amaranth", 1, 1), ("amaranth", 8, 2),
                                                ("verilator", 4, 3), ("icarus", 2, 4)])
def test_rtl_zero_skips_match_golden(backend, lanes, seed):
    """Inputs half zeros: the RTL skips exactly the golden model's multiplies (``zero_skips``, ``macs``),
    with random DRAM latency and stalls."""
    rng = np.random.default_rng(seed)
    for attempt in range(10):
        program, image, out_addr, out_words, x = zero_heavy_case(780 + 10 * seed + attempt, lanes)
        golden = GoldenEngine(program.config).run(image)
        if golden.counters["zero_skips"]:
            break
    golden, rtl = run_both(program, image, out_addr, out_words, backend,
                           latency=int(rng.integers(3, 16)), stall=int(rng.choice([32, 128])), seed=seed + 5)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert rtl["counters"]["zero_skips"] == golden.counters["zero_skips"] > 0


@pytest.mark.parametrize("what", SPARSE_DEFECTS)
def test_rtl_stops_on_each_defect(what):
    """Each new error class: the RTL reports the golden model's code and stops (no hang)."""
    rng = np.random.default_rng(sum(map(ord, what)) + 1)
    for case in fuzz_bases(K_MAX) * 4:
        program, image, out_addr, out_words = case
        try:
            bad = corrupt_sparse(image, program, what, rng)
        except ValueError:
            continue
        golden, rtl = run_both(program, bad, out_addr, out_words, "amaranth", latency=5, stall=48)
        assert isinstance(golden, EngineFault) and golden.code == EngineError[what]
        assert rtl["done"], "engine hung on a bad stream"
        assert rtl["error"] == golden.code
        return
    pytest.fail("no base case had room for the defect")


def test_rtl_fuzzed_sparse_streams():
    """Randomly corrupted streams: the same outputs and counters, or the same error code, never a hang."""
    rng = np.random.default_rng(2024)
    cases = fuzz_bases(K_MAX)
    outcomes = set()
    for _ in range(16):
        case = cases[int(rng.integers(0, len(cases)))]
        program, _, out_addr, out_words = case
        img = fuzz_image(rng, case)
        golden, rtl = run_both(program, img, out_addr, out_words, "amaranth", latency=4, stall=32,
                               seed=int(rng.integers(1, 100)))
        outcomes.add(same_outcome(golden, rtl, program.meta["output_features"]))
    assert len(outcomes) >= 3, outcomes


def test_sparse_and_pvq_layers_in_one_engine():
    """An engine with both a PVQ unit and a Huffman decoder runs VQ, PVQ and sparse layers in one job."""
    rng = np.random.default_rng(52)
    for _ in range(100):
        lowered = random_lowered(rng, 8, [17, 30, 9, 6], 16, pvq_k_max=5, huffman_k_max=8)
        if {"pvq", "huffman"} <= {getattr(l, "mode", "vq") for l in lowered.layers}:
            break
    program = build_program(lowered, codebook_depth=16, config_max_features=64, pvq_k_max=5)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, 2, 17))
    golden, rtl = run_both(program, image, out_addr, 2 * out_words, "amaranth", latency=6, stall=64, seed=2)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert golden.counters["adds"] > 0 and golden.counters["huffman_symbols"] > 0


def test_sparse_engine_verilog_lints():
    """The engine with a Huffman decoder: Icarus compiles it, Verilator finds no error and only the
    warning kinds Amaranth's output gives for every engine (widths, FSM cases without a default)."""
    from sim.backends.top import engine_verilog

    from verilog_lint import lint_verilog
    program, *_ = random_case(741, 4, huffman_k_max=K_MAX)
    assert program.config.huffman_max_len
    result = lint_verilog(engine_verilog(program.config, name="vqe_engine"), top="vqe_engine")
    assert "error" not in result.iverilog.lower()
    kinds = {w.split(":")[0] for w in result.verilator_warnings}
    assert kinds <= {"%Warning-WIDTHEXPAND", "%Warning-WIDTHTRUNC", "%Warning-CASEINCOMPLETE"}, kinds
