"""Several processing elements (``EngineConfig.pes``): the RTL against the golden model, the stream layout, refusals."""
import numpy as np
import pytest

from model.codecs.layers.base import pe_rows, pe_stream
from model.codecs.vectors import random_vectors
from model.contract.config import EngineConfig
from model.contract.errors import EngineError, EngineFault, ProgramError
from model.contract.ints import ceil_div
from model.contract.layout import PES, pe_stream_order, pe_stream_position
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_lowered, random_windowed_lowered
from model.program.writer import build_program, lay_out_for_pes

from engine_cases import assert_bit_exact, corrupt, golden_and_rtl, random_case, run_both, same_outcome


def _draw(seed: int):
    rng = np.random.default_rng(seed)
    return rng, int(rng.choice([2, 4, 8])), int(rng.choice([1, 2, 4, 8, 16]))


@pytest.mark.parametrize("seed", range(6))
def test_random_programs_on_pes_amaranth(seed):
    """Random P, lanes, shapes (rows not multiples of P, fewer rows than PEs), weight SRAM, DRAM latency and stalls."""
    rng, pes, lanes = _draw(seed)
    program, image, out_addr, out_words = random_case(3000 + seed, lanes, n_images=int(rng.integers(1, 4)),
                                                      weight_sram=bool(rng.integers(0, 2)), pes=pes)
    assert program.config.pes == pes
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, "amaranth", rng, seed,
                                 stall=int(rng.choice([0, 16, 64])))
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("seed", range(3))
def test_random_windowed_programs_on_pes_amaranth(seed):
    """Convolutions on P PEs (output channels interleaved, window taps broadcast), pooling, FC, some resident."""
    rng, pes, _ = _draw(40 + seed)
    lanes = int(rng.choice([1, 2, 4, 8]))
    lowered, n_in = random_windowed_lowered(rng, lanes, 16)
    program = build_program(lowered, codebook_depth=16, config_max_features=1024,
                            weight_sram_words=int(rng.integers(0, 400)), pes=pes)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, 2, n_in))
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words * 2, "amaranth", rng, seed)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert "conv" in [l["kind"] for l in program.meta["layers"]]


@pytest.mark.parametrize("seed", range(2))
def test_rvq_pq_e8p_on_pes_amaranth(seed):
    """The other index-path modes on P PEs: each PE its own staged ROM ports, block offset or lattice table."""
    rng, pes, _ = _draw(80 + seed)
    lanes = 8
    shapes = [int(rng.integers(1, 40)) for _ in range(int(rng.integers(2, 5)))]
    lowered = random_lowered(rng, lanes, shapes, 16, rvq_stages_max=3, pq=True, lattice=True)
    program = build_program(lowered, codebook_depth=16, config_max_features=64, pes=pes)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, 2, shapes[0]))
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words * 2, "amaranth", rng, seed)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("backend", ["icarus", "verilator"])
def test_random_program_on_pes_verilog(backend):
    """The generated Verilog (a ROM copy per PE, each loaded at run time) under a compiled simulator."""
    rng = np.random.default_rng(7)
    program, image, out_addr, out_words = random_case(3107, 4, n_images=3, weight_sram=True, pes=4)
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, backend, rng, 7, stall=64)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("what", ["BAD_INDEX", "BAD_STREAM", "BAD_CODEBOOK"])
def test_bad_images_on_pes_stop_with_the_golden_models_error(what):
    rng = np.random.default_rng(sum(map(ord, what)))
    for _ in range(40):
        program, image, out_addr, out_words = random_case(int(rng.integers(1 << 30)), 4, n_images=1, pes=4)
        if what == "BAD_INDEX" and program.config.codebook_depth < 4:
            continue
        try:
            bad = corrupt(image, program, what, rng)
        except ValueError:
            continue
        golden, rtl = run_both(program, bad, out_addr, out_words, "amaranth", latency=5, stall=32)
        assert isinstance(golden, EngineFault) and golden.code == EngineError[what]
        assert rtl["done"], "engine hung on a bad image"
        assert rtl["error"] == golden.code
        return
    pytest.fail("no suitable random case")


@pytest.mark.parametrize("pes", PES[1:])
def test_pes_broadcast_activations_and_change_nothing_else(pes):
    """The same network on 1 and P PEs: the same outputs and counters, but one activation read per row group."""
    rng = np.random.default_rng(pes)
    shapes = [37, 13, 3, 10]   # 3 rows: fewer than 4 or 8 PEs
    lowered = random_lowered(rng, 4, shapes, 16)
    x = random_vectors(rng, 3, shapes[0])
    one, many = (build_program(lowered, codebook_depth=16, config_max_features=64, pes=p) for p in (1, pes))
    g1, gp = (GoldenEngine(p.config).run(p.dram_image(x)[0]) for p in (one, many))
    np.testing.assert_array_equal(g1.outputs, gp.outputs)
    for i, (c1, cp) in enumerate(zip(g1.layer_counters, gp.layer_counters)):
        assert {k: v for k, v in c1.items() if k != "sram_reads"} == {k: v for k, v in cp.items() if k != "sram_reads"}
        steps = ceil_div(shapes[i], 4)
        assert c1["sram_reads"] == 3 * shapes[i + 1] * steps
        assert cp["sram_reads"] == 3 * ceil_div(shapes[i + 1], pes) * steps
    assert len(one.image) == len(many.image) and many.meta["engine"]["pes"] == pes and "pes" not in one.meta["engine"]


@pytest.mark.parametrize("rows, row_words, pes", [(1, 3, 4), (5, 2, 2), (13, 4, 4), (9, 51, 8), (6, 3, 1)])
def test_pe_stream_layout(rows, row_words, pes):
    """A permutation of the rows' words: row groups of P, header words first, then entries word by word."""
    order = pe_stream_order(rows, row_words, pes)
    assert sorted(order) == list(range(rows * row_words))
    words = np.arange(rows * row_words, dtype=np.uint32).reshape(rows, row_words)
    stream = pe_stream(words, pes)
    np.testing.assert_array_equal(pe_rows(stream, rows, row_words, pes), words)
    if pes == 1:
        np.testing.assert_array_equal(stream, words.reshape(-1))
    # Within a full group the words go to PEs 0, 1, .. P - 1 in turn, word w of each before word w + 1.
    full = min(rows, pes)
    assert [int(v) for v in stream[:2 * full]] == [r * row_words + w for w in range(2 if row_words > 1 else 1)
                                                   for r in range(full)][:2 * full]
    assert all(stream[pe_stream_position(r, w, rows, row_words, pes)] == words[r, w]
               for r in range(rows) for w in range(row_words))


def test_pes_refused_where_they_cannot_run():
    with pytest.raises(ValueError, match="pes must be one of 1, 2, 4, 8, got 3"):
        EngineConfig(rom=((0, 0, 0, 0),), pes=3)
    with pytest.raises(ValueError, match="one processing element only"):
        EngineConfig(rom=((0, 0, 0, 0),), pvq_k_max=3, pes=2)
    program, *_ = random_case(11, 4, huffman_k_max=4)
    with pytest.raises(ProgramError, match=r"layer \d+ is sparse \(Huffman-coded\), written for 1 processing "
                                           r"element: its stream depends on P; compress it again with --pes 4"):
        lay_out_for_pes(program, 4)
    program, *_ = random_case(12, 4, pvq_k_max=5)
    with pytest.raises(ProgramError, match="PVQ"):
        lay_out_for_pes(program, 2)


def test_one_pe_engine_has_no_pe_blocks():
    """P = 1 elaborates no distributor, merger or PE copies (its Verilog is the engine's as before PEs)."""
    from sim.backends.top import engine_verilog
    program, *_ = random_case(13, 4)
    text = engine_verilog(program.config)
    assert "distributor" not in text and "merger" not in text and "_pe1" not in text
    text4 = engine_verilog(lay_out_for_pes(program, 4).config)
    assert "distributor" in text4 and "rom_pe3" in text4


# --- sparse (Huffman-coded) layers on P PEs --------------------------------------------------------

#: Centroids the random sparse programs' engines take (as tests/integration/test_sparse.py).
SPARSE_K_MAX = 32


@pytest.mark.parametrize("seed", range(6))
def test_random_sparse_programs_on_pes_amaranth(seed):
    """Sparse and VQ layers on P PEs, each PE decoding its own sub-stream, with random DRAM latency, stalls,
    weight SRAM (resident sub-streams come from the banks, size word included) and inputs half zeros."""
    rng, pes, lanes = _draw(200 + seed)
    program, *_ = random_case(4000 + seed, lanes, n_images=int(rng.integers(1, 4)), huffman_k_max=SPARSE_K_MAX,
                              weight_sram=bool(rng.integers(0, 2)), pes=pes)
    assert program.config.pes == pes and program.config.huffman_max_len
    n = int(rng.integers(1, 4))
    x = random_vectors(rng, n, program.meta["input_features"])
    x[rng.random(x.shape) < 0.5] = 0
    image, out_addr, out_words = program.dram_image(x)
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words * n, "amaranth", rng, seed,
                                 stall=int(rng.choice([0, 16, 64])))
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert golden.counters["huffman_symbols"] > 0


def _lopsided(pes: int, lanes: int, rng):
    """A sparse layer whose PE 0 rows are all empty and the others' full: the PEs drift far apart."""
    lowered = random_lowered(rng, lanes, [48, 30, 6], 16, huffman_k_max=SPARSE_K_MAX)
    for _ in range(50):
        if getattr(lowered.layers[0], "mode", "vq") == "huffman":
            break
        lowered = random_lowered(rng, lanes, [48, 30, 6], 16, huffman_k_max=SPARSE_K_MAX)
    layer = lowered.layers[0]
    k = len(layer.codebook)
    idx = rng.integers(1, k, size=layer.indices.shape)
    idx[::pes] = 0
    layer.indices = idx
    return lowered


@pytest.mark.parametrize("pes", PES[1:])
def test_sparse_pes_far_apart_do_not_deadlock(pes):
    """PE 0's rows empty, every other PE's rows full: PE 0 runs many rows ahead of the rest (its results
    wait in the merger), and nothing waits on anything that waits on it; bit-exact."""
    rng = np.random.default_rng(90 + pes)
    lowered = _lopsided(pes, 4, rng)
    program = build_program(lowered, codebook_depth=16, config_max_features=64, pes=pes,
                            huffman_symbol_bits=9)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, 2, 48))
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words * 2, "amaranth", rng, pes, stall=16)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("pes", [1, 4])
def test_sparse_pes_change_only_the_stream_words(pes):
    """The same sparse network on 1 and P PEs: the same outputs and every counter but the stream's words."""
    rng = np.random.default_rng(300 + pes)
    lowered = _lopsided(2, 4, rng)
    x = random_vectors(rng, 2, 48)
    one, many = (build_program(lowered, codebook_depth=16, config_max_features=64, pes=p, huffman_symbol_bits=9)
                 for p in (1, pes))
    g1, gp = (GoldenEngine(p.config).run(p.dram_image(x)[0]) for p in (one, many))
    np.testing.assert_array_equal(g1.outputs, gp.outputs)
    words = {"dram_read_words", "weight_sram_reads", "weight_sram_writes"}
    assert {k: v for k, v in g1.counters.items() if k not in words} == \
        {k: v for k, v in gp.counters.items() if k not in words}
    assert (g1.counters["dram_read_words"] < gp.counters["dram_read_words"]) == (pes > 1)


@pytest.mark.parametrize("seed", range(2))
def test_sparse_pes_one_bad_substream_same_error_or_result(seed):
    """Random bits flipped in one PE's sub-stream (its table, headers or codes): the RTL reports the golden
    model's error, or gives its outputs and counters; never a hang."""
    from sparse_cases import sparse_layers
    rng = np.random.default_rng(500 + seed)
    outcomes = set()
    for attempt in range(8):
        rng_case, pes, _ = _draw(600 + 13 * seed + attempt)
        program, image, out_addr, out_words = random_case(5000 + 13 * seed + attempt, 4, n_images=1,
                                                          huffman_k_max=SPARSE_K_MAX, pes=pes)
        from model.contract.descriptor import Descriptor
        from model.contract.layout import DESC_WORDS
        layer = int(rng.choice(sparse_layers(image)))
        at = int(image[2]) + layer * DESC_WORDS
        d = Descriptor.decode(image[at:at + DESC_WORDS])
        size = int(image[d.stream_addr])
        total = (size & 0xFFFF) * (size >> 16)
        pe = int(rng.integers(0, pes))
        body = [s for s in range(total) if s % pes == pe]
        bad = image.copy()
        for s in rng.choice(body, size=min(2, len(body)), replace=False):
            bad[d.stream_addr + 1 + int(s)] ^= np.uint32(1 << int(rng.integers(0, 32)))
        golden, rtl = golden_and_rtl(program, bad, out_addr, out_words, "amaranth", rng, seed, stall=16)
        outcomes.add(same_outcome(golden, rtl, program.meta["output_features"]))
    assert len(outcomes) >= 2, outcomes


def test_sparse_program_on_pes_verilator():
    """Sparse sub-streams on 4 PEs in the generated Verilog, resident from image 1 on, with stalls."""
    rng = np.random.default_rng(17)
    program, image, out_addr, out_words = random_case(4107, 4, n_images=3, huffman_k_max=SPARSE_K_MAX,
                                                      weight_sram=True, pes=4)
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, "verilator", rng, 17, stall=64)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert golden.counters["huffman_symbols"] > 0
