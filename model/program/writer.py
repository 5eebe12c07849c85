"""Lay a lowered network out as a program: ROM image, descriptors and row streams.

Each layer is written by the codec of its mode (:mod:`model.codecs.layers`);
this module only strings them together and counts the bytes.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np

from model.codecs.huffman import codes_per_step
from model.codecs.layers.base import WriteContext, pe_rows, pe_stream
from model.codecs.layers.huffman import symbol_bits_for
from model.codecs.layers.kinds import kind_named
from model.codecs.layers.registry import codec_named
from model.contract.descriptor import Descriptor
from model.contract.errors import ProgramError
from model.contract.layout import (DESC_WORDS, HUFFMAN_DEFAULT_MAX_LEN, JOB_MAGIC, JOB_WORDS, MAX_FEATURES_LIMIT,
                                   PES, WORD_BYTES, LayerKind, LayerMode)
from model.program.balance import balance_hidden_units, stored_weights
from model.program.file import Program, rom_id


#: How ``build_program`` writes sparse (Deep Compression) layers: Huffman-coded rows, or column-wise.
SPARSE_FORMATS = ("huffman", "columns")


def layer_mode(lowered, layer) -> str:
    """``"vq"``, ``"pvq"`` or ``"huffman"``: a layer's own ``mode``, else every layer of a
    ``method="deepcomp"`` network is a sparse Huffman-coded layer."""
    return getattr(layer, "mode", None) or ("huffman" if lowered.method == "deepcomp" else "vq")


def layer_kind(layer) -> str:
    """``"fc"``, ``"conv"``, ``"maxpool"``, ``"avgpool"`` or ``"add"``: a lowered layer's own ``kind``, else
    ``"fc"``.  A lowered layer with ``save`` set writes its output to the skip buffer too (``FLAG_SAVE``).

    A windowed layer (:mod:`model.contract.layout`, "Layer kinds") carries its
    ``window`` (:class:`model.contract.window.Window`); its ``in_features`` is a
    row's length (taps times padded channels) and ``out_features`` its output
    channels (a pooling layer's: its padded channels).
    """
    return getattr(layer, "kind", "fc")


def activation_name(layer) -> str | None:
    """The requantizer's activation of a lowered layer: ``"relu"``, ``"leaky"`` (per-row slopes),
    ``"floor"`` or None."""
    if getattr(layer, "floor", False):
        return "floor"
    if not layer.relu:
        return None
    act = getattr(layer, "act", None)
    return "leaky" if act is not None and np.any(np.asarray(act) != 0) else "relu"


def layer_weights(layer) -> int:
    """The real weights of a lowered layer (a convolution's padding channels and a pooling layer have none)."""
    if getattr(layer, "weights_count", None) is not None:
        return int(layer.weights_count)
    return layer.in_features * layer.out_features if _has_rows(layer) else 0


def _has_rows(layer) -> bool:
    return kind_named(layer_kind(layer)).has_rows


def _descriptor_of(i: int, layer, rule, codec, ctx: WriteContext):
    """Layer ``i``'s descriptor, stream and codec metadata."""
    if rule.has_rows:
        written = codec.write(i, layer, ctx)
        desc, stream, meta = written.descriptor, np.asarray(written.stream, dtype=np.uint32), written.meta
    else:
        desc = rule.rowless_descriptor(i, layer)
        stream, meta = np.zeros(0, dtype=np.uint32), {}
    desc.kind = rule.kind
    desc.save = bool(getattr(layer, "save", False))
    if desc.windowed:
        desc.window = layer.window
        try:
            desc.encode()
        except ValueError as e:
            raise ProgramError(f"layer {i}: {e}") from None
        meta = dict(meta, window=dataclasses.asdict(layer.window))
    return desc, stream, meta


#: The smallest activation SRAM the writer asks for (values per vector).
MIN_MAX_FEATURES = 1024


def max_features_for(descs, lanes: int) -> int:
    """The activation SRAM a program needs: the smallest power of two, at least :data:`MIN_MAX_FEATURES`,
    that holds every layer's input and output vector (a convolution's whole map)."""
    need = max(max(d.input_features(lanes), d.output_features(lanes)) for d in descs)
    if need > MAX_FEATURES_LIMIT:
        raise ProgramError(f"a vector of {need:,} values does not fit the largest activation SRAM "
                           f"({MAX_FEATURES_LIMIT:,} values); feature maps are not tiled")
    return max(MIN_MAX_FEATURES, 1 << (need - 1).bit_length())


def build_program(lowered, config_max_features: int | None = None, codebook_depth: int = 256,
                  info: dict | None = None, shared_rom=None, pvq_k_max: int = 0,
                  huffman_max_len: int = HUFFMAN_DEFAULT_MAX_LEN, huffman_symbol_bits: int | None = None,
                  weight_sram_words: int = 0, pes: int = 1, balance: bool = True,
                  sparse_format: str = "huffman") -> Program:
    """Lay a :class:`model.compress.lowering.LoweredNetwork` out as a program.

    The engine's activation SRAM holds ``config_max_features`` values per
    vector (default: :func:`max_features_for` the network).  Each layer's integer codebook goes into the ROM image (layers one after the
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

    With ``pes`` processing elements, the sparse layers' streams are written for them (each PE's
    sub-stream, :meth:`model.codecs.sparse_rows.SparseLayer.stream`; the layer's metadata records
    ``pes``, absent for 1) and the dense layers' streams laid out for them (:func:`lay_out_for_pes`).
    Each sparse FC layer whose output feeds only the next layer, itself sparse FC, has its hidden
    units permuted so that its PEs' rows take about equal time (:func:`model.program.balance.balance_hidden_units`,
    on copies: ``lowered`` is not changed); its metadata's ``row_order`` lists the original row
    (hidden unit) of each stored row.  The program's outputs are those of ``lowered`` exactly.
    ``balance=False`` keeps every row where it is (output row ``r`` on PE ``r mod P``).

    ``sparse_format="columns"`` writes the sparse layers column-wise instead (``LayerMode.COLUMNS``,
    :mod:`model.codecs.layers.columns`), for an engine with the column unit (one PE; its ``lanes``
    slots balanced the same way, by the rows' kept weights).
    """
    lanes = lowered.lanes
    if pes not in PES:
        raise ProgramError(f"--pes must be one of {', '.join(map(str, PES))}, got {pes}")
    if sparse_format not in SPARSE_FORMATS:
        raise ProgramError(f"sparse format must be one of {', '.join(SPARSE_FORMATS)}, got {sparse_format!r}")

    def mode_of(layer):
        mode = layer_mode(lowered, layer)
        return sparse_format if mode == "huffman" else mode

    if sparse_format == "columns":
        if pes != 1:
            raise ProgramError(f"column-wise sparse layers run on one processing element (the column unit's slots "
                               f"are its lanes): --pes must be 1, got {pes}")
        balanced, row_order = balance_hidden_units(lowered.layers, lanes if balance else 1, mode_of,
                                                   mode="columns", work=stored_weights)
    else:
        balanced, row_order = balance_hidden_units(lowered.layers, pes if balance else 1, mode_of,
                                                   pairs=codes_per_step(huffman_max_len) == 2)
    if row_order:
        lowered = copy.copy(lowered)
        lowered.layers = balanced
    try:
        rules = [kind_named(layer_kind(l)) for l in lowered.layers]
        codecs = [codec_named(mode_of(l)) if rule.has_rows else None
                  for l, rule in zip(lowered.layers, rules)]
    except ValueError as e:
        raise ProgramError(str(e)) from None
    huffman = any(c is not None and c.mode == LayerMode.HUFFMAN for c in codecs)
    if huffman and shared_rom is not None:
        raise ProgramError("sparse (deepcomp) layers keep their centroids in the program's own ROM")
    if huffman and huffman_symbol_bits is None:
        huffman_symbol_bits = symbol_bits_for([l for l, c in zip(lowered.layers, codecs)
                                              if c is not None and c.mode == LayerMode.HUFFMAN])
    if not huffman:
        huffman_max_len, huffman_symbol_bits = 0, 0
    ctx = WriteContext(lanes=lanes, codebook_depth=codebook_depth, pvq_k_max=pvq_k_max,
                       huffman_max_len=huffman_max_len, huffman_symbol_bits=huffman_symbol_bits or 0,
                       rom=[] if shared_rom is None else np.asarray(shared_rom, dtype=np.int64).tolist(),
                       shared_rom=shared_rom is not None,
                       stream_addr=JOB_WORDS + DESC_WORDS * len(lowered.layers), pes=pes)
    descs: list[Descriptor] = []
    streams, layer_meta = [], []
    for i, (layer, rule, codec) in enumerate(zip(lowered.layers, rules, codecs)):
        desc, stream, written_meta = _descriptor_of(i, layer, rule, codec, ctx)
        descs.append(desc)
        streams.append(stream)
        ctx.stream_addr += stream.size
        layer_meta.append({"kind": rule.name, "in_features": layer.in_features, "out_features": layer.out_features,
                           "relu": bool(layer.relu), "activation": activation_name(layer),
                           "mode": codec.name if codec else None,
                           "codebook_size": codec.codebook_size(layer) if codec else 0,
                           "compact": desc.compact, **({"save": True} if desc.save else {}), **written_meta,
                           **({"row_order": row_order[i].tolist()} if i in row_order else {})})
    for meta, stream in zip(layer_meta, streams):
        meta["placement"] = {"resident": False, "wsram_addr": 0, "words": len(stream)}

    input_features = descs[0].input_features(lanes)
    if config_max_features is None:
        config_max_features = max_features_for(descs, lanes)
    header = [JOB_MAGIC, len(lowered.layers), JOB_WORDS, 0, input_features, 0, 0, 0]
    image = np.concatenate([np.array(header, dtype=np.uint32),
                            np.array([w for d in descs for w in d.encode()], dtype=np.uint32),
                            *streams]).astype(np.uint32)
    rom = ctx.rom
    if not rom and any(c is not None and c.mode == LayerMode.COLUMNS for c in codecs):
        # The engine's dense datapath, which every engine has, reads a ROM: a program of column-wise layers
        # only (their centroids are in their streams) gets one zero codeword.
        rom = [[0] * lanes]
    meta = {
        "network": lowered.name, "method": lowered.method,
        "engine": {"lanes": lanes, "codebook_depth": codebook_depth, "max_features": config_max_features,
                   "pvq_k_max": pvq_k_max, "weight_sram_words": 0,
                   # An engine with the windowed kinds' address generators and pooling unit, when needed.
                   "windows": any(d.windowed for d in descs),
                   # The average-pooling unit only for a program that has average pooling.
                   "avgpool": any(d.kind == LayerKind.AVGPOOL for d in descs),
                   # The skip buffer and add unit only for a program with a residual add.
                   **({"residual": True} if any(d.kind == LayerKind.ADD or d.save for d in descs) else {}),
                   # The RVQ unit (as many ROM read ports as the most stages a layer uses) and the PQ
                   # block-offset register only for programs with such layers.
                   **({"rvq_stages_max": max(d.stages for d in rvq)} if (rvq := [
                       d for d, c in zip(descs, codecs) if c is not None and c.mode == LayerMode.RVQ]) else {}),
                   **({"pq": True} if any(c is not None and c.mode == LayerMode.PQ for c in codecs) else {}),
                   # The nearest-prototype unit only for a program with a NEAREST layer.
                   **({"nearest_prototype": True} if any(d.kind == LayerKind.NEAREST for d in descs) else {}),
                   **({"huffman_max_len": huffman_max_len, "huffman_symbol_bits": huffman_symbol_bits}
                      if huffman else {}),
                   # The units a mode's codec asks for (LayerCodec.engine_options; E8P: the lattice codebook).
                   **{k: v for c in dict.fromkeys(c for c in codecs if c is not None)
                      for k, v in c.engine_options([d for d, cc in zip(descs, codecs) if cc is c],
                                                   [m for m, cc in zip(layer_meta, codecs) if cc is c]).items()}},
        "rom": rom,
        "rom_id": rom_id(rom),
        "rom_shared": shared_rom is not None,
        "input_scale": float(lowered.input_scale), "output_scale": float(lowered.output_scale),
        "output_scales": [float(v) for v in (getattr(lowered, "output_scales", None) or [lowered.output_scale])],
        "input_features": input_features,
        "output_features": descs[-1].output_features(lanes),
        "n_layers": len(lowered.layers),
        "layers": layer_meta,
        "info": dict(lowered.info, **(info or {})),
    }
    prog = Program(meta, image)
    prog.meta["compression"] = compression_stats(prog, lowered)
    return place_in_weight_sram(lay_out_for_pes(prog, pes), weight_sram_words)


#: The layer modes whose rows run on one processing element only (``EngineConfig.pes``).
ONE_PE_MODES = {LayerMode.PVQ: "PVQ"}


def lay_out_for_pes(program: Program, pes: int) -> Program:
    """``program`` for an engine with ``pes`` processing elements: every dense layer's stream laid out for them.

    Each stream keeps its words and its place; they are reordered by row group
    (:mod:`model.contract.layout`, "Processing elements"), and the engine metadata
    records ``pes`` (left out for one PE, whose layout is the plain one).  A program
    already laid out for other PEs is read back to rows first.  PVQ and
    nearest-prototype layers run on one PE: such a program with ``pes > 1`` is a
    :class:`ProgramError`.  Sparse (Huffman-coded) layers are written for their
    PEs (:func:`build_program` with ``pes``; their metadata's ``pes``, absent for 1) and
    left alone; one written for another ``pes`` is a :class:`ProgramError` (its stream
    holds other words: compress it again).  Returns a new, validated program.
    """
    if pes not in PES:
        raise ProgramError(f"--pes must be one of {', '.join(map(str, PES))}, got {pes}")
    for i, layer in enumerate(program.meta["layers"]):
        if layer.get("mode") == "huffman" and layer.get("pes", 1) != pes:
            written = layer.get("pes", 1)
            raise ProgramError(f"layer {i} is sparse (Huffman-coded), written for {written} processing "
                               f"element{'s' if written > 1 else ''}: its stream depends on P; "
                               f"compress it again with --pes {pes}")
    old = program.meta["engine"].get("pes", 1)
    if pes == old:
        return program
    meta = copy.deepcopy(program.meta)
    image = program.image.copy()
    desc_addr = int(image[2])
    if pes > 1:
        for i in range(len(meta["layers"])):
            at = desc_addr + i * DESC_WORDS
            desc = Descriptor.decode(image[at:at + DESC_WORDS])
            if desc.kind == LayerKind.NEAREST or (kind_named(meta["layers"][i]["kind"]).has_rows
                                                  and desc.mode in ONE_PE_MODES):
                what = "nearest-prototype" if desc.kind == LayerKind.NEAREST else ONE_PE_MODES[desc.mode]
                raise ProgramError(f"layer {i} is {what}: such layers run on one processing element (--pes 1)")
    for i in range(len(meta["layers"])):
        at = desc_addr + i * DESC_WORDS
        desc = Descriptor.decode(image[at:at + DESC_WORDS])
        if not kind_named(meta["layers"][i]["kind"]).has_rows or desc.mode == LayerMode.HUFFMAN:
            continue   # no rows, or a sparse stream already written for these PEs
        n = desc.out_features * desc.row_words
        words = image[desc.stream_addr:desc.stream_addr + n]
        image[desc.stream_addr:desc.stream_addr + n] = pe_stream(pe_rows(words, desc.out_features, desc.row_words,
                                                                         old), pes)
    if pes > 1:
        meta["engine"]["pes"] = pes
    else:
        meta["engine"].pop("pes", None)
    laid_out = Program(meta, image)
    laid_out.validate()
    return laid_out


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
    # A layer with no stream (pooling) is never resident.
    # A COLUMNS layer is resident in the column unit, never in the weight SRAM.
    sizes = [weight_sram_words + 1 if layer.get("mode") == "columns" else
             layer["placement"]["words"] or weight_sram_words + 1 for layer in meta["layers"]]
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
    weights = sum(layer_weights(l) for l in lowered.layers)
    params = weights + sum(l.out_features for l in lowered.layers if _has_rows(l))
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
