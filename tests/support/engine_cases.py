"""Random programs and corrupted DRAM images for the engine tests."""
from __future__ import annotations

import numpy as np

from model.codecs.vectors import random_vectors, unpack_vectors
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineFault
from model.contract.layout import (COMPACT_ROW_HEADER_WORDS, DESC_WORDS, JOB_MAGIC, REL_BITS, ROW_HEADER_WORDS, LayerMode,
                                   huffman_index_bits, pe_stream_position)
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_lowered
from model.program.writer import build_program
from sim.simulate import hang_bound, simulate


def random_case(seed: int, lanes: int, n_images: int = 2, pvq_k_max: int = 0, huffman_k_max: int = 0,
                weight_sram: bool = False, pes: int = 1, sparse_format: str = "huffman"):
    """A random 1- to 3-layer program (shapes not multiples of ``lanes``) and its DRAM image.

    With ``weight_sram``, the engine has a weight SRAM that holds some of the
    layers' streams (a random capacity up to all of them, so layers that do
    not fit are skipped and later ones may still fit).  With ``pes``, the engine has
    that many processing elements (sparse layers written for them, dense layers laid out for them).

    With ``pvq_k_max``, layers are randomly VQ- or PVQ-coded; with
    ``huffman_k_max``, randomly VQ- or sparse Huffman-coded (at least one sparse
    layer), on an engine whose symbols hold up to ``huffman_k_max`` centroids.  With
    ``sparse_format="columns"`` the sparse layers are column-wise instead (the column unit).
    """
    rng = np.random.default_rng(seed)
    depth = int(rng.choice([2, 4, 16, 64, 256]))
    n_layers = int(rng.integers(1, 4))
    shapes = [int(rng.integers(1, 40)) for _ in range(n_layers + 1)]
    lowered = random_lowered(rng, lanes, shapes, depth, pvq_k_max=pvq_k_max, huffman_k_max=huffman_k_max)
    for _ in range(20):
        if (not pvq_k_max or any(getattr(l, "mode", "vq") == "pvq" for l in lowered.layers)) and \
                (not huffman_k_max or any(getattr(l, "mode", "vq") == "huffman" for l in lowered.layers)):
            break
        lowered = random_lowered(rng, lanes, shapes, depth, pvq_k_max=pvq_k_max, huffman_k_max=huffman_k_max)
    sparse = {"huffman_symbol_bits": REL_BITS + huffman_index_bits(huffman_k_max)} if huffman_k_max else {}
    sparse["sparse_format"] = sparse_format
    program = build_program(lowered, codebook_depth=depth, config_max_features=64, pvq_k_max=pvq_k_max,
                            pes=pes, **sparse)
    if weight_sram:
        streams = sum(l["placement"]["words"] for l in program.meta["layers"])
        program = build_program(lowered, codebook_depth=depth, config_max_features=64, pvq_k_max=pvq_k_max,
                                weight_sram_words=int(rng.integers(1, streams + 2)), pes=pes, **sparse)
    x = random_vectors(rng, n_images, shapes[0])
    image, out_addr, out_words = program.dram_image(x)
    return program, image, out_addr, out_words * n_images


def run_both(program, image, out_addr, out_words, backend, latency=10, stall=0, seed=1):
    """(golden result or fault, RTL result) for one image."""
    try:
        golden = GoldenEngine(program.config).run(image)
    except EngineFault as fault:
        golden = fault
    n_layers = len(program.meta["layers"])
    bound = hang_bound({"dram_read_words": len(image), "dram_write_words": out_words,
                        "rom_reads": 4 * len(image), "sram_writes": 4 * len(image)},
                       n_layers, 4, latency)
    rtl = simulate(program, image, backend, out_addr=out_addr, out_words=out_words, max_cycles=bound,
                   latency=latency, stall=stall, seed=seed, vcd=None)
    return golden, rtl


def assert_bit_exact(golden, rtl, out_features):
    assert rtl["done"], "engine hung"
    assert rtl["error"] == 0, f"engine reported error {rtl['error']}"
    n = len(golden.outputs)
    outs = unpack_vectors(np.asarray(rtl["outputs"], dtype=np.uint32).reshape(n, -1), out_features)
    np.testing.assert_array_equal(outs, golden.outputs)
    for name, value in golden.counters.items():
        assert rtl["counters"][name] == value, f"counter {name}: golden {value}, rtl {rtl['counters'][name]}"


def same_outcome(golden, rtl, out_features) -> str:
    """The RTL stopped (no hang) with the golden model's error, or gave its outputs and counters; the
    outcome's name (the error's, or ``"ok"``)."""
    assert rtl["done"], "engine hung on a corrupted program"
    if isinstance(golden, EngineFault):
        assert rtl["error"] == golden.code, f"golden {golden.code.name}, rtl {rtl['error']}"
        return golden.code.name
    assert_bit_exact(golden, rtl, out_features)
    return "ok"


def _set_field(img, d, cfg, rng, width: int, new) -> None:
    """Replace one random entry of a layer's row stream by ``new(old)``."""
    row = int(rng.integers(0, d.out_features))
    sv = int(rng.integers(0, -(-d.in_features // cfg.lanes)))
    bit = sv * width
    header = COMPACT_ROW_HEADER_WORDS if d.compact else ROW_HEADER_WORDS
    n = -(-(bit % 32 + width) // 32)
    # The row's words where the stream, laid out for the engine's PEs, holds them.
    w = [d.stream_addr + pe_stream_position(row, header + bit // 32 + i, d.out_features, d.row_words, cfg.pes)
         for i in range(n)]
    value = sum(int(img[w[i]]) << (32 * i) for i in range(n))
    mask = (1 << width) - 1
    old = (value >> (bit % 32)) & mask
    value = (value & ~(mask << (bit % 32))) | ((new(old) & mask) << (bit % 32))
    for i in range(n):
        img[w[i]] = (value >> (32 * i)) & 0xFFFFFFFF


def corrupt(image: np.ndarray, program, what: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``image`` with one defect the engine must report."""
    img = image.copy()
    desc_addr = int(img[2])
    layer = int(rng.integers(0, len(program.meta["layers"])))
    d_addr = desc_addr + layer * DESC_WORDS
    d = Descriptor.decode(img[d_addr:d_addr + DESC_WORDS])
    cfg = program.config
    if what == "BAD_JOB":
        img[0] = JOB_MAGIC ^ 1
    elif what == "BAD_SHAPE":
        d.out_features = [0, cfg.max_features + 1][rng.integers(0, 2)]
    elif what == "BAD_CHAIN":
        d.in_features = d.in_features % cfg.max_features + 1
    elif what == "BAD_CODEBOOK" and d.mode == LayerMode.PVQ:
        choice = rng.integers(0, 3)
        if choice == 0:
            d.codebook_base = 0                       # K = 0
        elif choice == 1:
            d.codebook_base = cfg.pvq_k_max + 1       # K above the engine's
        else:
            d.codebook_size = d.entry_bits + 1        # entry width wrong for K
    elif what == "BAD_CODEBOOK":
        d.codebook_size = [0, cfg.codebook_depth + 1, cfg.rom_entries - d.codebook_base + 1][rng.integers(0, 3)]
    elif what == "BAD_INDEX" and d.mode == LayerMode.PVQ:
        from model.codecs.pvq import pvq_count
        index_bits = d.entry_bits - 8
        limit = pvq_count(cfg.lanes, d.pvq_k)
        if limit >= 1 << index_bits:
            raise ValueError("no room for a bad PVQ index: V(N,K) is a power of two")
        _set_field(img, d, cfg, rng, d.entry_bits,
                   lambda old: (old & ~((1 << index_bits) - 1)) | int(rng.integers(limit, 1 << index_bits)))
    elif what == "BAD_STREAM":
        d.row_words += int(rng.choice([-1, 1, 5]))
    elif what == "BAD_MODE":
        d.mode = int(rng.integers(1, 16))
    elif what == "BAD_INDEX":
        # An index at or above the codebook size, somewhere in some row.
        d.codebook_size = max(1, d.codebook_size)
        if d.codebook_size >= cfg.codebook_depth:
            d.codebook_size = cfg.codebook_depth - 1
            if d.codebook_size == 0:
                raise ValueError("no room for a bad index with a depth-1 codebook")
        _set_field(img, d, cfg, rng, cfg.index_bits, lambda old: cfg.codebook_depth - 1)
    else:
        raise ValueError(what)
    if what != "BAD_JOB":
        img[d_addr:d_addr + DESC_WORDS] = d.encode()
    return img


def edit_descriptor(image: np.ndarray, layer: int, **fields) -> np.ndarray:
    """A copy of ``image`` with layer ``layer``'s descriptor fields (:class:`Descriptor` attributes) changed."""
    image = image.copy()
    at = int(image[2]) + layer * DESC_WORDS
    desc = Descriptor.decode(image[at:at + DESC_WORDS])
    for k, v in fields.items():
        setattr(desc, k, v)
    image[at:at + DESC_WORDS] = desc.encode()
    return image


def golden_and_rtl(program, image, out_addr, out_words, backend, rng, seed, stall=None):
    """The golden model's result (or its ``EngineFault``) and the RTL's run of ``image``, with a random DRAM
    latency (3 to 11 cycles) and, unless ``stall`` is given, random stalls (none, or one in 64)."""
    try:
        golden = GoldenEngine(program.config).run(image)
        bound = 20 * sum(golden.counters.values()) + 10_000
    except EngineFault as fault:
        golden, bound = fault, 100_000
    rtl = simulate(program, image, backend, out_addr=out_addr, out_words=out_words, max_cycles=bound,
                   latency=int(rng.integers(3, 12)), stall=int(rng.choice([0, 64])) if stall is None else stall,
                   seed=seed, vcd=None)
    return golden, rtl
