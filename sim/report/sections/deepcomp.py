"""The report's Deep Compression section: the per-layer table and DRAM traffic against the entropy floor.

The per-layer table follows Deep Compression's Table 2 (Han, Mao, Dally 2015):
weights, density, index bits before and after Huffman coding, relative-index
bits, table and header overheads, and each layer's ratio against fp32.  Its
numbers are the program's own bit counts (``model.codecs.sparse_rows.layer_bits``,
recorded in the program file).  The traffic table compares the DRAM words the
golden model (equal to the RTL) reads per inference with the same stream whose
codes are at the entropy of the layer's joint (run, index) symbols.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from model.contract.layout import DESC_WORDS, WORD_BITS
from sim.report.energy.events import FP32_BITS
from sim.report.energy.measured import sparse_code_bits
from sim.report.energy.network import HUFFMAN, NetworkData


def layer_table(meta: Mapping) -> list[str]:
    """Deep Compression's Table 2 for one program, from its recorded bit counts (fp32 counts weights and biases)."""
    rows = []
    total_fp32 = 0
    for i, layer in enumerate(meta["layers"]):
        sp = layer["sparse"]
        fp32 = FP32_BITS * (sp["weights"] + layer["out_features"])
        total_fp32 += fp32
        rows.append(f"| fc{i + 1} | {sp['weights']:,} | {100 * sp['kept'] / sp['weights']:.1f} % | "
                    f"{sp['symbols']:,} ({sp['fillers']:,}) | {sp['index_bits']:,} | {sp['rel_bits']:,} | "
                    f"{sp['huffman_bits']:,} | {sp['average_length']:.2f} / {sp['entropy']:.2f} | "
                    f"{sp['table_bits']:,} | {sp['header_bits']:,} | {sp['padding_bits']:,} | "
                    f"{sp['total_bits']:,} | {fp32 / sp['total_bits']:.1f}x |")
    c = meta["compression"]
    return ["| layer | weights | kept | symbols (fillers) | index bits before Huffman | relative-index bits | "
            "Huffman bits (index + run, joint) | mean code length / entropy, bits | table bits | row-header bits | "
            "padding bits | layer total bits | vs fp32 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|", *rows,
            f"| **total** | {c['weights']:,} | {100 * c['sparse']['kept'] / c['weights']:.1f} % | "
            f"{c['sparse']['symbols']:,} ({c['sparse']['fillers']:,}) | {c['sparse']['index_bits']:,} | "
            f"{c['sparse']['rel_bits']:,} | {c['sparse']['huffman_bits']:,} | | {c['sparse']['table_bits']:,} | "
            f"{c['sparse']['header_bits']:,} | {c['sparse']['padding_bits']:,} | {8 * c['bytes']:,} (all in) | "
            f"**{c['ratio_vs_fp32']:.1f}x** |"]


def traffic_table(net: NetworkData) -> list[str]:
    """Measured DRAM words per inference of each sparse layer against its codes at entropy."""
    rows = []
    tot_m = tot_f = 0.0
    for i, layer in enumerate(net.layers):
        if layer.mode != HUFFMAN:
            continue
        c = net.counters(i)
        measured, floor = sparse_code_bits(net, i)
        words = c["dram_read_words"]
        at_floor = words - (measured - floor) / WORD_BITS
        tot_m += words
        tot_f += at_floor
        rate = c["huffman_symbols"] / c["huffman_busy_cycles"] if c.get("huffman_busy_cycles") else float("nan")
        rows.append(f"| fc{i + 1} | {words:,.0f} | {DESC_WORDS + layer.stream_words - measured / WORD_BITS:,.0f} | "
                    f"{measured / WORD_BITS:,.0f} | {floor / WORD_BITS:,.1f} | {at_floor:,.1f} | "
                    f"{words / at_floor:.4f} | {rate:.3f} |")
    return ["| layer | DRAM words read (measured) | of which descriptor, size words, table, row headers, padding | of which codes | "
            "codes at entropy | words at the floor | measured / floor | symbols per busy decoder cycle |",
            "|---|---|---|---|---|---|---|---|", *rows,
            f"| **all** | {tot_m:,.0f} | | | | {tot_f:,.1f} | {tot_m / tot_f:.4f} | |"]


def deepcomp_section(results: Sequence[tuple], metas: Mapping[str, Mapping]) -> list[str]:
    """Markdown for every reported deepcomp program (empty if there is none).

    Parameters
    ----------
    results : sequence of (NetworkData, dict)
        The reported programs with their `sim.report.energy.pricing.network_energy`.
    metas : dict
        Network name -> its program's metadata.
    """
    lines = []
    for net, res in results:
        meta = metas.get(net.name)
        if meta is None or meta.get("method") != "deepcomp":
            continue
        info = meta["info"]
        cfg = info.get("config", {})
        eng = res.get("deepcomp_engine")
        floor = res.get("deepcomp_entropy_floor")
        fp32 = res.get("fp32")
        lines += ["## Deep Compression: pruning, trained quantization, Huffman-coded sparse rows", "",
                  f"`vqe compress --network {meta['network']} --method deepcomp` (`model/deepcomp.py`): "
                  "iterative magnitude pruning with retraining, trained scalar quantization (shared centroids "
                  "fine-tuned with per-centroid gathered gradients, centroid 0 the exact zero of fillers), "
                  "sparse rows of (run, index) symbols with fillers where a gap overflows the run field, one "
                  "length-limited canonical Huffman table per layer, decoded by the engine at one symbol per "
                  f"cycle. Recipe: densities {cfg.get('densities')}, index bits {cfg.get('bits')}. "
                  f"Accuracy on the {info.get('test_images', 10000)} Fashion-MNIST test images: float "
                  f"{100 * info['float_accuracy']:.2f} %, int8 golden model (what the engine computes) "
                  f"**{100 * info['int8_accuracy']:.2f} %**.", "",
                  "### Per layer (as Deep Compression's Table 2)", "", *layer_table(meta), "",
                  "The total's bytes count everything the engine stores: job header, descriptors, size and "
                  "requantization words, tables, row headers, codes, padding and the ROM's centroids.", "",
                  "### DRAM traffic against the entropy floor", "",
                  "Per inference, from the golden model's counters (equal to the RTL's); the floor keeps every "
                  "header, table and padding word and codes each symbol at the entropy of its layer's joint "
                  "(run, index) distribution.", "", *traffic_table(net), ""]
        if eng is not None and fp32 is not None:
            lines += [f"Energy per inference: **{eng.total() / 1e6:.2f} µJ** on this engine, "
                      f"{floor.total() / 1e6:.2f} µJ at the entropy floor, against {fp32.total() / 1e6:.1f} µJ "
                      f"for dense fp32 ({fp32.total() / eng.total():.1f}x).", ""]
    return lines
