"""Column-wise sparse layers (``LayerMode.COLUMNS``): EIE's dataflow in the engine's column unit.

The stream format, the unit's allocation and the counters are in
:mod:`model.contract.layout` ("Column-wise sparse layers"); the layout of the
kept weights among the slots is :mod:`model.codecs.sparse_columns`.
"""
from __future__ import annotations

import numpy as np

from model.codecs.layers.base import (DecodedLayer, LayerCodec, LayerImage, WriteContext, requant_words, row_params,
                                      split_requant)
from model.codecs.sparse_columns import place_columns
from model.contract.config import COLUMN_SIZE_MAX, EngineConfig
from model.contract.descriptor import Descriptor, read_words
from model.contract.errors import EngineError, EngineFault, ProgramError
from model.contract.fixedpoint import ACT_MAX, ACT_MIN
from model.contract.ints import ceil_div
from model.codecs.layers.kinds import lane_words
from model.contract.layout import (COLUMN_CENTROIDS_PER_WORD, COLUMN_ENTRY_BITS, COLUMN_K_MAX, COLUMN_ROW_BITS,
                                   COLUMN_ROWS_MAX, DESC_WORDS, FIELD16, LayerKind, LayerMode)


def size_word(body_words: int) -> tuple[int, int]:
    """The size word's ``(cmd_rows, cmd_row_words)`` for a body of ``body_words``: the least product
    that holds it with ``cmd_row_words <= FIELD16`` (the rest is padding)."""
    rows = max(1, ceil_div(body_words, FIELD16))
    return rows, max(1, ceil_div(body_words, rows))


def local_rows(out_features: int, slots: int) -> int:
    """A COLUMNS layer's local rows per slot."""
    return ceil_div(out_features, slots)


class ColumnsCodec(LayerCodec):
    """Scalar centroids and, per slot, its rows' biases, a column table and the kept weights column by
    column; held in the engine's column unit from image 0 on, one kept weight a cycle in each slot."""
    name = "columns"
    mode = LayerMode.COLUMNS
    scenarios = ("columns_engine",)

    def write(self, i: int, layer, ctx: WriteContext) -> LayerImage:
        if ctx.shared_rom:
            raise ProgramError("column-wise sparse layers keep their centroids in their own stream, not a shared ROM")
        bias, mult, shift, act = row_params(i, layer)
        if np.any(act != 0) or getattr(layer, "floor", False):
            raise ProgramError(f"layer {i}: a column-wise sparse layer's activation is ReLU or none")
        if len(mult) and (np.any(mult != mult[0]) or np.any(shift != shift[0])):
            raise ProgramError(f"layer {i}: a column-wise sparse layer has one requantization for all its rows")
        cb = np.asarray(layer.codebook)
        if cb.ndim != 2 or cb.shape[1] != 1 or not 1 <= len(cb) <= COLUMN_K_MAX:
            raise ProgramError(f"layer {i}: a column-wise sparse layer needs 1..{COLUMN_K_MAX} scalar centroids of "
                               f"shape (k, 1), got {cb.shape}")
        if cb.min() < ACT_MIN or cb.max() > ACT_MAX or cb[0, 0] != 0:
            raise ProgramError(f"layer {i}: centroids must be int8, centroid 0 the exact zero")
        idx = np.asarray(layer.indices)
        if idx.shape != (layer.out_features, layer.in_features):
            raise ProgramError(f"layer {i}: index matrix shape {idx.shape} does not match the layer")
        if idx.size and (idx.min() < 0 or idx.max() >= len(cb)):
            raise ProgramError(f"layer {i}: centroid indices out of range 0..{len(cb) - 1}")
        slots = ctx.lanes
        rows = local_rows(layer.out_features, slots)
        if rows > COLUMN_ROWS_MAX:
            raise ProgramError(f"layer {i}: {layer.out_features} rows are {rows} per slot on {slots} lanes; "
                               f"the column unit takes {COLUMN_ROWS_MAX}")
        placed = place_columns(idx, slots, balanced=False)
        busiest = max(len(part.entry_rows) for part in placed.slots)
        if busiest > COLUMN_SIZE_MAX:
            raise ProgramError(f"layer {i}: {busiest} kept weights in one slot; a column word's 16-bit start "
                               f"addresses {COLUMN_SIZE_MAX}")
        body = [_centroid_words(cb[:, 0])]
        for part in placed.slots:
            local_bias = np.zeros(rows, dtype=np.int64)
            local_bias[:len(part.rows)] = bias[part.rows]
            entries = part.entry_rows | part.entry_index << COLUMN_ROW_BITS
            if len(entries) % 2:
                entries = np.append(entries, 0)
            body += [np.array([len(part.entry_rows)], dtype=np.int64), local_bias & 0xFFFFFFFF,
                     part.starts | part.counts << 16, entries[0::2] | entries[1::2] << COLUMN_ENTRY_BITS]
        body = np.concatenate(body).astype(np.uint32)
        cmd_rows, cmd_row_words = size_word(len(body))
        stream = np.zeros(1 + cmd_rows * cmd_row_words, dtype=np.uint32)
        stream[0] = cmd_rows | cmd_row_words << 16
        stream[1:1 + len(body)] = body
        rq = int(requant_words(mult[:1], shift[:1])[0]) if len(mult) else 0
        desc = Descriptor(layer.in_features, layer.out_features, rq & FIELD16, rq >> 16, ctx.stream_addr,
                          len(cb), layer.relu, self.mode, kept=placed.entries)
        return LayerImage(desc, stream, {"column_entries": [len(p.entry_rows) for p in placed.slots]})

    def engine_options(self, descs, metas=()) -> dict:
        """The column unit, sized for these layers together (each slot's entries: its own sum)."""
        if not descs:
            return {}
        slots = [m["column_entries"] for m in metas] if metas else []
        entries = max((sum(s) for s in zip(*slots)), default=1) if slots else 1
        if entries > COLUMN_SIZE_MAX:
            raise ProgramError(f"the column-wise layers keep {entries} weights in one slot; the column unit holds "
                               f"at most {COLUMN_SIZE_MAX} a slot")
        return {"column_entries": max(1, entries),
                "column_columns": sum(d.in_features for d in descs),
                "column_rows": sum(local_rows(d.out_features, len(slots[0]) if slots else 1) for d in descs),
                "column_centroids": sum(d.row_words for d in descs)}

    # --- engine ----------------------------------------------------------------------------
    def check(self, desc: Descriptor, cfg: EngineConfig, where: str) -> None:
        k = desc.row_words
        if not 1 <= k <= COLUMN_K_MAX:
            raise EngineFault(EngineError.BAD_CODEBOOK, f"{where}: {k} centroids; a column-wise layer takes "
                                                        f"1..{COLUMN_K_MAX}")
        if desc.resident:
            raise EngineFault(EngineError.BAD_STREAM, f"{where}: a column-wise layer is resident in the column unit, "
                                                      "not the weight SRAM")

    def stream_words(self, image, desc, where) -> int:
        size = int(read_words(image, desc.stream_addr, 1, f"{where} size word")[0])
        return 1 + (size & FIELD16) * (size >> 16)

    def decode(self, image, desc, cfg, layer, rom) -> DecodedLayer:
        """Read the stream as the column unit's loader does (first error first), after the unit's
        allocation of the job's earlier COLUMNS layers (:func:`allocation`)."""
        where = f"layer {layer}"
        used = allocation(image, cfg, layer)
        slots, k, n_in, out = cfg.lanes, desc.row_words, desc.in_features, desc.out_features
        rows = local_rows(out, slots)
        for name, need, have in (("centroids", used["centroids"] + k, cfg.column_centroids),
                                 ("local rows", used["rows"] + rows, cfg.column_rows),
                                 ("column-table entries", used["columns"] + n_in, cfg.column_columns)):
            if need > have:
                raise EngineFault(EngineError.BAD_STREAM, f"{where}: its {name} do not fit the column unit "
                                                          f"({need} of {have})")
        total = self.stream_words(image, desc, where) - 1
        body = read_words(image, desc.stream_addr + 1, total, f"{where} stream")
        reader = _Words(body, where)
        centroid_words = reader.take(ceil_div(k, COLUMN_CENTROIDS_PER_WORD), "its centroids")
        centroids = np.array([((int(w) >> (8 * b)) & 0xFF) ^ 0x80 for w in centroid_words
                              for b in range(COLUMN_CENTROIDS_PER_WORD)], dtype=np.int64)[:k] - 0x80
        dense = np.zeros((out, n_in), dtype=np.int64)
        bias = np.zeros(out, dtype=np.int64)
        kept_columns = np.zeros(n_in, dtype=np.int64)
        entries_per_slot = []
        for s in range(slots):
            slot = f"{where} slot {s}"
            (n_entries,) = (int(w) for w in reader.take(1, f"slot {s}'s header"))
            if used["entries"][s] + n_entries > cfg.column_entries:
                raise EngineFault(EngineError.BAD_STREAM, f"{slot}: {n_entries} entries do not fit the column unit "
                                                          f"({used['entries'][s] + n_entries} of {cfg.column_entries})")
            local_bias = reader.take(rows, f"slot {s}'s biases").astype(np.int64)
            local_bias = local_bias - ((local_bias >> 31) << 32)
            # Each section is checked word by word as the loader writes it: a bad word before the stream's
            # end is that word's error, and the end is BAD_STREAM only after every word that came.
            table = reader.some(n_in).astype(np.int64)
            starts, counts = table & FIELD16, table >> 16
            bad = np.flatnonzero(starts + counts > n_entries)
            if len(bad):
                raise EngineFault(EngineError.BAD_SPARSE, f"{slot} column {bad[0]}: entries {starts[bad[0]]}+"
                                                          f"{counts[bad[0]]} pass its {n_entries}")
            reader.need(n_in, len(table), f"slot {s}'s column table")
            words = reader.some(ceil_div(n_entries, 2)).astype(np.int64)
            entries = np.stack([words & FIELD16, words >> 16], axis=1).reshape(-1)[:n_entries]
            local, index = entries & ((1 << COLUMN_ROW_BITS) - 1), entries >> COLUMN_ROW_BITS
            bad = np.flatnonzero((local >= rows) | (index == 0) | (index >= k))
            if len(bad):
                e = int(bad[0])
                code = EngineError.BAD_SPARSE if local[e] >= rows else EngineError.BAD_INDEX
                raise EngineFault(code, f"{slot} entry {e}: local row {local[e]} of {rows}, centroid {index[e]} "
                                        f"of 1..{k - 1}")
            reader.need(ceil_div(n_entries, 2), len(words), f"slot {s}'s entries")
            mine = np.arange(s, out, slots)
            bias[mine] = local_bias[:len(mine)]
            # Each column's entries, in the slot's row order: a row past the layer's (padding) weighs nothing.
            for j in np.flatnonzero(counts):
                for e in range(starts[j], starts[j] + counts[j]):
                    r = int(local[e]) * slots + s
                    if r < out:
                        dense[r, j] += centroids[index[e]]
                kept_columns[j] += counts[j]
            entries_per_slot.append(n_entries)
        if sum(entries_per_slot) != desc.kept or int(kept_columns.sum()) != desc.kept:
            raise EngineFault(EngineError.BAD_STREAM, f"{where}: the slots hold {sum(entries_per_slot)} entries and "
                                                      f"their columns {int(kept_columns.sum())}, the descriptor says "
                                                      f"{desc.kept}")
        writes = k + slots * (rows + n_in) + sum(entries_per_slot)
        rq = np.full(out, desc.requant_word, dtype=np.int64)
        mult, shift, act = split_requant(rq)
        events = {"kept_columns": kept_columns, "kept": int(kept_columns.sum()), "writes": writes,
                  "entries": entries_per_slot}
        return DecodedLayer(desc, bias, mult, shift, events, _weights=lambda: dense, act=act)

    def counters(self, layer, n_images, cfg) -> dict:
        """Per image: the descriptor, the input's lane-words, and (before the activations' share) every kept
        weight as a MAC and an entry read.  The stream: :meth:`job_counters`."""
        c = super().counters(layer, n_images, cfg)
        c["dram_read_words"] = n_images * DESC_WORDS
        c["sram_reads"] = n_images * lane_words(layer.desc.in_features, cfg.lanes)
        c["macs"] = c["weight_sram_reads"] = n_images * layer.events["kept"]
        return c

    def job_counters(self, layer, cfg) -> dict:
        """Once per job (image 0): the stream's DRAM reads and the unit's writes of it."""
        return {"dram_read_words": layer.stream_words, "weight_sram_writes": layer.events["writes"]}

    def activation_counters(self, layer, x) -> dict:
        """A kept weight whose activation is zero is skipped (``zero_skips``, not ``macs``), with its entry read;
        each non-zero activation reads a column-table entry in every slot."""
        live = np.asarray(x)[:, :layer.desc.in_features] != 0
        skips = int((~live @ layer.events["kept_columns"]).sum())
        slots = len(layer.events["entries"])
        return {"zero_skips": skips, "macs": -skips, "weight_sram_reads": slots * int(live.sum()) - skips}


def _centroid_words(centroids: np.ndarray) -> np.ndarray:
    values = np.zeros(ceil_div(len(centroids), COLUMN_CENTROIDS_PER_WORD) * COLUMN_CENTROIDS_PER_WORD, np.int64)
    values[:len(centroids)] = centroids
    values = (values & 0xFF).reshape(-1, COLUMN_CENTROIDS_PER_WORD)
    return sum(values[:, b] << (8 * b) for b in range(COLUMN_CENTROIDS_PER_WORD))


class _Words:
    """A layer stream read front to back; ``BAD_STREAM`` where the loader would wait for a word that never comes."""

    def __init__(self, words: np.ndarray, where: str):
        self.words, self.at, self.where = words, 0, where

    def take(self, n: int, what: str) -> np.ndarray:
        return self.need(n, len(self.some(n)), what)

    def some(self, n: int) -> np.ndarray:
        """Up to ``n`` words: those the stream still has."""
        got = self.words[self.at:self.at + n]
        self.at += len(got)
        return got

    def need(self, n: int, got: int, what: str) -> np.ndarray:
        """``BAD_STREAM`` unless the last :meth:`some` of ``n`` words got them all."""
        if got < n:
            raise EngineFault(EngineError.BAD_STREAM, f"{self.where}: the stream ends in {what}")
        return self.words[self.at - n:self.at]


def allocation(image: np.ndarray, cfg: EngineConfig, layer: int) -> dict:
    """What the column unit holds before layer ``layer`` loads: the job's earlier COLUMNS layers, in order
    (their streams were read without error, or the job would have stopped)."""
    used = {"centroids": 0, "rows": 0, "columns": 0, "entries": [0] * cfg.lanes}
    desc_addr = int(image[2])
    for i in range(layer):
        d = Descriptor.decode(image[desc_addr + i * DESC_WORDS:desc_addr + (i + 1) * DESC_WORDS])
        if d.mode != LayerMode.COLUMNS or d.kind != LayerKind.FC:
            continue
        rows = local_rows(d.out_features, cfg.lanes)
        used["centroids"] += d.row_words
        used["rows"] += rows
        used["columns"] += d.in_features
        at = d.stream_addr + 1 + ceil_div(d.row_words, COLUMN_CENTROIDS_PER_WORD)
        for s in range(cfg.lanes):
            n_entries = int(image[at])
            used["entries"][s] += n_entries
            at += 1 + rows + d.in_features + ceil_div(n_entries, 2)
    return used

