"""The dense baselines, (a) fp32 and (b) int8: every layer kind, from the layer shapes alone.

Nothing here depends on how the engine coded the weights, so every coding of
one network (k-means VQ, PVQ, Deep Compression) gets the same baselines.

A convolution is priced as a dense engine would run it: its weights read from
DRAM once per image and kept in a buffer while the window slides (an
assumption that favours the baseline: the engine without a weight SRAM reads
its stream at every output position), and at every output position each row
against the window (MACs and activation reads ``positions x out x ceil(in /
lanes)`` lane-words).  A pooling layer has no weights: its activation reads and
writes as measured (`dense_rowless_cost`).
"""
from __future__ import annotations

from model.contract.ints import ceil_div
from model.contract.layout import DESC_WORDS, JOB_WORDS, ROW_HEADER_WORDS, WORD_BITS, WORD_BYTES
from sim.report.energy.events import FP32_BITS, LANE_BITS, LayerCost, counter_events
from sim.report.energy.network import IO, NetworkData, layer_ideal_cycles, part_cycles
from sim.report.energy.registry import register_scenario
from sim.report.energy.table import EnergyTable

#: Dense int8 weights in one 32-bit DRAM word.
INT8_PER_WORD = WORD_BYTES


def dense_counters(net: NetworkData, i: int, weight_words: int) -> tuple[dict[str, float], float]:
    """Counters and cycles per inference of a dense engine running layer ``i``, from its shape alone.

    The dense engine has the same ``lanes``-wide datapath and reads, per layer
    and image, the descriptor, then per row the bias and requantization words and
    ``weight_words / out_features`` words of weights, once: a convolution keeps
    them in a buffer while its window slides over the map (an assumption, in the
    baseline's favour).  At every output position (one for FC) it reads each
    ``lanes``-wide activation beat of each row once and multiplies every lane
    (``positions x out x ceil(in / lanes) x lanes`` MACs, the padding lanes
    included, as the codebook engine counts them), one beat per cycle.  Only the
    output writes (activation SRAM, and DRAM if a layer writes any) are taken
    from the measured counters: they depend on ``out_features`` and the output
    positions alone.  Nothing depends on how the engine coded the weights, so
    every coding of one network gets the same baselines.

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
    beats = layer.beats(net.lanes)
    measured = net.counters(i)
    c = {"dram_read_words": DESC_WORDS + layer.out_features * ROW_HEADER_WORDS + weight_words,
         "dram_write_words": measured.get("dram_write_words", 0), "sram_reads": beats,
         "sram_writes": measured.get("sram_writes", 0), "macs": beats * net.lanes}
    return c, float(beats)


def dense_rowless_cost(act_bits: int, mac: str):
    """``rowless_cost`` of a dense baseline: a pooling layer's counters as measured (its descriptor, its
    activation reads and writes), activations ``act_bits`` wide, one cycle per lane-word of taps."""
    def cost(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
        return LayerCost(counter_events(net.counters(i), net.lanes, table, memories=net.memories,
                                        cycles=layer_ideal_cycles(net, i), act_bits=act_bits, mac=mac), 0.0)
    return cost


def fp32_io_cost(net: NetworkData, table: EnergyTable) -> LayerCost:
    """The job-level counters with fp32 input and output vectors (the job header does not grow)."""
    # fp32 input and output vectors take 4x the words of int8 ones; the job
    # header (read once per job) does not grow.
    c = dict(net.counters(IO))
    header = JOB_WORDS / net.images
    reads = c.get("dram_read_words", 0)
    widen = FP32_BITS / LANE_BITS
    c["dram_read_words"] = min(reads, header) + max(reads - header, 0) * widen
    c["dram_write_words"] = c.get("dram_write_words", 0) * widen
    return LayerCost(counter_events(c, net.lanes, table, memories=net.memories, cycles=part_cycles(net, IO)[0],
                                    act_bits=FP32_BITS, mac="fp32"), 0.0)


@register_scenario(
    "fp32", "(a) dense fp32 from DRAM",
    "Deep Compression's baseline, from the layer shapes alone (the same for every coding of the "
    "network): per layer and image the descriptor, per row the bias and requantization words, and one "
    "32-bit DRAM word per weight (`in x out` words), read once per image (a convolution's too: "
    "assumed kept in a buffer while the window slides, in the baseline's favour); at every output "
    "position (one for FC, the window's positions for a convolution) one read of each `lanes`-wide "
    "activation beat of each row and `lanes` MACs per beat (`positions x out x ceil(in/lanes)` beats), "
    "one beat per cycle; no codebook. A pooling layer has no weights: its descriptor and activation reads "
    "and writes as measured. Activations are fp32, so each "
    "activation-SRAM access is 4x as wide, the SRAM holds the same activations in 4x the bytes (and is "
    "priced at that capacity), and the input and output vectors take 4x the DRAM words; "
    "each MAC is an fp32 multiply plus an fp32 add.", io_cost=fp32_io_cost,
    rowless_cost=dense_rowless_cost(FP32_BITS, "fp32"))
def _fp32(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """Layer ``i`` on a dense fp32 engine: fp32 weights from DRAM, fp32 activations and MACs."""
    layer = net.layers[i]
    c, cycles = dense_counters(net, i, layer.weights)
    events = counter_events(c, net.lanes, table, memories=net.memories, cycles=cycles, act_bits=FP32_BITS,
                            mac="fp32")
    return LayerCost(events, layer.weights * FP32_BITS)


@register_scenario(
    "int8", "(b) dense int8 from DRAM",
    "As (a), from the layer shapes alone (convolution weights read once per image, pooling as measured), "
    "but with dense int8 weights, four to a 32-bit DRAM word, "
    "each row padded to a whole word (`out x ceil(in/4)` words), int8 activations, and an int8 "
    "multiply plus 32-bit accumulate per MAC, as in the engine.", rowless_cost=dense_rowless_cost(LANE_BITS, "int8"))
def _int8(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """Layer ``i`` on a dense int8 engine: int8 weights from DRAM, four to a word."""
    layer = net.layers[i]
    words = layer.out_features * ceil_div(layer.in_features, INT8_PER_WORD)
    c, cycles = dense_counters(net, i, words)
    return LayerCost(counter_events(c, net.lanes, table, memories=net.memories, cycles=cycles), words * WORD_BITS)
