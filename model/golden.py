"""The golden model: executes a DRAM image exactly as the engine does.

It reads the same job header, descriptors and row streams as the RTL, checks
them in the same order, computes the same int8 outputs, and counts the same
events.  It is vectorised over images (one matrix product per layer), so it
runs the whole Fashion-MNIST test set in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixedpoint import requantize, wrap_acc
from .layout import (COUNTERS, DESC_WORDS, FIELD16, FLAG_RELU, HUFF_BASE, JOB_MAGIC, JOB_WORDS, MODE_MASK,
                     MODE_SHIFT, PVQ_SCALE_BITS, ROW_HEADER_WORDS, SPARSE_BIAS_BITS, SPARSE_LAYER_WORDS,
                     SPARSE_ROW_HEADER_WORDS, WORD_BITS, WORD_BYTES,
                     EngineConfig, EngineError, LayerMode, ceil_div, huffman_index_bits, row_words,
                     vector_words)
from .index_unpacker import unpack_indices


class EngineFault(Exception):
    """The engine stopped with an error status.

    Parameters
    ----------
    code : EngineError
        The status the RTL reports for the same image.
    detail : str
        What was wrong, for people.
    """

    def __init__(self, code: EngineError, detail: str):
        super().__init__(f"{code.name}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class JobHeader:
    n_layers: int
    n_images: int
    desc_addr: int
    input_addr: int
    input_features: int
    output_addr: int



def read_job_header(image: np.ndarray) -> JobHeader:
    """Decode and check the job header (``EngineError.BAD_JOB`` on failure)."""
    if len(image) < JOB_WORDS or int(image[0]) != JOB_MAGIC:
        raise EngineFault(EngineError.BAD_JOB, "job header magic not found at address 0")
    w1 = int(image[1])
    hdr = JobHeader(n_layers=w1 & FIELD16, n_images=w1 >> 16, desc_addr=int(image[2]),
                    input_addr=int(image[3]), input_features=int(image[4]),
                    output_addr=int(image[5]))
    if hdr.n_layers == 0 or hdr.n_images == 0:
        raise EngineFault(EngineError.BAD_JOB,
                          f"job has {hdr.n_layers} layers and {hdr.n_images} images; both must be > 0")
    return hdr


def check_input(hdr: JobHeader, cfg: EngineConfig) -> None:
    if hdr.input_features == 0 or hdr.input_features > cfg.max_features:
        raise EngineFault(EngineError.BAD_SHAPE,
                          f"input_features={hdr.input_features}, must be 1..{cfg.max_features}")


@dataclass
class Descriptor:
    in_features: int
    out_features: int
    codebook_base: int
    codebook_size: int
    stream_addr: int
    row_words: int
    relu: bool
    mode: int

    @classmethod
    def decode(cls, words) -> "Descriptor":
        w0, w1, w2, w3 = (int(w) for w in words)
        flags = w3 >> 16
        return cls(in_features=w0 & FIELD16, out_features=w0 >> 16,
                   codebook_base=w1 & FIELD16, codebook_size=w1 >> 16,
                   stream_addr=w2, row_words=w3 & FIELD16,
                   relu=bool(flags & FLAG_RELU), mode=(flags >> MODE_SHIFT) & MODE_MASK)

    # In PVQ mode the codebook fields hold the pulse count and the entry width.
    @property
    def pvq_k(self) -> int:
        return self.codebook_base

    @property
    def entry_bits(self) -> int:
        return self.codebook_size

    # In HUFFMAN mode word 3's low half bounds the layer's Huffman table.
    @property
    def table_words(self) -> int:
        return self.row_words

    def encode(self) -> list[int]:
        flags = (FLAG_RELU if self.relu else 0) | (self.mode << MODE_SHIFT)
        return [self.in_features | self.out_features << 16,
                self.codebook_base | self.codebook_size << 16,
                self.stream_addr,
                self.row_words | flags << 16]

    def check(self, cfg: EngineConfig, prev_features: int, layer: int) -> None:
        """Raise ``EngineFault`` for the first problem, in the order the RTL checks them."""
        where = f"layer {layer}"
        if self.mode not in LayerMode.__members__.values() or (self.mode == LayerMode.PVQ and not cfg.pvq_k_max) \
                or (self.mode == LayerMode.HUFFMAN and not cfg.huffman_max_len):
            raise EngineFault(EngineError.BAD_MODE, f"{where}: layer mode {self.mode} is not supported "
                                                    f"by this engine")
        for name in ("in_features", "out_features"):
            n = getattr(self, name)
            if n == 0 or n > cfg.max_features:
                raise EngineFault(EngineError.BAD_SHAPE,
                                  f"{where}: {name}={n}, must be 1..{cfg.max_features}")
        if self.in_features != prev_features:
            raise EngineFault(EngineError.BAD_CHAIN,
                              f"{where}: in_features={self.in_features} but its input has {prev_features}")
        if self.mode == LayerMode.PVQ:
            if not 1 <= self.pvq_k <= cfg.pvq_k_max or self.entry_bits != cfg.pvq_entry_bits(self.pvq_k):
                raise EngineFault(EngineError.BAD_CODEBOOK,
                                  f"{where}: PVQ K={self.pvq_k} with {self.entry_bits}-bit entries; the engine "
                                  f"takes K 1..{cfg.pvq_k_max} with entries of pvq_bits(lanes, K) + scale bits")
            entry_bits = self.entry_bits
        elif self.mode == LayerMode.HUFFMAN:
            entries = ceil_div(self.codebook_size, cfg.lanes)
            if not 1 <= self.codebook_size <= cfg.huffman_k_max or self.codebook_base + entries > cfg.rom_entries:
                raise EngineFault(EngineError.BAD_CODEBOOK,
                                  f"{where}: {self.codebook_size} centroids at ROM entry {self.codebook_base}; "
                                  f"the engine takes 1..{cfg.huffman_k_max} within its {cfg.rom_entries} entries")
            return  # row lengths vary: the stream is checked as it is read
        else:
            if (self.codebook_size == 0 or self.codebook_size > cfg.codebook_depth
                    or self.codebook_base + self.codebook_size > cfg.rom_entries):
                raise EngineFault(EngineError.BAD_CODEBOOK,
                                  f"{where}: codebook {self.codebook_base}+{self.codebook_size} does not fit "
                                  f"depth {cfg.codebook_depth} / ROM of {cfg.rom_entries} entries")
            entry_bits = cfg.index_bits
        expect = row_words(self.in_features, cfg.lanes, entry_bits)
        if self.row_words != expect:
            raise EngineFault(EngineError.BAD_STREAM,
                              f"{where}: row_words={self.row_words}, expected {expect}")


@dataclass
class DecodedLayer:
    """One layer as the datapath sees it after the index path."""
    desc: Descriptor
    indices: np.ndarray  # (out, S) codebook indices, or PVQ enumeration indices
    bias: np.ndarray     # (out,) int64
    mult: np.ndarray
    shift: np.ndarray
    pvq_scale: np.ndarray | None = None  # (out, S) PVQ mode only
    dense: np.ndarray | None = None      # (out, in) HUFFMAN mode only: the decoded sparse weights
    sparse: dict | None = None           # HUFFMAN mode only: per-image events of the layer's stream

    def weights(self, rom: np.ndarray, lanes: int) -> np.ndarray:
        """Integer weight matrix (out, S*lanes) the MAC lanes (or the PVQ unit) multiply with."""
        if self.dense is not None:
            return self.dense
        if self.desc.mode == LayerMode.PVQ:
            from .pvq import pvq_decode_many
            rows, s = self.indices.shape
            y = pvq_decode_many(self.indices.reshape(-1).astype(np.uint64), lanes, self.desc.pvq_k)
            cw = y.reshape(rows, s, lanes) * self.pvq_scale[:, :, None]
        else:
            cw = rom[self.desc.codebook_base + self.indices]  # (out, S, lanes)
        return cw.reshape(cw.shape[0], -1).astype(np.int64)


def read_words(image: np.ndarray, addr: int, n: int, what: str) -> np.ndarray:
    if addr + n > len(image):
        raise EngineFault(EngineError.BAD_STREAM, f"{what} at {addr}+{n} runs past the end of DRAM ({len(image)} words)")
    return image[addr:addr + n]


def _huffman_fault(err, budget: int, available: int, where: str) -> EngineFault:
    """The engine error of a decoder error, when ``available`` of the ``budget`` words exist."""
    from .huffman import HuffmanStatus
    if err.status == HuffmanStatus.TRUNCATED and available < budget:
        return EngineFault(EngineError.BAD_STREAM, f"{where}: the layer's stream ends inside it")
    return EngineFault(EngineError(HUFF_BASE + err.status), f"{where}: {err}")


def decode_sparse_layer(image: np.ndarray, desc: Descriptor, cfg: EngineConfig, layer: int,
                        rom: np.ndarray) -> DecodedLayer:
    """Read a HUFFMAN layer's stream as the engine does (see :mod:`model.layout`), first error first."""
    from .huffman import HuffmanError, HuffmanTable, decode_stream
    where = f"layer {layer}"
    size = int(read_words(image, desc.stream_addr, 1, f"{where} size word")[0])
    total = (size & FIELD16) * (size >> 16)
    stream = read_words(image, desc.stream_addr + 1, total, f"{where} stream")
    if total < SPARSE_LAYER_WORDS - 1:
        raise EngineFault(EngineError.BAD_STREAM, f"{where}: the stream ends before its requantization word")
    rq = int(stream[0])
    cur = SPARSE_LAYER_WORDS - 1
    budget = desc.table_words
    available = min(budget, total - cur)
    try:
        table, used = HuffmanTable.parse_words(stream[cur:cur + available], cfg.huffman_max_len,
                                               cfg.huffman_symbol_bits)
    except HuffmanError as err:
        raise _huffman_fault(err, budget, available, f"{where} Huffman table") from None
    cur += used
    k = desc.codebook_size
    idx_bits = huffman_index_bits(k)
    centroids = rom[desc.codebook_base:desc.codebook_base + ceil_div(k, cfg.lanes)].reshape(-1)[:k].copy()
    centroids[0] = 0   # index 0 is the zero weight of fillers: the engine reads no ROM for it
    out, n_in = desc.out_features, desc.in_features
    dense = np.zeros((out, n_in), dtype=np.int64)
    bias = np.zeros(out, dtype=np.int64)
    # "histogram": occurrences of each joint symbol, for the report's entropy floor.
    events = {"symbols": 0, "bits": 0, "kept": 0, "histogram": np.zeros(1 << cfg.huffman_symbol_bits, np.int64)}
    sign = 1 << (SPARSE_BIAS_BITS - 1)
    for r in range(out):
        row = f"{where} row {r}"
        if cur + SPARSE_ROW_HEADER_WORDS > total:
            raise EngineFault(EngineError.BAD_STREAM, f"{row}: the layer's stream ends at the row header")
        header = int(stream[cur])
        cur += SPARSE_ROW_HEADER_WORDS
        bias[r] = ((header & ((1 << SPARSE_BIAS_BITS) - 1)) ^ sign) - sign
        n_symbols = (header >> SPARSE_BIAS_BITS) + 1
        # A row's codes may take up to FIELD16 words (the decoder's budget); they
        # need at most n_symbols * max_len bits, so only those words are looked at.
        available = min(FIELD16, total - cur, ceil_div(n_symbols * cfg.huffman_max_len, WORD_BITS))
        try:
            result = decode_stream(stream[cur:cur + available], table, n_symbols)
        except HuffmanError as err:
            if err.symbols:   # an earlier symbol's own error comes first
                _check_sparse(err.symbols, idx_bits, k, n_in, row)
            raise _huffman_fault(err, FIELD16, available, row) from None
        positions, idx = _check_sparse(result.symbols, idx_bits, k, n_in, row)
        cur += result.words_used
        dense[r, positions] = centroids[idx]
        events["symbols"] += n_symbols
        events["bits"] += result.counters["huffman_bits"]
        events["kept"] += int(np.count_nonzero(idx))
        np.add.at(events["histogram"], np.asarray(result.symbols, dtype=np.int64), 1)
    events["stream_words"] = 1 + total
    mult = np.full(out, rq & 0xFFFF, dtype=np.int64)
    shift = np.full(out, (rq >> 16) & 0x3F, dtype=np.int64)
    return DecodedLayer(desc, None, bias, mult, shift, dense=dense, sparse=events)


def _check_sparse(symbols, idx_bits: int, k: int, in_features: int, where: str):
    from .sparse_rows import SparseRowError, decode_row
    try:
        return decode_row(symbols, idx_bits, k, in_features)
    except SparseRowError as err:
        code = EngineError.BAD_INDEX if err.kind == "index" else EngineError.BAD_SPARSE
        raise EngineFault(code, f"{where}: {err}") from None


def decode_layer(image: np.ndarray, desc: Descriptor, cfg: EngineConfig, layer: int,
                 rom: np.ndarray | None = None) -> DecodedLayer:
    """Read a layer's row stream as the index path does (``BAD_INDEX`` on a bad index)."""
    if desc.mode == LayerMode.HUFFMAN:
        return decode_sparse_layer(image, desc, cfg, layer, rom)
    rows = read_words(image, desc.stream_addr, desc.out_features * desc.row_words,
                      f"layer {layer} row stream").reshape(desc.out_features, desc.row_words)
    bias = rows[:, 0].astype(np.int64)
    bias = np.where(bias >= 1 << 31, bias - (1 << 32), bias)
    rq = rows[:, 1].astype(np.int64)
    subvectors = ceil_div(desc.in_features, cfg.lanes)
    scale = None
    if desc.mode == LayerMode.PVQ:
        from .pvq import pvq_count
        entries = unpack_indices(rows[:, ROW_HEADER_WORDS:], desc.entry_bits, subvectors)
        index_bits = desc.entry_bits - PVQ_SCALE_BITS
        indices, scale = entries & ((1 << index_bits) - 1), entries >> index_bits
        limit = pvq_count(cfg.lanes, desc.pvq_k)
    else:
        indices = unpack_indices(rows[:, ROW_HEADER_WORDS:], cfg.index_bits, subvectors)
        limit = desc.codebook_size
    bad = np.argwhere(indices >= limit)
    if len(bad):
        r, j = bad[0]
        raise EngineFault(EngineError.BAD_INDEX,
                          f"layer {layer} row {r} sub-vector {j}: index {indices[r, j]} >= {limit}, "
                          f"the layer's {'pyramid size' if scale is not None else 'codebook size'}")
    return DecodedLayer(desc, indices, bias, rq & 0xFFFF, (rq >> 16) & 0x3F, scale)


def pack_vectors(x: np.ndarray, lanes: int) -> np.ndarray:
    """int8 vectors (n, features) -> DRAM words (n, vector_words)."""
    n, f = x.shape
    padded = np.zeros((n, vector_words(f, lanes) * WORD_BYTES), dtype=np.uint8)
    padded[:, :f] = x.astype(np.int8).view(np.uint8)
    return padded.view("<u4")


def unpack_vectors(words: np.ndarray, features: int) -> np.ndarray:
    return np.ascontiguousarray(words.astype("<u4")).view(np.int8)[:, :features]


@dataclass
class GoldenResult:
    """What a run produced: outputs, and the event counters."""
    outputs: np.ndarray                 # (n_images, out_features) int8
    layer_counters: list = field(default_factory=list)  # per layer, all images
    io_counters: dict = field(default_factory=dict)     # job header, input load, output store

    @property
    def counters(self) -> dict:
        total = dict(self.io_counters)
        for c in self.layer_counters:
            for k, v in c.items():
                total[k] += v
        return total


def zero_counters() -> dict:
    return {name: 0 for name in COUNTERS}


class GoldenEngine:
    """Bit- and counter-exact model of ``hw.engine.Engine``.

    Parameters
    ----------
    config : EngineConfig
        The same elaboration parameters (lanes, codebook depth, ROM) as the RTL.
    """

    def __init__(self, config: EngineConfig):
        self.config = config
        self.rom = np.asarray(config.rom, dtype=np.int64).reshape(-1, config.lanes)

    def decode(self, image: np.ndarray):
        """Check the header and every layer in the RTL's order; return them decoded."""
        cfg = self.config
        hdr = read_job_header(image)
        check_input(hdr, cfg)
        layers = []
        prev = hdr.input_features
        for i in range(hdr.n_layers):
            desc = Descriptor.decode(read_words(image, hdr.desc_addr + i * DESC_WORDS, DESC_WORDS,
                                                f"layer {i} descriptor"))
            desc.check(cfg, prev, i)
            layers.append(decode_layer(image, desc, cfg, i, self.rom))
            prev = desc.out_features
        return hdr, layers

    def run(self, image: np.ndarray) -> GoldenResult:
        """Execute a DRAM image.  Raises ``EngineFault`` where the RTL would stop with an error."""
        cfg, lanes = self.config, self.config.lanes
        image = np.asarray(image, dtype=np.uint32)
        hdr, layers = self.decode(image)
        n = hdr.n_images
        in_words = vector_words(hdr.input_features, lanes)
        x = unpack_vectors(read_words(image, hdr.input_addr, n * in_words, "input vectors")
                           .reshape(n, in_words), hdr.input_features).astype(np.int64)
        words_per_lane_word = lambda f: vector_words(f, lanes) * WORD_BYTES // lanes  # noqa: E731

        layer_counters = []
        for layer in layers:
            d = layer.desc
            w = layer.weights(self.rom, lanes)[:, :d.in_features]
            acc = wrap_acc(layer.bias[None, :] + x @ w.T)
            x = requantize(acc, layer.mult[None, :], layer.shift[None, :], d.relu).astype(np.int64)
            beats = d.out_features * ceil_div(d.in_features, lanes)
            c = zero_counters()
            c["dram_read_words"] = n * (DESC_WORDS + d.out_features * d.row_words)
            c["sram_reads"] = n * beats
            if layer.sparse is not None:
                # One symbol per busy decoder cycle; fillers (idx 0) read and multiply nothing.
                ev = layer.sparse
                c["dram_read_words"] = n * (DESC_WORDS + ev["stream_words"])
                c["huffman_symbols"] = c["huffman_busy_cycles"] = n * ev["symbols"]
                c["huffman_bits"] = n * ev["bits"]
                c["sram_reads"] = c["rom_reads"] = c["macs"] = n * ev["kept"]
            elif d.mode == LayerMode.PVQ:
                c["adds"] = n * beats * d.pvq_k  # one signed add per pulse
            else:
                c["rom_reads"] = n * beats
                c["macs"] = n * beats * lanes
            c["sram_writes"] = n * words_per_lane_word(d.out_features)
            layer_counters.append(c)

        out_features = layers[-1].desc.out_features
        io = zero_counters()
        io["dram_read_words"] = JOB_WORDS + n * in_words
        io["sram_writes"] = n * words_per_lane_word(hdr.input_features)
        io["sram_reads"] = n * words_per_lane_word(out_features)
        io["dram_write_words"] = n * vector_words(out_features, lanes)
        return GoldenResult(outputs=x.astype(np.int8), layer_counters=layer_counters, io_counters=io)

    def output_words(self, image: np.ndarray) -> tuple[int, int]:
        """(address, word count) of the outputs the run writes, for reading them back from RTL."""
        hdr, layers = self.decode(np.asarray(image, dtype=np.uint32))
        return hdr.output_addr, hdr.n_images * vector_words(layers[-1].desc.out_features, self.config.lanes)
