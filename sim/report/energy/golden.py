"""A program as the energy model sees it, from the golden model: each layer's facts, the counters, the memory sizes.

Each layer is read by its mode: `LAYER_READERS` holds one reader per layer
codec (``model.codecs.layers.registry``), keyed by the codec's name.  Dense
row streams (VQ, PVQ) are sized by their own entry width, checked against the
descriptor's ``row_words``; a sparse Huffman stream is taken as measured.  Its
kind (``model.codecs.layers.kinds``) adds the window and the output positions at
which a convolution applies its rows; a layer without rows (pooling, the residual add) has no
reader and no mode.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from model.codecs.layers.kinds import kind_rule
from model.codecs.layers.registry import codec_for_mode
from model.contract.ints import ceil_div
from model.contract.layout import (COLUMN_ENTRY_BITS, COMPACT_ROW_HEADER_WORDS, E8P_INDEX_BITS, E8P_TABLE_BITS, ROW_HEADER_WORDS, WORD_BITS,
                                   LayerKind)
from model.golden.engine import GoldenEngine
from sim.report.energy.memories import OnChipMemories
from sim.report.energy.network import COLUMNS, E8P, HUFFMAN, PQ, PVQ, RVQ, VQ, LayerInfo, NetworkData


def _counts(histogram) -> tuple[int, ...]:
    """A histogram as a tuple of Python ints."""
    return tuple(int(n) for n in np.asarray(histogram))


def _dense_rows_layer(i: int, layer, entry_bits: int, histogram, **facts) -> LayerInfo:
    """`LayerInfo` of a layer of dense rows of ``entry_bits``-bit entries, its width checked.

    Raises
    ------
    ValueError
        If the entries per row at that width take other than the descriptor's ``row_words``.
    """
    d = layer.desc
    entries = np.asarray(layer.events["indices"]).shape[1]
    stream = ceil_div(entries * entry_bits, WORD_BITS)
    header = COMPACT_ROW_HEADER_WORDS if d.compact else ROW_HEADER_WORDS
    if d.row_words != header + stream:
        raise ValueError(f"layer {i}: {entries} entries of {entry_bits} bits take {stream} words per row, "
                         f"but the descriptor says {d.row_words - header}")
    return LayerInfo(in_features=d.in_features, out_features=d.out_features, index_bits=entry_bits,
                     index_histogram=_counts(histogram), **facts)


def _vq_layer(i: int, layer, index_bits: int) -> LayerInfo:
    """Rows of ``index_bits``-bit codebook indices; the histogram has one bin per codeword."""
    d = layer.desc
    hist = np.bincount(np.asarray(layer.events["indices"]).ravel(), minlength=d.codebook_size)
    return _dense_rows_layer(i, layer, index_bits, hist, mode=VQ, codebook_size=d.codebook_size)


def _pvq_layer(i: int, layer, index_bits: int) -> LayerInfo:
    """Rows of enumeration index plus scale, the descriptor's ``entry_bits`` wide; no codebook."""
    d = layer.desc
    hist = np.bincount(np.asarray(layer.events["indices"]).ravel())
    scales = np.bincount(np.asarray(layer.events["scales"]).ravel())
    return _dense_rows_layer(i, layer, d.entry_bits, hist, mode=PVQ, pvq_k=d.pvq_k, codebook_size=0,
                             scale_histogram=_counts(scales))


def _huffman_layer(i: int, layer, index_bits: int) -> LayerInfo:
    """Sparse Huffman-coded rows: the stream's words and symbols as the golden model measured them."""
    d, ev = layer.desc, layer.events
    return LayerInfo(in_features=d.in_features, out_features=d.out_features,
                     index_bits=max(1, (d.codebook_size - 1).bit_length()), codebook_size=d.codebook_size,
                     mode=HUFFMAN, stream_words=int(layer.stream_words), symbols=int(ev["symbols"]),
                     index_histogram=_counts(ev["histogram"]))


def _rvq_layer(i: int, layer, index_bits: int) -> LayerInfo:
    """Rows of ``S`` stage indices per entry (``S x index_bits`` wide); the histogram counts each distinct
    entry (the stages' indices together) that occurs, ``codebook_size`` is the ROM entries the layer reads
    (its stages')."""
    d = layer.desc
    hist = np.unique(np.asarray(layer.events["indices"]).ravel(), return_counts=True)[1]
    return _dense_rows_layer(i, layer, d.stages * index_bits, hist, mode=RVQ, codebook_size=d.stages * d.codebook_size)


def _pq_layer(i: int, layer, index_bits: int) -> LayerInfo:
    """Rows of ``index_bits``-bit indices into each column block's codebook; ``codebook_size`` the ROM entries
    of all its blocks."""
    d = layer.desc
    indices = np.asarray(layer.events["indices"])
    blocks = -(-indices.shape[1] // d.block_subvectors)
    hist = np.bincount(indices.ravel(), minlength=d.codebook_size)
    return _dense_rows_layer(i, layer, index_bits, hist, mode=PQ, codebook_size=blocks * d.codebook_size)


def _e8p_layer(i: int, layer, index_bits: int) -> LayerInfo:
    """Rows of 16-bit E8P codeword indices; the histogram counts each distinct index that occurs,
    ``codebook_size`` is the lattice table's entries (what the engine reads)."""
    hist = np.unique(np.asarray(layer.events["indices"]).ravel(), return_counts=True)[1]
    return _dense_rows_layer(i, layer, E8P_INDEX_BITS, hist, mode=E8P, codebook_size=1 << E8P_TABLE_BITS)


def _columns_layer(i: int, layer, index_bits: int) -> LayerInfo:
    """Column-wise sparse layers: the stream's words as the golden model read them (once per job); each kept
    weight a 16-bit entry."""
    d = layer.desc
    return LayerInfo(in_features=d.in_features, out_features=d.out_features, index_bits=COLUMN_ENTRY_BITS,
                     codebook_size=d.row_words, mode=COLUMNS, stream_words=int(layer.stream_words))


#: ``reader(layer_index, decoded_layer, index_bits) -> LayerInfo`` for each layer codec, by its name.
LAYER_READERS: dict[str, Callable[[int, object, int], LayerInfo]] = {
    VQ: _vq_layer, PVQ: _pvq_layer, HUFFMAN: _huffman_layer, RVQ: _rvq_layer, PQ: _pq_layer, E8P: _e8p_layer,
    COLUMNS: _columns_layer}


def layers_from_decoded(decoded: Sequence, index_bits: int) -> list[LayerInfo]:
    """`LayerInfo` for each layer the golden model decoded (``GoldenEngine.decode``).

    Each layer's entry width is its own: ``index_bits`` for a codebook (VQ)
    layer, the descriptor's ``entry_bits`` (enumeration index plus scale) for a
    PVQ layer.  The width is checked against the descriptor's ``row_words``,
    so a layer whose stream the report would mis-size is refused.  Each layer
    also gets its kind, its window and its output positions (a convolution
    applies its rows, and reads its stream, at each); a layer of a kind without
    rows (pooling, the residual add) has no mode, entries or weights.

    Parameters
    ----------
    decoded : sequence
        Objects with ``desc`` (``in_features``, ``out_features``, ``mode``,
        ``row_words``, and ``codebook_size`` (VQ, HUFFMAN) or ``pvq_k`` and
        ``entry_bits`` (PVQ)) and ``events`` (``indices``, rows x entries, and
        for PVQ ``scales``; for HUFFMAN ``histogram`` and ``symbols``) and ``stream_words``,
        as `model.codecs.layers.base.DecodedLayer`.
    index_bits : int
        Width of a codebook index in a VQ row stream (``EngineConfig.index_bits``).

    Returns
    -------
    list of LayerInfo

    Raises
    ------
    ValueError
        If a layer's kind has no reader in `LAYER_READERS` or its stream width disagrees with its
        ``row_words``.
    model.contract.errors.EngineFault
        If a layer's mode has no codec.
    """
    out = []
    for i, layer in enumerate(decoded):
        d = layer.desc
        # A descriptor that says no kind (one made by hand) is FC.
        rule = kind_rule(getattr(d, "kind", LayerKind.FC))
        window = getattr(d, "window", None) if getattr(d, "windowed", False) else None
        # A windowed layer works at every output position: a convolution reads its stream at each.
        kind = dict(kind=rule.name, window=window, positions=window.positions() if window is not None else 1)
        if not rule.has_rows:
            # Pooling: no rows, no stream; its counters are activation reads and writes (average pooling: adds).
            out.append(LayerInfo(in_features=d.in_features, out_features=d.out_features, index_bits=0,
                                 codebook_size=0, mode=None, **kind))
            continue
        reader = LAYER_READERS.get(codec_for_mode(d.mode).name)
        if reader is None:
            raise ValueError(f"layer {i}: mode {d.mode} has no energy model")
        info = reader(i, layer, index_bits)
        out.append(dataclasses.replace(info, stream_words=int(getattr(layer, "stream_words", 0)), **kind))
    return out


def golden_network_data(program, x: np.ndarray, *, cycles: float | None = None,
                        cross_check_backend: str | None = None, cross_check_images: int = 0) -> NetworkData:
    """`NetworkData` of ``program`` run by the golden model on the int8 inputs ``x``.

    Every layer is sized by its own row-stream entry width (`layers_from_decoded`), and the
    on-chip memories by the program's engine (`OnChipMemories.of_engine`).
    Programs of one network with other methods than k-means are told apart in
    energy.json by name (``lenet300-pvq``).

    Parameters
    ----------
    program : model.program.file.Program
    x : numpy.ndarray of int8, shape (images, input features)
    cycles : float, optional
        The RTL's total cycles over the job (`NetworkData.cycles`).
    cross_check_backend : str, optional
        RTL backend that matched the golden model on ``cross_check_images`` of the inputs.
    cross_check_images : int
    """
    image, _, _ = program.dram_image(x)
    engine = GoldenEngine(program.config)
    _, decoded = engine.decode(image)
    result = engine.run(image)
    method = program.meta["method"]
    name = program.meta["network"] + ("" if method == "kmeans" else f"-{method}")
    return NetworkData(name, program.config.lanes, layers_from_decoded(decoded, program.config.index_bits),
                       result.layer_counters, len(x), io_counters=result.io_counters, cycles=cycles,
                       method=method, cross_check_backend=cross_check_backend,
                       cross_check_images=cross_check_images, memories=OnChipMemories.of_engine(program.config))
