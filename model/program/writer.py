"""Lay a lowered network out as a program: ROM image, descriptors and row streams.

Each layer is written by the codec of its mode (:mod:`model.codecs.layers`);
this module only strings them together and counts the bytes.
"""
from __future__ import annotations

import copy

import numpy as np

from model.codecs.layers.base import WriteContext
from model.codecs.layers.huffman import symbol_bits_for
from model.codecs.layers.registry import codec_named
from model.contract.descriptor import Descriptor
from model.contract.errors import ProgramError
from model.contract.layout import DESC_WORDS, HUFFMAN_DEFAULT_MAX_LEN, JOB_MAGIC, JOB_WORDS, WORD_BYTES, LayerMode
from model.program.file import Program, rom_id


def layer_mode(lowered, layer) -> str:
    """``"vq"``, ``"pvq"`` or ``"huffman"``: a layer's own ``mode``, else every layer of a
    ``method="deepcomp"`` network is a sparse Huffman-coded layer."""
    return getattr(layer, "mode", "huffman" if lowered.method == "deepcomp" else "vq")


def build_program(lowered, config_max_features: int = 1024, codebook_depth: int = 256,
                  info: dict | None = None, shared_rom=None, pvq_k_max: int = 0,
                  huffman_max_len: int = HUFFMAN_DEFAULT_MAX_LEN, huffman_symbol_bits: int | None = None,
                  weight_sram_words: int = 0) -> Program:
    """Lay a :class:`model.compress.lowering.LoweredNetwork` out as a program.

    Each layer's integer codebook goes into the ROM image (layers one after the
    other); its rows become row streams of bias, requantization word and packed
    indices.  With ``shared_rom`` (a universal codebook, int8 (entries, lanes)),
    the ROM is that codebook, every layer uses it from entry 0, and it is not
    counted in the network's bytes: all networks share it.

    Sparse layers (``method="deepcomp"``, or a layer ``mode`` of ``"huffman"``:
    scalar centroids ``(k, 1)`` with centroid 0 the zero, a dense index matrix
    ``(out_features, in_features)`` with 0 at pruned positions) are coded by
    :mod:`model.codecs.sparse_rows`; the engine then gets a Huffman decoder with codes
    of at most ``huffman_max_len`` bits over ``huffman_symbol_bits``-bit
    symbols (default: the widest ``REL_BITS + idx_bits`` of the layers).

    With a weight SRAM of ``weight_sram_words`` words, layers are placed in
    it first fit, in layer order: each layer whose whole stream fits after
    those already placed is resident (read from DRAM once per job), the
    others stream from DRAM for every image (:func:`place_streams`).
    """
    lanes = lowered.lanes
    try:
        codecs = [codec_named(layer_mode(lowered, l)) for l in lowered.layers]
    except ValueError as e:
        raise ProgramError(str(e)) from None
    huffman = any(c.mode == LayerMode.HUFFMAN for c in codecs)
    if huffman and shared_rom is not None:
        raise ProgramError("sparse (deepcomp) layers keep their centroids in the program's own ROM")
    if huffman and huffman_symbol_bits is None:
        huffman_symbol_bits = symbol_bits_for([l for l, c in zip(lowered.layers, codecs) if c.mode == LayerMode.HUFFMAN])
    if not huffman:
        huffman_max_len, huffman_symbol_bits = 0, 0
    ctx = WriteContext(lanes=lanes, codebook_depth=codebook_depth, pvq_k_max=pvq_k_max,
                       huffman_max_len=huffman_max_len, huffman_symbol_bits=huffman_symbol_bits or 0,
                       rom=[] if shared_rom is None else np.asarray(shared_rom, dtype=np.int64).tolist(),
                       shared_rom=shared_rom is not None,
                       stream_addr=JOB_WORDS + DESC_WORDS * len(lowered.layers))
    descs: list[Descriptor] = []
    streams, layer_meta = [], []
    for i, (layer, codec) in enumerate(zip(lowered.layers, codecs)):
        written = codec.write(i, layer, ctx)
        descs.append(written.descriptor)
        streams.append(np.asarray(written.stream, dtype=np.uint32))
        ctx.stream_addr += written.stream.size
        layer_meta.append({"kind": "fc", "in_features": layer.in_features, "out_features": layer.out_features,
                           "relu": bool(layer.relu), "mode": codec.name, "codebook_size": codec.codebook_size(layer),
                           **written.meta})
    for meta, stream in zip(layer_meta, streams):
        meta["placement"] = {"resident": False, "wsram_addr": 0, "words": len(stream)}

    header = [JOB_MAGIC, len(lowered.layers), JOB_WORDS, 0, lowered.layers[0].in_features, 0, 0, 0]
    image = np.concatenate([np.array(header, dtype=np.uint32),
                            np.array([w for d in descs for w in d.encode()], dtype=np.uint32),
                            *streams]).astype(np.uint32)
    rom = ctx.rom
    meta = {
        "network": lowered.name, "method": lowered.method,
        "engine": {"lanes": lanes, "codebook_depth": codebook_depth, "max_features": config_max_features,
                   "pvq_k_max": pvq_k_max, "weight_sram_words": 0,
                   **({"huffman_max_len": huffman_max_len, "huffman_symbol_bits": huffman_symbol_bits}
                      if huffman else {})},
        "rom": rom,
        "rom_id": rom_id(rom),
        "rom_shared": shared_rom is not None,
        "input_scale": float(lowered.input_scale), "output_scale": float(lowered.output_scale),
        "input_features": lowered.layers[0].in_features,
        "output_features": lowered.layers[-1].out_features,
        "n_layers": len(lowered.layers),
        "layers": layer_meta,
        "info": dict(lowered.info, **(info or {})),
    }
    prog = Program(meta, image)
    prog.meta["compression"] = compression_stats(prog, lowered)
    return place_in_weight_sram(prog, weight_sram_words)


def place_in_weight_sram(program: Program, weight_sram_words: int) -> Program:
    """``program`` for an engine with a weight SRAM of ``weight_sram_words`` words, its layers placed.

    Layers are placed first fit in layer order (:func:`place_streams`); the
    others stream from DRAM.  Only descriptors and metadata change: the
    streams, and so the compression figures, are the same.  Returns a new,
    validated program.
    """
    meta = copy.deepcopy(program.meta)
    image = program.image.copy()
    desc_addr = int(image[2])
    sizes = [layer["placement"]["words"] for layer in meta["layers"]]
    for i, (layer, addr) in enumerate(zip(meta["layers"], place_streams(sizes, weight_sram_words))):
        at = desc_addr + i * DESC_WORDS
        desc = Descriptor.decode(image[at:at + DESC_WORDS])
        desc.resident, desc.wsram_addr = addr is not None, addr or 0
        image[at:at + DESC_WORDS] = desc.encode()
        layer["placement"].update(resident=desc.resident, wsram_addr=desc.wsram_addr)
    meta["engine"]["weight_sram_words"] = weight_sram_words
    placed = Program(meta, image)
    placed.validate()
    return placed


def place_streams(stream_words: list[int], capacity: int) -> list[int | None]:
    """First-fit placement in the weight SRAM: each stream's word address there, or None (DRAM).

    Layers are taken in order; one that fits after those already placed is
    placed, one that does not stays in DRAM and the next may still fit.
    """
    placed, free = [], 0
    for words in stream_words:
        if free + words <= capacity:
            placed.append(free)
            free += words
        else:
            placed.append(None)
    return placed


def compression_stats(prog: Program, lowered) -> dict:
    """Every stored bit counted: row streams (indices, biases, requantization), descriptors, codebooks.

    For sparse (deepcomp) layers the image holds each layer's size and
    requantization words, Huffman table, row headers, codes (fillers
    included) and padding, and the ROM their centroids; ``sparse`` breaks those
    bits down (:func:`model.codecs.sparse_rows.layer_bits`, summed over the layers).
    """
    weights = sum(l.in_features * l.out_features for l in lowered.layers)
    params = weights + sum(l.out_features for l in lowered.layers)
    rom_bytes = len(prog.meta["rom"]) * lowered.lanes
    # A shared ROM (universal codebook) is paid once per chip, not per network.
    total_bytes = len(prog.image) * WORD_BYTES + (0 if prog.meta["rom_shared"] else rom_bytes)
    stats = {
        "weights": weights,
        "bytes": total_bytes,
        "codebook_bytes": rom_bytes,
        "codebook_shared": prog.meta["rom_shared"],
        "bits_per_weight": total_bytes * 8 / weights,
        "ratio_vs_fp32": params * 4 / total_bytes,
    }
    sparse = [l["sparse"] for l in prog.meta["layers"] if "sparse" in l]
    if sparse:
        # Sparse layers: where the bits go (every one is in the image or the ROM counted above).
        keys = ("kept", "symbols", "fillers", "index_bits", "rel_bits", "huffman_bits", "padding_bits",
                "table_bits", "header_bits", "centroid_bits", "total_bits")
        stats["sparse"] = {k: sum(s[k] for s in sparse) for k in keys}
    return stats
