"""Energy model: event counters x energy per event, per layer and per network.

The engine's counters (golden model == RTL, see `model.layout.COUNTERS`) give
the engine scenarios directly ("engine" for codebook-VQ layers, "pvq_engine"
for pyramid-VQ layers).  The dense baselines are computed from the layers'
shapes alone, so they are the same for every coding of one network; the other
scenarios are derived from the counters, substituting only what differs (the
weight stream, the codebook's home), so every scenario runs the same network
on the same inputs.

Each scenario is a function registered in `SCENARIOS` with the layer modes it
can price (`VQ`, `PVQ`); a network gets every scenario whose modes cover all
its layers (`scenarios_for`).  Adding one is one decorated function::

    @register_scenario("key", "title", "derivation (Markdown)", modes=(VQ,),
                       when=lambda net: net.method == "universal")  # optional
    def _key(net, layer_index, table) -> LayerCost: ...

``reference=True`` marks a scenario that prices the counters as measured (the
report's "x engine" column divides by it).

All energies are in picojoules per inference (one input image).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from model.contract.errors import VqeError
from model.contract.layout import (DESC_WORDS, JOB_WORDS, ROW_HEADER_WORDS, WORD_BITS, WORD_BYTES, LayerMode,
                                   index_words_per_row)
from model.contract.ints import ceil_div

#: The energy table shipped with the project.
DEFAULT_TABLE = Path(__file__).with_name("energy_table.toml")

#: Entries the energy model reads; a user's table must define all of them.
REQUIRED_ENTRIES = ("dram_32b", "sram_8kb_32b", "rom_32b", "int8_mult", "int32_add",
                    "fp32_mult", "fp32_add", "control_per_cycle")
#: Bits in one byte-wide lane (activations and codebook entries are int8).
LANE_BITS = 8
#: Bits of one fp32 activation, for the dense fp32 baseline's activation SRAM.
FP32_BITS = 32
#: Dense int8 weights in one 32-bit DRAM word.
INT8_PER_WORD = WORD_BYTES

#: Layer modes (`LayerInfo.mode`): the engine's `LayerMode` names, lower case.
LAYER_MODES = tuple(m.name.lower() for m in LayerMode)
#: Rows of codebook indices.
VQ = LayerMode.VQ.name.lower()
#: Rows of PVQ enumeration indices and scales, no codebook.
PVQ = LayerMode.PVQ.name.lower()
#: Sparse rows of Huffman-coded (run, index) symbols, scalar centroids (Deep Compression).
HUFFMAN = LayerMode.HUFFMAN.name.lower()

#: Bar segments, in plotting order.
COMPONENTS = ("dram", "sram", "rom", "codebook_sram", "mac", "add", "huffman", "control")
COMPONENT_TITLES = {
    "dram": "DRAM", "sram": "activation SRAM", "rom": "codebook ROM",
    "codebook_sram": "codebook SRAM", "mac": "MAC", "add": "add", "huffman": "Huffman tables",
    "control": "control",
}


class EnergyTableError(VqeError):
    """The energy table is missing or invalid; the message is one line."""


# --------------------------------------------------------------------------- table

@dataclass(frozen=True)
class EnergyEntry:
    """One energy value and where it comes from.

    Parameters
    ----------
    name : str
        Key in the table.
    pj : float
        Energy per event, picojoules (already resolved if derived).
    source : str
        Citation, or the reasoning behind an assumption.
    description : str
        What the event is.
    assumption : bool
        True if no published figure backs the value.
    same_as : str or None
        Entry this one is derived from, if any.
    scale : float
        Factor applied to ``same_as``.
    """
    name: str
    pj: float
    source: str
    description: str = ""
    assumption: bool = False
    same_as: str | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class EnergyTable:
    """A validated energy table.

    Parameters
    ----------
    entries : dict of str to EnergyEntry
        All entries, derived values resolved.
    path : str
        File it was read from.
    name : str
        The table's ``meta.name``, or the file name.
    """
    entries: Mapping[str, EnergyEntry]
    path: str
    name: str

    def pj(self, name: str) -> float:
        """Energy per event of entry ``name``, picojoules."""
        return self.entries[name].pj

    @property
    def assumptions(self) -> list[EnergyEntry]:
        return [e for e in self.entries.values() if e.assumption]


_ENTRY_KEYS = {"pj", "same_as", "scale", "source", "description", "assumption"}


def _number(value, what: str, where: str) -> float:
    # bool is an int subclass in Python; "true" is not an energy.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EnergyTableError(f"{where}: {what} must be a number, got {value!r}")
    if value < 0:
        raise EnergyTableError(f"{where}: {what} must not be negative, got {value!r}")
    return float(value)


def load_energy_table(path: str | Path | None = None) -> EnergyTable:
    """Read and validate an energy table (TOML).

    Parameters
    ----------
    path : str or Path, optional
        Table file; the project's default table if omitted.

    Returns
    -------
    EnergyTable

    Raises
    ------
    EnergyTableError
        If the file is missing or unreadable, is not valid TOML, or an entry
        is missing, has a negative or non-numeric value, has no source, or
        derives from an unknown entry or in a cycle.
    """
    path = Path(path) if path is not None else DEFAULT_TABLE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnergyTableError(f"energy table {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnergyTableError(f"energy table {path}: cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnergyTableError(f"energy table {path}: invalid TOML: {exc}") from None
    raw = doc.get("entries")
    if not isinstance(raw, dict) or not raw:
        raise EnergyTableError(f"energy table {path}: no [entries.NAME] tables")
    meta = doc.get("meta", {})
    name = meta.get("name", path.name) if isinstance(meta, dict) else path.name

    for key, body in raw.items():
        where = f"energy table {path}: entry '{key}'"
        if not isinstance(body, dict):
            raise EnergyTableError(f"{where}: must be a table with 'pj' and 'source'")
        unknown = set(body) - _ENTRY_KEYS
        if unknown:
            raise EnergyTableError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if ("pj" in body) == ("same_as" in body):
            raise EnergyTableError(f"{where}: needs exactly one of 'pj' or 'same_as'")
        if "pj" in body:
            _number(body["pj"], "'pj'", where)
        elif body["same_as"] not in raw:
            raise EnergyTableError(f"{where}: 'same_as' names unknown entry {body['same_as']!r}")
        if "scale" in body:
            _number(body["scale"], "'scale'", where)
        source = body.get("source")
        if not isinstance(source, str) or not source.strip():
            raise EnergyTableError(f"{where}: missing 'source' (every value must say where it comes from)")
        if not isinstance(body.get("assumption", False), bool):
            raise EnergyTableError(f"{where}: 'assumption' must be true or false")

    resolved: dict[str, float] = {}

    def resolve(key: str, chain: tuple) -> float:
        if key in resolved:
            return resolved[key]
        if key in chain:
            raise EnergyTableError(f"energy table {path}: 'same_as' cycle {' -> '.join(chain + (key,))}")
        body = raw[key]
        value = (float(body["pj"]) if "pj" in body
                 else resolve(body["same_as"], chain + (key,)) * float(body.get("scale", 1.0)))
        resolved[key] = value
        return value

    entries = {}
    for key, body in raw.items():
        entries[key] = EnergyEntry(
            name=key, pj=resolve(key, ()), source=body["source"].strip(),
            description=body.get("description", ""), assumption=body.get("assumption", False),
            same_as=body.get("same_as"), scale=float(body.get("scale", 1.0)))
    missing = [k for k in REQUIRED_ENTRIES if k not in entries]
    if missing:
        raise EnergyTableError(f"energy table {path}: missing entry(ies) {', '.join(missing)}")
    return EnergyTable(entries=entries, path=str(path), name=str(name))


# --------------------------------------------------------------------------- network

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
        `VQ` or `PVQ`.
    pvq_k : int
        Pulses per sub-vector (`PVQ` only).
    scale_histogram : sequence of int
        Occurrences of each PVQ scale value (`PVQ` only, for the entropy floor).
    stream_words : int
        `HUFFMAN` only: DRAM words of the layer's stream (size word, table,
        row headers, codes and padding), as measured by the golden model.
    symbols : int
        `HUFFMAN` only: symbols in the stream (fillers included); its
        ``index_histogram`` counts each joint (run, index) symbol.
    """
    in_features: int
    out_features: int
    index_bits: int
    codebook_size: int
    index_histogram: tuple = ()
    name: str = ""
    mode: str = VQ
    pvq_k: int = 0
    scale_histogram: tuple = ()
    stream_words: int = 0
    symbols: int = 0

    def __post_init__(self):
        if self.mode not in LAYER_MODES:
            raise ValueError(f"layer mode must be one of {', '.join(LAYER_MODES)}, got {self.mode!r}")
        if self.in_features < 1 or self.out_features < 1 or self.index_bits < 1:
            raise ValueError(f"layer shape {self.in_features} x {self.out_features} and entry width "
                             f"{self.index_bits} must be positive")
        if self.mode == PVQ and (self.pvq_k < 1 or self.codebook_size):
            raise ValueError(f"a PVQ layer needs K >= 1 and no codebook, got K={self.pvq_k}, "
                             f"codebook_size={self.codebook_size}")

    @property
    def weights(self) -> int:
        return self.in_features * self.out_features

    @property
    def code(self) -> str:
        """How the layer is coded, for the report ("VQ k=256", "PVQ K=3")."""
        return f"PVQ K={self.pvq_k}" if self.mode == PVQ else f"{self.mode.upper()} k={self.codebook_size}"

    def indices(self, lanes: int) -> int:
        """Codebook indices in the layer's stream (rows x sub-vectors per row)."""
        return self.out_features * ceil_div(self.in_features, lanes)

    def index_stream_words(self, lanes: int) -> int:
        """DRAM words of packed indices, as laid out in `model.layout` (rows padded to words);
        for `HUFFMAN` the whole stream as measured."""
        if self.mode == HUFFMAN:
            return self.stream_words
        return self.out_features * index_words_per_row(self.in_features, lanes, self.index_bits)

    def histogram_total(self, lanes: int) -> int:
        """What ``index_histogram`` must sum to: one count per entry (per symbol for `HUFFMAN`)."""
        return self.symbols if self.mode == HUFFMAN else self.indices(lanes)

    def entropy_bits(self) -> float:
        """Shannon entropy per entry, bits: of the index (`VQ`), or of the index plus that of the scale (`PVQ`).

        For PVQ the two fields are taken as coded by separate static codes
        (their joint histogram would need far more entries than a layer has
        to be estimated without bias).
        """
        return _entropy(self.index_histogram) + (_entropy(self.scale_histogram) if self.mode == PVQ else 0.0)


def _entropy(histogram) -> float:
    total = sum(histogram)
    return -sum(n / total * math.log2(n / total) for n in histogram if n) if total else 0.0


#: Key of the job-level part of a network's counters (job header, input load,
#: output store), which belongs to no layer.
IO = "io"


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
        Counter values per layer (names from `model.layout.COUNTERS`, plus
        ``cycles`` if an RTL backend counts them per layer), summed over
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
                                 "mapping (add them to sim/energy.py COUNTER_MAPPING)")
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
        return sum(layer.weights for layer in self.layers)


def layers_from_decoded(decoded, index_bits: int) -> list[LayerInfo]:
    """`LayerInfo` for each layer the golden model decoded (``GoldenEngine.decode``).

    Each layer's entry width is its own: ``index_bits`` for a codebook (VQ)
    layer, the descriptor's ``entry_bits`` (enumeration index plus scale) for a
    PVQ layer.  The width is checked against the descriptor's ``row_words``,
    so a layer whose stream the report would mis-size is refused.

    Parameters
    ----------
    decoded : sequence
        Objects with ``desc`` (``in_features``, ``out_features``, ``mode``,
        ``row_words``, and ``codebook_size`` (VQ) or ``pvq_k`` and
        ``entry_bits`` (PVQ)), ``indices`` (rows x sub-vectors) and, for PVQ,
        ``pvq_scale``, as `model.golden.DecodedLayer`.
    index_bits : int
        Width of a codebook index in a VQ row stream (``EngineConfig.index_bits``).

    Raises
    ------
    ValueError
        If a layer's mode is unknown or its stream width disagrees with its ``row_words``.
    """
    import numpy as np

    out = []
    for i, layer in enumerate(decoded):
        d = layer.desc
        if d.mode == LayerMode.HUFFMAN:
            ev = layer.events
            hist = np.asarray(ev["histogram"])
            out.append(LayerInfo(in_features=d.in_features, out_features=d.out_features,
                                 index_bits=max(1, (d.codebook_size - 1).bit_length()),
                                 codebook_size=d.codebook_size, mode=HUFFMAN, stream_words=int(ev["stream_words"]),
                                 symbols=int(ev["symbols"]), index_histogram=tuple(int(n) for n in hist)))
            continue
        if d.mode not in (LayerMode.VQ, LayerMode.PVQ):
            raise ValueError(f"layer {i}: mode {d.mode} has no energy model")
        indices = np.asarray(layer.events["indices"])
        if d.mode == LayerMode.PVQ:
            bits = d.entry_bits
            hist = np.bincount(indices.ravel())
            scales = np.bincount(np.asarray(layer.events["scales"]).ravel())
            info = dict(mode=PVQ, pvq_k=d.pvq_k, codebook_size=0, scale_histogram=tuple(int(n) for n in scales))
        else:
            bits = index_bits
            hist = np.bincount(indices.ravel(), minlength=d.codebook_size)
            info = dict(mode=VQ, codebook_size=d.codebook_size)
        stream = ceil_div(indices.shape[1] * bits, WORD_BITS)
        if d.row_words != ROW_HEADER_WORDS + stream:
            raise ValueError(f"layer {i}: {indices.shape[1]} entries of {bits} bits take {stream} words per row, "
                             f"but the descriptor says {d.row_words - ROW_HEADER_WORDS}")
        out.append(LayerInfo(in_features=d.in_features, out_features=d.out_features, index_bits=bits,
                             index_histogram=tuple(int(n) for n in hist), **info))
    return out


# --------------------------------------------------------------------------- events

@dataclass(frozen=True)
class Event:
    """A kind of event, how often it happens per inference, and what each costs.

    Parameters
    ----------
    component : str
        Bar segment (one of `COMPONENTS`).
    what : str
        The event, in words.
    count : float
        Events per inference.
    pj_each : float
        Picojoules per event.
    basis : str
        How ``pj_each`` follows from the table.
    """
    component: str
    what: str
    count: float
    pj_each: float
    basis: str

    @property
    def pj(self) -> float:
        return self.count * self.pj_each


def sram_access(table: EnergyTable, width_bits: int) -> tuple[float, str]:
    """Energy of one SRAM access ``width_bits`` wide (an assumption: linear in width).

    Parameters
    ----------
    table : EnergyTable
    width_bits : int
        Access width.
    """
    return (table.pj("sram_8kb_32b") * width_bits / WORD_BITS,
            f"sram_8kb_32b x {width_bits}/{WORD_BITS} bits")


def rom_access(table: EnergyTable, width_bits: int) -> tuple[float, str]:
    """Energy of one ROM read ``width_bits`` wide (ROM assumption, linear in width).

    Parameters
    ----------
    table : EnergyTable
    width_bits : int
        Read width.
    """
    return (table.pj("rom_32b") * width_bits / WORD_BITS, f"rom_32b x {width_bits}/{WORD_BITS} bits")


def counter_events(c: Mapping[str, float], lanes: int, table: EnergyTable, *,
                   cycles: float, act_bits: int = LANE_BITS, mac: str = "int8") -> list[Event]:
    """Map one layer's counters to priced events: the engine's mapping.

    Parameters
    ----------
    c : mapping
        Counters per inference.
    lanes : int
        Lanes; SRAM and ROM accesses are ``lanes`` values wide.
    table : EnergyTable
    cycles : float
        Clock cycles per inference, for the control overhead.
    act_bits : int
        Bits per activation in SRAM (8; 32 for the fp32 baseline).
    mac : {"int8", "fp32"}
        Arithmetic of a multiply-accumulate.
    """
    dram = table.pj("dram_32b")
    sram_pj, sram_basis = sram_access(table, lanes * act_bits)
    rom_pj, rom_basis = rom_access(table, lanes * LANE_BITS)
    if mac == "int8":
        mac_pj, mac_basis = table.pj("int8_mult") + table.pj("int32_add"), "int8_mult + int32_add"
    elif mac == "fp32":
        mac_pj, mac_basis = table.pj("fp32_mult") + table.pj("fp32_add"), "fp32_mult + fp32_add"
    else:
        raise ValueError(f"unknown MAC arithmetic {mac!r}")
    table_pj, table_basis = sram_access(table, WORD_BITS)
    get = lambda k: c.get(k, 0)  # noqa: E731 - a counter a backend lacks is zero
    return [
        Event("dram", "DRAM 32-bit words read", get("dram_read_words"), dram, "dram_32b"),
        Event("dram", "DRAM 32-bit words written", get("dram_write_words"), dram, "dram_32b"),
        Event("sram", f"activation SRAM reads ({lanes * act_bits} bits)", get("sram_reads"),
              sram_pj, sram_basis),
        Event("sram", f"activation SRAM writes ({lanes * act_bits} bits)", get("sram_writes"),
              sram_pj, sram_basis),
        Event("rom", f"codebook ROM reads ({lanes * LANE_BITS} bits)", get("rom_reads"), rom_pj, rom_basis),
        Event("mac", f"{mac} multiply-accumulates", get("macs"), mac_pj, mac_basis),
        Event("add", "adds (PVQ pulses, other)", get("adds"), table.pj("int32_add"), "int32_add"),
        Event("huffman", "Huffman symbols (one 32-bit table read each)", get("huffman_symbols"),
              table_pj, table_basis),
        Event("control", "clock cycles", cycles, table.pj("control_per_cycle"), "control_per_cycle"),
    ]


#: How each counter is priced in the engine scenario (shown in the report).
COUNTER_MAPPING = (
    ("dram_read_words, dram_write_words", "one DRAM 32-bit access each", "dram_32b"),
    ("sram_reads, sram_writes", "one activation-SRAM access of `lanes` x 8 bits",
     "sram_8kb_32b x lanes*8/32 (assumption: energy linear in width; matches the table's "
     "8 KB 32-bit and 64-bit entries)"),
    ("rom_reads", "one codebook-ROM read of `lanes` x 8 bits", "rom_32b x lanes*8/32 (assumption)"),
    ("macs", "one int8 multiply and one 32-bit accumulate",
     "int8_mult + int32_add (assumption: the accumulator is 32-bit)"),
    ("adds", "one 32-bit add", "int32_add"),
    ("huffman_symbols", "one 32-bit Huffman-table SRAM read per decoded symbol", "sram_8kb_32b (assumption)"),
    ("huffman_bits", "not priced: the coded bits are already counted as DRAM words", "-"),
    ("huffman_busy_cycles", "not priced: the cycles are already in the control overhead", "-"),
    ("cycles", "control and register overhead per cycle: the RTL's per-layer cycle counts if given, "
     "else its total split across layers by ideal cycles, else the ideal cycles (MACs / lanes, plus one per "
     "PVQ pulse)", "control_per_cycle (assumption)"),
    ("stall_cycles", "not priced separately: stalls are part of `cycles`", "-"),
)
#: Every counter name the mapping above covers.  A counter outside this set is
#: refused rather than silently left out of the energy.
MAPPED_COUNTERS = frozenset(name.strip() for row in COUNTER_MAPPING for name in row[0].split(","))


#: Where a part's cycle count comes from (see `part_cycles`).
CYCLES_MEASURED = "RTL cycle counter"
CYCLES_SPLIT = ("RTL total cycle counter, split across layers in proportion to their ideal cycles "
                "(MACs / lanes, plus one per PVQ pulse; one per Huffman symbol in sparse layers)")
CYCLES_ESTIMATED = ("estimated as MACs / lanes plus one per PVQ pulse, one per Huffman symbol in sparse layers "
                    "(no RTL cycle counter in the data)")
#: PVQ pulses the engine's PVQ unit decodes and adds per cycle.
PVQ_PULSES_PER_CYCLE = 1


def ideal_cycles(c: Mapping[str, float], lanes: int) -> float:
    """Cycles of an ideal schedule for a layer's counters: ``lanes`` MACs, or one PVQ pulse, per cycle."""
    return c.get("macs", 0) / lanes + c.get("adds", 0) / PVQ_PULSES_PER_CYCLE


def layer_ideal_cycles(net: NetworkData, i: int) -> float:
    """Ideal cycles per inference of layer ``i``: `ideal_cycles`, or one symbol per cycle (`HUFFMAN`)."""
    c = net.counters(i)
    return c.get("huffman_symbols", 0) if net.layers[i].mode == HUFFMAN else ideal_cycles(c, net.lanes)


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


# --------------------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class LayerCost:
    """A scenario's events for one layer and the bits its weight stream takes.

    Parameters
    ----------
    events : list of Event
    weight_bits : float
        Bits of weight data (stream plus any per-inference codebook load).
    """
    events: list
    weight_bits: float


@dataclass(frozen=True)
class Scenario:
    """A way of running the network whose energy the report compares.

    Parameters
    ----------
    key : str
        Short name used in energy.json.
    title : str
        Name in tables and plots.
    derivation : str
        How its events follow from the counters and shapes (Markdown).
    cost : callable
        ``cost(net, layer_index, table) -> LayerCost``.
    io_cost : callable
        ``io_cost(net, table) -> LayerCost`` for the job-level counters.
    modes : frozenset of str
        Layer modes (`LAYER_MODES`) the scenario can price; it applies to a
        network whose every layer has one of them.
    reference : bool
        The scenario prices the counters as measured: the engine itself, which
        the report compares the others against.
    when : callable or None
        ``when(net) -> bool``, a further condition (e.g. on ``net.method``); None: none.
    """
    key: str
    title: str
    derivation: str
    cost: Callable[[NetworkData, int, EnergyTable], LayerCost]
    io_cost: Callable[[NetworkData, EnergyTable], LayerCost]
    modes: frozenset = frozenset((VQ,))
    reference: bool = False
    when: Callable[[NetworkData], bool] | None = None

    def applies(self, net: NetworkData) -> bool:
        """True if every layer of ``net`` has a mode this scenario prices (and ``when`` allows it)."""
        return all(layer.mode in self.modes for layer in net.layers) and (self.when is None or self.when(net))


def engine_io_cost(net: NetworkData, table: EnergyTable) -> LayerCost:
    """The job-level counters (header, input load, output store) priced as the engine does.

    Parameters
    ----------
    net : NetworkData
    table : EnergyTable
    """
    return LayerCost(counter_events(net.counters(IO), net.lanes, table, cycles=part_cycles(net, IO)[0]), 0.0)


#: Registered scenarios, in report order.  Add one with `register_scenario`.
SCENARIOS: dict[str, Scenario] = {}


def register_scenario(key: str, title: str, derivation: str,
                      io_cost: Callable[[NetworkData, EnergyTable], LayerCost] = engine_io_cost,
                      modes: Sequence[str] = (VQ,), reference: bool = False,
                      when: Callable[[NetworkData], bool] | None = None):
    """Decorator adding ``cost(net, layer_index, table) -> LayerCost`` to `SCENARIOS`.

    Parameters
    ----------
    key : str
        Short name (energy.json's ``scenario``).
    title : str
        Display name.
    derivation : str
        One paragraph for the report on how the events are obtained.
    io_cost : callable
        ``io_cost(net, table) -> LayerCost`` for the job-level counters; the
        engine's own pricing unless the scenario changes the I/O.
    modes : sequence of str
        Layer modes the scenario can price (default: codebook VQ layers only,
        so a scenario that assumes a codebook is never applied to PVQ layers).
    reference : bool
        The scenario is the engine as measured (one per mode set).
    when : callable, optional
        ``when(net) -> bool``: apply only to such networks, e.g.
        ``when=lambda net: net.method == "universal"``.
    """
    unknown = set(modes) - set(LAYER_MODES)
    if unknown or not modes:
        raise ValueError(f"scenario {key!r}: modes must be a non-empty subset of {', '.join(LAYER_MODES)}")

    def wrap(fn):
        if key in SCENARIOS:
            raise ValueError(f"scenario {key!r} registered twice")
        SCENARIOS[key] = Scenario(key, title, derivation, fn, io_cost, frozenset(modes), reference, when)
        return fn
    return wrap


def scenarios_for(net: NetworkData) -> list[str]:
    """Keys of the registered scenarios that apply to ``net``, in registry order."""
    return [key for key, sc in SCENARIOS.items() if sc.applies(net)]


def _weights_substituted(net: NetworkData, layer: int, stream_words: float) -> dict[str, float]:
    """The layer's counters with the engine's index stream replaced by ``stream_words``."""
    c = dict(net.counters(layer))
    engine_stream = net.layers[layer].index_stream_words(net.lanes)
    if c.get("dram_read_words", 0) < engine_stream:
        raise ValueError(f"{net.name} layer {layer}: {c.get('dram_read_words', 0)} DRAM words read per "
                         f"inference, fewer than its {engine_stream}-word index stream")
    c["dram_read_words"] = c["dram_read_words"] - engine_stream + stream_words
    return c


def dense_counters(net: NetworkData, i: int, weight_words: int) -> tuple[dict[str, float], float]:
    """Counters and cycles per inference of a dense engine running layer ``i``, from its shape alone.

    The dense engine has the same ``lanes``-wide datapath and reads, per layer,
    the descriptor, then per row the bias and requantization words and
    ``weight_words / out_features`` words of weights; it reads each
    ``lanes``-wide activation beat once and multiplies every lane
    (``out x ceil(in / lanes) x lanes`` MACs, the padding lanes included, as
    the codebook engine counts them), one beat per cycle.  Only the output
    writes (activation SRAM, and DRAM if a layer writes any) are taken from the
    measured counters: they depend on ``out_features`` alone.  Nothing depends on how the engine coded
    the weights, so every coding of one network gets the same baselines.

    Parameters
    ----------
    net : NetworkData
    i : int
        Layer index.
    weight_words : int
        DRAM words of the layer's dense weights (all rows).

    Returns
    -------
    (dict, float)
        Counters, and cycles for the control overhead.
    """
    layer = net.layers[i]
    beats = layer.indices(net.lanes)
    measured = net.counters(i)
    c = {"dram_read_words": DESC_WORDS + layer.out_features * ROW_HEADER_WORDS + weight_words,
         "dram_write_words": measured.get("dram_write_words", 0), "sram_reads": beats,
         "sram_writes": measured.get("sram_writes", 0), "macs": beats * net.lanes}
    return c, float(beats)


def _fp32_io(net: NetworkData, table: EnergyTable) -> LayerCost:
    # fp32 input and output vectors take 4x the words of int8 ones; the job
    # header (read once per job) does not grow.
    c = dict(net.counters(IO))
    header = JOB_WORDS / net.images
    reads = c.get("dram_read_words", 0)
    widen = FP32_BITS / LANE_BITS
    c["dram_read_words"] = min(reads, header) + max(reads - header, 0) * widen
    c["dram_write_words"] = c.get("dram_write_words", 0) * widen
    return LayerCost(counter_events(c, net.lanes, table, cycles=part_cycles(net, IO)[0],
                                    act_bits=FP32_BITS, mac="fp32"), 0.0)


@register_scenario(
    "fp32", "(a) dense fp32 from DRAM",
    "Deep Compression's baseline, from the layer shapes alone (the same for every coding of the "
    "network): per layer the descriptor, per row the bias and requantization words, and one 32-bit "
    "DRAM word per weight (`in x out` words); one read of each `lanes`-wide activation beat and "
    "`lanes` MACs per beat, one beat per cycle; no codebook. Activations are fp32, so each "
    "activation-SRAM access is 4x as wide and the input and output vectors take 4x the DRAM words; "
    "each MAC is an fp32 multiply plus an fp32 add.", io_cost=_fp32_io, modes=LAYER_MODES)
def _fp32(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    layer = net.layers[i]
    c, cycles = dense_counters(net, i, layer.weights)
    events = counter_events(c, net.lanes, table, cycles=cycles, act_bits=FP32_BITS, mac="fp32")
    return LayerCost(events, layer.weights * FP32_BITS)


@register_scenario(
    "int8", "(b) dense int8 from DRAM",
    "As (a), from the layer shapes alone, but with dense int8 weights, four to a 32-bit DRAM word, "
    "each row padded to a whole word (`out x ceil(in/4)` words), int8 activations, and an int8 "
    "multiply plus 32-bit accumulate per MAC, as in the engine.", modes=LAYER_MODES)
def _int8(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    layer = net.layers[i]
    words = layer.out_features * ceil_div(layer.in_features, INT8_PER_WORD)
    c, cycles = dense_counters(net, i, words)
    return LayerCost(counter_events(c, net.lanes, table, cycles=cycles), words * WORD_BITS)


def _codebook_words(layer: LayerInfo, lanes: int) -> int:
    return ceil_div(layer.codebook_size * lanes, WORD_BYTES)


@register_scenario(
    "vq_sram", "(c) VQ, per-layer codebook in SRAM",
    "Traditional VQ: the same index stream, MACs and activation traffic as the engine, but each "
    "layer's codebook (`K` codewords of `lanes` bytes) is read from DRAM once per inference "
    "(`ceil(K x lanes / 4)` words) and written into a codebook SRAM (`K` lane-wide writes); every "
    "engine ROM read becomes a lane-wide read of that SRAM.")
def _vq_sram(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    layer = net.layers[i]
    c = dict(net.counters(i))
    load = _codebook_words(layer, net.lanes)
    c["dram_read_words"] = c.get("dram_read_words", 0) + load
    reads = c.pop("rom_reads", 0)
    width = net.lanes * LANE_BITS
    pj, basis = sram_access(table, width)
    events = counter_events(c, net.lanes, table, cycles=part_cycles(net, i)[0])
    events += [Event("codebook_sram", f"codebook SRAM writes ({width} bits)", layer.codebook_size, pj, basis),
               Event("codebook_sram", f"codebook SRAM reads ({width} bits)", reads, pj, basis)]
    bits = (layer.index_stream_words(net.lanes) + load) * WORD_BITS
    return LayerCost(events, bits)


@register_scenario(
    "engine", "(d) this engine, codebook in ROM",
    "The counters as measured (golden model; equal to the RTL's), priced with the counter mapping "
    "above.", reference=True)
def _engine(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    layer = net.layers[i]
    events = counter_events(net.counters(i), net.lanes, table, cycles=part_cycles(net, i)[0])
    return LayerCost(events, layer.index_stream_words(net.lanes) * WORD_BITS)


def _at_entropy(net: NetworkData, i: int, table: EnergyTable, cost) -> LayerCost:
    """``cost(counters, cycles)`` with layer ``i``'s stream coded at its entropy (bits, no padding)."""
    layer = net.layers[i]
    if not layer.index_histogram:
        raise ValueError(f"{net.name} layer {i}: no index histogram, cannot compute the entropy floor")
    bits = layer.indices(net.lanes) * layer.entropy_bits()
    c = _weights_substituted(net, i, bits / WORD_BITS)
    return LayerCost(cost(c, part_cycles(net, i)[0]), bits)


@register_scenario(
    "entropy_floor", "floor: (d) with indices at entropy",
    "The engine with its index stream coded at the Shannon entropy `H` of each layer's index "
    "distribution: `indices x H / 32` DRAM words (fractional, no padding, no decoder cost). A lower "
    "bound for any lossless coding of the same indices with a per-layer static code.")
def _entropy_floor(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    return _at_entropy(net, i, table, lambda c, cycles: counter_events(c, net.lanes, table, cycles=cycles))


def pvq_engine_events(net: NetworkData, i: int, table: EnergyTable, c: Mapping[str, float]) -> list[Event]:
    """A PVQ layer's events: its counters, plus one scale multiply per sub-vector.

    The counters count one add per pulse and no MACs; the PVQ unit also
    multiplies each sub-vector's pulse sum by its 8-bit scale and adds it to
    the accumulator.  No counter records that, so it is derived from the
    shape (``out x ceil(in / lanes)`` per inference) and priced as one int8
    MAC (assumption: an 8-bit scale times a sum of at most ``K`` int8 values).
    """
    events = counter_events(c, net.lanes, table, cycles=part_cycles(net, i)[0])
    return events + [Event("mac", "PVQ scale multiplies (one per sub-vector, derived from the shape)",
                           net.layers[i].indices(net.lanes), table.pj("int8_mult") + table.pj("int32_add"),
                           "int8_mult + int32_add")]


@register_scenario(
    "pvq_engine", "(e) this engine, PVQ unit: adds, no codebook",
    "Pyramid VQ layers: the counters as measured (golden model; equal to the RTL's), priced with "
    "the counter mapping above: one 32-bit add per pulse (`adds`, K per sub-vector) instead of "
    "`lanes` MACs, no codebook ROM or SRAM, and row-stream entries of enumeration index plus 8-bit "
    "scale. Added: one scale multiply per sub-vector (`out x ceil(in/lanes)`, no counter records "
    "it), priced as an int8 MAC.", modes=(PVQ,), reference=True)
def _pvq_engine(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    layer = net.layers[i]
    return LayerCost(pvq_engine_events(net, i, table, net.counters(i)),
                     layer.index_stream_words(net.lanes) * WORD_BITS)


@register_scenario(
    "pvq_entropy_floor", "floor: (e) with entries at entropy",
    "The PVQ engine with each row-stream entry coded at the Shannon entropy of the layer's "
    "enumeration indices plus that of its scales (two per-layer static codes): `entries x H / 32` "
    "DRAM words (fractional, no padding, no decoder cost).", modes=(PVQ,))
def _pvq_entropy_floor(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    return _at_entropy(net, i, table, lambda c, cycles: pvq_engine_events(net, i, table, c))


@register_scenario(
    "deepcomp_engine", "(f) this engine, sparse Huffman-coded rows",
    "Deep Compression layers: the counters as measured (golden model; equal to the RTL's), priced "
    "with the counter mapping above. The DRAM words are the layer's whole stream: size and "
    "requantization words, Huffman table, one header word per row and the codes. One MAC, one "
    "activation-SRAM read and one ROM read (the scalar centroid's lane-word) per stored non-zero "
    "weight; a filler costs only its decode. Each decoded symbol is priced as one Huffman-table "
    "SRAM read; the cycles are one per symbol plus the measured overheads.", modes=(HUFFMAN,), reference=True)
def _deepcomp_engine(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    layer = net.layers[i]
    events = counter_events(net.counters(i), net.lanes, table, cycles=part_cycles(net, i)[0])
    return LayerCost(events, layer.stream_words * WORD_BITS)


def sparse_code_bits(net: NetworkData, i: int) -> tuple[float, float]:
    """(measured Huffman code bits, the same symbols at the joint-symbol entropy) per inference of layer ``i``."""
    layer = net.layers[i]
    return net.counters(i).get("huffman_bits", 0.0), layer.symbols * layer.entropy_bits()


@register_scenario(
    "deepcomp_entropy_floor", "floor: (f) with codes at entropy",
    "The sparse engine with each layer's codes at the Shannon entropy `H` of its joint (run, index) "
    "symbols: the measured stream less the Huffman code bits plus `symbols x H` bits, in fractional "
    "words (headers, tables and padding kept, decoder cost kept). How far the length-limited "
    "canonical code is from the best static code of the same symbols.", modes=(HUFFMAN,))
def _deepcomp_entropy_floor(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    layer = net.layers[i]
    measured, floor = sparse_code_bits(net, i)
    c = dict(net.counters(i))
    c["dram_read_words"] = c["dram_read_words"] - (measured - floor) / WORD_BITS
    events = counter_events(c, net.lanes, table, cycles=part_cycles(net, i)[0])
    return LayerCost(events, layer.stream_words * WORD_BITS - measured + floor)


# --------------------------------------------------------------------------- results

@dataclass
class ScenarioEnergy:
    """A scenario's energy for one network.

    Parameters
    ----------
    scenario : Scenario
    parts : dict
        `LayerCost` per layer index, and for `IO` if the network has job-level counters.
    weights : int
        Weights in the network.
    """
    scenario: Scenario
    parts: dict
    weights: int

    def by_component(self, part: int | str | None = None) -> dict[str, float]:
        """Picojoules per component, for one layer (or `IO`) or, with None, the network."""
        costs = self.parts.values() if part is None else [self.parts[part]]
        out: dict[str, float] = {}
        for cost in costs:
            for e in cost.events:
                out[e.component] = out.get(e.component, 0.0) + e.pj
        return out

    def total(self, part: int | str | None = None) -> float:
        """Picojoules per inference, for one layer (or `IO`) or, with None, the network."""
        return sum(self.by_component(part).values())

    @property
    def bits_per_weight(self) -> float:
        return sum(c.weight_bits for c in self.parts.values()) / self.weights

    def events(self) -> list[Event]:
        """Events summed over the network, merged by (component, what, basis)."""
        merged: dict[tuple, Event] = {}
        for cost in self.parts.values():
            for e in cost.events:
                key = (e.component, e.what, e.basis)
                prev = merged.get(key)
                merged[key] = e if prev is None else Event(e.component, e.what, prev.count + e.count,
                                                           e.pj_each, e.basis)
        return list(merged.values())


def network_energy(net: NetworkData, table: EnergyTable,
                   scenarios: Sequence[str] | None = None) -> dict[str, ScenarioEnergy]:
    """Energy of every scenario for one network.

    Parameters
    ----------
    net : NetworkData
    table : EnergyTable
    scenarios : sequence of str, optional
        Scenario keys; all that apply to the network (`scenarios_for`) if omitted.

    Returns
    -------
    dict of str to ScenarioEnergy
        Keyed by scenario, in registry order.

    Raises
    ------
    ValueError
        If a scenario is unknown or does not apply to the network's layer modes.
    """
    keys = scenarios_for(net) if scenarios is None else list(scenarios)
    out = {}
    for key in keys:
        if key not in SCENARIOS:
            raise ValueError(f"unknown scenario {key!r}; registered: {', '.join(SCENARIOS)}")
        sc = SCENARIOS[key]
        if not sc.applies(net):
            modes = sorted({layer.mode for layer in net.layers} - sc.modes)
            raise ValueError(f"scenario {key!r} does not apply to {net.name}: it prices {', '.join(sorted(sc.modes))} "
                             f"layers, not {', '.join(modes)}")
        parts = {p: (sc.io_cost(net, table) if p == IO else sc.cost(net, p, table)) for p in net.parts}
        out[key] = ScenarioEnergy(sc, parts, net.weights)
    return out


def energy_records(net: NetworkData, results: Mapping[str, ScenarioEnergy]) -> list[dict]:
    """energy.json records: ``{network, scenario, layer, component, pj}``.

    ``layer`` is the layer index, "io" for the job-level part (header, input,
    output), or "total" for the network's sum.

    Parameters
    ----------
    net : NetworkData
    results : mapping
        Output of `network_energy`.
    """
    records = []
    for key, res in results.items():
        for part in [*net.parts, None]:
            for comp, pj in res.by_component(part).items():
                records.append({"network": net.name, "scenario": key,
                                "layer": "total" if part is None else part,
                                "component": comp, "pj": pj})
    return records
