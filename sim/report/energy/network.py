"""A compressed network as the energy model sees it: its layers' facts, its counters and its cycles.

`LayerInfo` holds what the report needs of one layer (shape, entry width,
codebook, histograms for the entropy floors); `NetworkData` one network, the
counters of running it and the capacities of its engine's on-chip memories;
`part_cycles` the cycles each layer is charged for its control overhead,
measured by the RTL or estimated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from model.codecs.layers.kinds import FcKind, kind_named
from model.codecs.layers.registry import codec_for_mode, layer_codecs
from model.contract.ints import ceil_div
from model.contract.layout import LayerMode, index_words_per_row
from model.contract.window import Window
from sim.report.energy.events import MAPPED_COUNTERS
from sim.report.energy.memories import OnChipMemories

#: Layer modes (`LayerInfo.mode`): the layer codecs' names, in mode order.
LAYER_MODES = tuple(codec.name for codec in layer_codecs())
#: Rows of codebook indices.
VQ = codec_for_mode(LayerMode.VQ).name
#: Rows of PVQ enumeration indices and scales, no codebook.
PVQ = codec_for_mode(LayerMode.PVQ).name
#: Sparse rows of Huffman-coded (run, index) symbols, scalar centroids (Deep Compression).
HUFFMAN = codec_for_mode(LayerMode.HUFFMAN).name
#: Rows of one index per residual-VQ stage (the sum of the stages' codewords).
RVQ = codec_for_mode(LayerMode.RVQ).name
#: Rows of indices into a codebook per column block (product VQ).
PQ = codec_for_mode(LayerMode.PQ).name
#: Rows of 16-bit E8P lattice codeword indices (decoded from the engine's 256-entry table).
E8P = codec_for_mode(LayerMode.E8P).name
COLUMNS = codec_for_mode(LayerMode.COLUMNS).name

#: Layer kind (`LayerInfo.kind`) of a fully-connected layer: the rows against the whole input, once per image.
FC = FcKind.name

#: Key of the job-level part of a network's counters (job header, input load,
#: output store), which belongs to no layer.
IO = "io"


@dataclass(frozen=True)
class LayerInfo:
    """Static facts about one compressed layer.

    Parameters
    ----------
    in_features, out_features : int
        Shape of the weight matrix (``out_features`` rows).
    index_bits : int
        Width of one entry of the row stream: a codebook index (`VQ`), or a
        PVQ enumeration index and its scale (`PVQ`, the descriptor's
        ``entry_bits``).
    codebook_size : int
        Codewords the layer uses (`VQ`); each is ``lanes`` int8 values.  0 for
        `PVQ` layers, which have no codebook.
    index_histogram : sequence of int
        Occurrences of each index (codebook or enumeration) in the layer's
        stream (for the entropy floor).  Sums to
        ``out_features * ceil(in_features / lanes)``.
    name : str
        Label for the report.
    mode : str
        One of `LAYER_MODES`.
    pvq_k : int
        Pulses per sub-vector (`PVQ` only).
    scale_histogram : sequence of int
        Occurrences of each PVQ scale value (`PVQ` only, for the entropy floor).
    stream_words : int
        `HUFFMAN` and `COLUMNS` only: DRAM words of the layer's stream (size word, table,
        row headers, codes and padding; a COLUMNS layer's is read once per job), as measured by
        the golden model.
    symbols : int
        `HUFFMAN` only: symbols in the stream (fillers included); its
        ``index_histogram`` counts each joint (run, index) symbol.
    kind : str
        The layer kind's name (`model.codecs.layers.kinds`): ``"fc"``, ``"conv"``, ``"maxpool"``, ``"avgpool"``,
        ``"add"``.
    positions : int
        Output positions of one image: how many times one image applies the layer's rows (and so
        reads its row stream, from DRAM or from the weight SRAM); 1 for FC, the window's positions
        for a windowed kind.
    window : model.contract.window.Window or None
        A windowed layer's window (for the report's descriptions and a pooling layer's cycles).

    A layer without rows (max or average pooling, the residual add) has ``mode`` None, no entries
    (``index_bits`` and ``codebook_size`` 0) and no weights; every scenario prices it by its counters
    (its activation-SRAM reads and writes, and average pooling's and the add's ``adds``, ``lanes``
    32-bit adds per lane-word), not by a weight stream.
    """
    in_features: int
    out_features: int
    index_bits: int
    codebook_size: int
    index_histogram: tuple = ()
    name: str = ""
    mode: str | None = VQ
    pvq_k: int = 0
    scale_histogram: tuple = ()
    stream_words: int = 0
    symbols: int = 0
    kind: str = FC
    positions: int = 1
    window: Window | None = None

    def __post_init__(self):
        rows = kind_named(self.kind).has_rows
        if rows and self.mode not in LAYER_MODES:
            raise ValueError(f"layer mode must be one of {', '.join(LAYER_MODES)}, got {self.mode!r}")
        if not rows and (self.mode is not None or self.index_bits or self.codebook_size):
            raise ValueError(f"a {self.kind} layer has no rows: no mode, entries or codebook, got mode "
                             f"{self.mode!r}, entry width {self.index_bits}, codebook_size {self.codebook_size}")
        if self.in_features < 1 or self.out_features < 1 or self.index_bits < int(rows) or self.positions < 1:
            raise ValueError(f"layer shape {self.in_features} x {self.out_features}, entry width "
                             f"{self.index_bits} and positions {self.positions} must be positive")
        if self.mode == PVQ and (self.pvq_k < 1 or self.codebook_size):
            raise ValueError(f"a PVQ layer needs K >= 1 and no codebook, got K={self.pvq_k}, "
                             f"codebook_size={self.codebook_size}")

    @property
    def has_rows(self) -> bool:
        """The layer has rows (a weight stream); False for pooling."""
        return self.mode is not None

    @property
    def windowed(self) -> bool:
        """The layer slides a window over a map (convolution, pooling): its kind is not FC."""
        return self.kind != FC

    @property
    def weights(self) -> int:
        """Weights in the layer: ``in_features`` x ``out_features`` (a convolution's kernel: one row's
        taps x output channels); none for a layer without rows."""
        return self.in_features * self.out_features if self.has_rows else 0

    @property
    def code(self) -> str:
        """How the layer is coded, for the report ("VQ k=256", "PVQ K=3", "no rows")."""
        if not self.has_rows:
            return "no rows"
        return f"PVQ K={self.pvq_k}" if self.mode == PVQ else f"{self.mode.upper()} k={self.codebook_size}"

    def indices(self, lanes: int) -> int:
        """Codebook indices in the layer's stream (rows x sub-vectors per row); 0 without rows."""
        return self.out_features * ceil_div(self.in_features, lanes) if self.has_rows else 0

    def beats(self, lanes: int) -> int:
        """Lane-word steps of one image through the rows: each of the stream's entries once per output
        position (``positions x out x ceil(in / lanes)``; FC: `indices`)."""
        return self.positions * self.indices(lanes)

    def index_stream_words(self, lanes: int) -> int:
        """DRAM words of packed indices, as laid out in `model.contract.layout` (rows padded to words);
        for `HUFFMAN` and `COLUMNS` the whole stream as measured; 0 without rows."""
        if self.mode in (HUFFMAN, COLUMNS):
            return self.stream_words
        if not self.has_rows:
            return 0
        return self.out_features * index_words_per_row(self.in_features, lanes, self.index_bits)

    def histogram_total(self, lanes: int) -> int:
        """What ``index_histogram`` must sum to: one count per entry (per symbol for `HUFFMAN`)."""
        return self.symbols if self.mode == HUFFMAN else self.indices(lanes)

    def entropy_bits(self) -> float:
        """Shannon entropy per entry, bits: of the index, plus that of the scale where there is one (`PVQ`).

        For PVQ the two fields are taken as coded by separate static codes
        (their joint histogram would need far more entries than a layer has
        to be estimated without bias).
        """
        return entropy(self.index_histogram) + entropy(self.scale_histogram)


def entropy(histogram: Sequence[int]) -> float:
    """Shannon entropy, bits, of the distribution a histogram of counts gives (0 for an empty one)."""
    total = sum(histogram)
    return -sum(n / total * math.log2(n / total) for n in histogram if n) if total else 0.0


@dataclass(frozen=True)
class NetworkData:
    """One compressed network and the counters of running it.

    Parameters
    ----------
    name : str
        Network name.
    lanes : int
        Engine lanes (= sub-vector dimension).
    layers : sequence of LayerInfo
        The layers, in order.
    per_layer_counters : sequence of dict
        Counter values per layer (names from `model.contract.counters.COUNTERS`,
        plus ``cycles`` if an RTL backend counts them per layer), summed over
        ``images`` inferences.
    images : int
        Inferences the counters cover; energies are reported per inference.
    io_counters : dict, optional
        Counters of the job header, input loads and output stores, summed over
        ``images`` (the golden model's ``io_counters``).
    cycles : int, optional
        The RTL's total cycle counter over the job, if only a total is known;
        it is split across layers in proportion to their MACs.
    method : str
        Compression method, for the report.
    cross_check_backend : str or None
        RTL backend whose outputs and counters matched the golden model exactly, or None.
    cross_check_images : int
        Inputs on which that match was checked.
    memories : OnChipMemories
        Capacities of the engine's on-chip memories, which set their energy per access
        (`OnChipMemories.of_engine`); unknown (priced as 8 KB) if not given.
    """
    name: str
    lanes: int
    layers: Sequence[LayerInfo]
    per_layer_counters: Sequence[Mapping[str, int]]
    images: int
    io_counters: Mapping[str, int] | None = None
    cycles: int | None = None
    method: str = ""
    cross_check_backend: str | None = None
    cross_check_images: int = 0
    memories: OnChipMemories = OnChipMemories()

    def __post_init__(self):
        if len(self.layers) != len(self.per_layer_counters):
            raise ValueError(f"{self.name}: {len(self.layers)} layers but "
                             f"{len(self.per_layer_counters)} counter sets")
        if self.images <= 0:
            raise ValueError(f"{self.name}: images must be positive, got {self.images}")
        for counters in [*self.per_layer_counters, *([self.io_counters] if self.io_counters else [])]:
            unknown = set(counters) - MAPPED_COUNTERS
            if unknown:
                raise ValueError(f"{self.name}: counter(s) {', '.join(sorted(unknown))} have no energy "
                                 "mapping (add them to sim/report/energy/events.py COUNTER_MAPPING)")
        for i, layer in enumerate(self.layers):
            for what, hist in (("index", layer.index_histogram), ("scale", layer.scale_histogram)):
                if hist and sum(hist) != layer.histogram_total(self.lanes):
                    raise ValueError(f"{self.name} layer {i}: {what} histogram sums to "
                                     f"{sum(hist)}, expected {layer.histogram_total(self.lanes)}")

    @property
    def parts(self) -> list:
        """Layer indices, then `IO` if the network has job-level counters."""
        return [*range(len(self.layers)), *([IO] if self.io_counters is not None else [])]

    def counters(self, part: int | str) -> dict[str, float]:
        """Counters of one layer (or `IO`), per inference."""
        raw = self.io_counters if part == IO else self.per_layer_counters[part]
        return {k: v / self.images for k, v in raw.items()}

    @property
    def weights(self) -> int:
        """Weights in the network, all layers."""
        return sum(layer.weights for layer in self.layers)


# --------------------------------------------------------------------------- cycles

#: Where a part's cycle count comes from (see `part_cycles`).
CYCLES_MEASURED = "RTL cycle counter"
CYCLES_SPLIT = ("RTL total cycle counter, split across layers in proportion to their ideal cycles "
                "(MACs / lanes, plus one per PVQ pulse; one per Huffman symbol in sparse layers, one per "
                "lane-word of taps in pooling layers)")
CYCLES_ESTIMATED = ("estimated as MACs / lanes plus one per PVQ pulse, one per Huffman symbol in sparse layers, "
                    "one per lane-word of taps in pooling layers (no RTL cycle counter in the data)")
#: PVQ pulses the engine's PVQ unit decodes and adds per cycle.
PVQ_PULSES_PER_CYCLE = 1


def ideal_cycles(c: Mapping[str, float], lanes: int) -> float:
    """Cycles of an ideal schedule for a layer's counters: ``lanes`` MACs, or one PVQ pulse, per cycle."""
    return c.get("macs", 0) / lanes + c.get("adds", 0) / PVQ_PULSES_PER_CYCLE


def layer_ideal_cycles(net: NetworkData, i: int) -> float:
    """Ideal cycles per inference of layer ``i``: `ideal_cycles`, or one symbol per cycle (`HUFFMAN`), or
    for a layer without rows (max or average pooling, the residual add) its kind's
    (`model.codecs.layers.kinds`: one lane-word of taps per cycle, average pooling's adds in the same
    cycles; the add's lane-word of both operands per cycle)."""
    layer, c = net.layers[i], net.counters(i)
    if not layer.has_rows:
        return kind_named(layer.kind).ideal_cycles(layer.in_features, layer.out_features, layer.window, net.lanes)
    return c.get("huffman_symbols", 0) if layer.mode == HUFFMAN else ideal_cycles(c, net.lanes)


def part_cycles(net: NetworkData, part: int | str) -> tuple[float, str]:
    """Cycles per inference of one layer (or `IO`), and where the number comes from.

    Parameters
    ----------
    net : NetworkData
    part : int or str
        Layer index, or `IO`.

    Returns
    -------
    (float, str)
        Cycles, and one of `CYCLES_MEASURED`, `CYCLES_SPLIT`, `CYCLES_ESTIMATED`.
    """
    c = net.counters(part)
    if "cycles" in c:
        return c["cycles"], CYCLES_MEASURED
    # The job-level part has no MACs or pulses, so no ideal cycles.
    ideal = lambda q: 0.0 if q == IO else layer_ideal_cycles(net, q)  # noqa: E731
    if net.cycles is not None:
        total_ideal = sum(ideal(q) for q in range(len(net.layers)))
        share = ideal(part) / total_ideal if total_ideal else 0.0
        return net.cycles / net.images * share, CYCLES_SPLIT
    return ideal(part), CYCLES_ESTIMATED
