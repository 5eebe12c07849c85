"""The program file: one self-describing, checksummed file per compressed network.

Layout (all integers little-endian)::

    magic    4 bytes   b"VQZ\\0"
    version  u16       FORMAT_VERSION
    reserved u16       0
    meta_len u32       bytes of JSON metadata
    words    u32       32-bit words of program image
    crc32    u32       over the metadata and image bytes
    meta     JSON      network, method, engine parameters, ROM contents, scales, facts
    image    u32[]     the DRAM image from address 0: job header, descriptors, row streams

The job header in the file says zero images; :func:`dram_image` appends the
input vectors and output space for a run and fills in the header.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fixedpoint import ACC_BITS, ACT_MAX, ACT_MIN, MULT_BITS, SHIFT_MAX
from .golden import Descriptor, EngineFault, GoldenEngine, pack_vectors, read_job_header
from .index_unpacker import pack_indices
from .layout import (DESC_WORDS, HUFFMAN_DEFAULT_MAX_LEN, JOB_MAGIC, JOB_WORDS, PVQ_SCALE_BITS, REL_BITS,
                     WORD_BYTES, EngineConfig, LayerMode, ceil_div, huffman_index_bits, row_words, vector_words)

MAGIC = b"VQZ\0"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sHHIII")


class ProgramError(Exception):
    """A program file is unreadable or describes something the engine cannot run."""


@dataclass
class Program:
    """A compressed network, ready to run.

    Members
    -------
    meta : dict
        JSON metadata: ``network``, ``method``, ``engine`` (lanes, codebook_depth,
        max_features), ``rom`` (codewords), ``input_scale``, ``output_scale``,
        ``input_features``, ``output_features``, ``n_layers``, ``info``, ``compression``.
    image : numpy.ndarray of uint32
        The program part of the DRAM image.
    """
    meta: dict
    image: np.ndarray

    @property
    def config(self) -> EngineConfig:
        e = self.meta["engine"]
        return EngineConfig(lanes=e["lanes"], codebook_depth=e["codebook_depth"],
                            rom=tuple(tuple(cw) for cw in self.meta["rom"]),
                            max_features=e["max_features"], pvq_k_max=e.get("pvq_k_max", 0),
                            huffman_max_len=e.get("huffman_max_len", 0),
                            huffman_symbol_bits=e.get("huffman_symbol_bits", 0))

    # --- files ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        meta = json.dumps(self.meta, separators=(",", ":")).encode()
        image = np.asarray(self.image, dtype="<u4").tobytes()
        crc = zlib.crc32(meta + image)
        return _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(meta), len(self.image), crc) + meta + image

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "program") -> "Program":
        if len(data) < _HEADER.size or data[:4] != MAGIC:
            raise ProgramError(f"{name}: not a VQ Engine program file (bad magic)")
        magic, version, _, meta_len, n_words, crc = _HEADER.unpack_from(data)
        if version != FORMAT_VERSION:
            raise ProgramError(f"{name}: program format version {version}; this vqe reads version {FORMAT_VERSION}")
        body = data[_HEADER.size:]
        if len(body) != meta_len + n_words * WORD_BYTES:
            raise ProgramError(f"{name}: truncated or padded file: {len(body)} bytes of body, "
                               f"header says {meta_len + n_words * WORD_BYTES}")
        if zlib.crc32(body) != crc:
            raise ProgramError(f"{name}: corrupted (CRC-32 mismatch)")
        try:
            meta = json.loads(body[:meta_len])
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ProgramError(f"{name}: metadata is not valid JSON ({e})") from None
        image = np.frombuffer(body[meta_len:], dtype="<u4").astype(np.uint32)
        prog = cls(meta, image)
        prog.validate(name)
        return prog

    @classmethod
    def load(cls, path: str | Path) -> "Program":
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ProgramError(f"{path}: cannot read ({e.strerror})") from None
        return cls.from_bytes(data, str(path))

    def validate(self, name: str = "program") -> None:
        """Check the metadata and every descriptor and index the engine will read."""
        try:
            cfg = self.config
            for key in ("network", "method", "input_scale", "output_scale", "input_features", "output_features",
                        "n_layers", "layers", "compression"):
                self.meta[key]
            for key in ("bits_per_weight", "ratio_vs_fp32", "bytes"):
                float(self.meta["compression"][key])
            rom = np.asarray(self.meta["rom"])
            if rom.size and (rom.dtype.kind not in "iu" or rom.min() < ACT_MIN or rom.max() > ACT_MAX):
                raise ProgramError(f"{name}: codebook ROM values must be int8 integers")
            meta_shapes = [(l["in_features"], l["out_features"]) for l in self.meta["layers"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ProgramError(f"{name}: metadata incomplete or invalid ({e})") from None
        try:
            # A one-image job over zero inputs exercises every check of the engine.
            _, layers = GoldenEngine(cfg).decode(self.job_image(n_images=1))
        except EngineFault as e:
            raise ProgramError(f"{name}: {e.detail} ({e.code.name})") from None
        out = read_job_header(self.job_image(1))
        if out.input_features != self.meta["input_features"]:
            raise ProgramError(f"{name}: metadata and image disagree on the input size")
        shapes = [(l.desc.in_features, l.desc.out_features) for l in layers]
        if meta_shapes != shapes or self.meta["n_layers"] != len(shapes) \
                or self.meta["output_features"] != shapes[-1][1]:
            raise ProgramError(f"{name}: metadata and image disagree on the layer shapes")

    # --- runs -----------------------------------------------------------------------------
    def job_image(self, n_images: int, input_addr: int | None = None, output_addr: int = 0) -> np.ndarray:
        img = self.image.copy()
        img[1] = (img[1] & 0xFFFF) | (n_images << 16)
        img[3] = len(img) if input_addr is None else input_addr
        img[5] = output_addr
        return img

    def dram_image(self, x_int8: np.ndarray) -> tuple[np.ndarray, int, int]:
        """DRAM image for a run on ``x_int8`` (n, input_features).

        Returns the image, the output address and the output words per image.
        """
        lanes = self.meta["engine"]["lanes"]
        n = len(x_int8)
        if not 0 < n < 1 << 16:
            raise ProgramError(f"a run takes 1..65535 images, got {n}")
        inputs = pack_vectors(x_int8, lanes).reshape(-1)
        out_words = vector_words(self.meta["output_features"], lanes)
        input_addr = len(self.image)
        output_addr = input_addr + len(inputs)
        img = np.concatenate([self.job_image(n, input_addr, output_addr), inputs,
                              np.zeros(n * out_words, dtype=np.uint32)]).astype(np.uint32)
        return img, output_addr, out_words


def rom_id(rom) -> str:
    """Content hash of a ROM image: equal ids mean one elaborated engine serves both programs."""
    words = np.asarray(rom, dtype=np.int64).astype(np.int8).tobytes()
    return hashlib.sha256(words).hexdigest()[:16]


def _pvq_rows(layer, lanes: int, entry_bits: int) -> np.ndarray:
    """A PVQ layer's entries: enumeration index in the low bits, scale above it."""
    from .pvq import pvq_encode_many
    y = np.asarray(layer.pvq_y, dtype=np.int64)
    scale = np.asarray(layer.pvq_scale, dtype=np.int64)
    rows, s, n = y.shape
    if n != lanes or s != ceil_div(layer.in_features, lanes) or rows != layer.out_features:
        raise ProgramError(f"PVQ layer: vectors of shape {y.shape} do not match the layer and {lanes} lanes")
    if np.any(np.abs(y).sum(axis=2) != layer.pvq_k):
        raise ProgramError(f"PVQ layer: a vector does not have K={layer.pvq_k} pulses")
    if np.any((scale < 0) | (scale >> PVQ_SCALE_BITS > 0)):
        raise ProgramError(f"PVQ layer: scales outside 0..{(1 << PVQ_SCALE_BITS) - 1}")
    index = pvq_encode_many(y.reshape(-1, lanes), layer.pvq_k).astype(np.int64).reshape(rows, s)
    return index | scale << (entry_bits - PVQ_SCALE_BITS)


def layer_mode(lowered, layer) -> str:
    """``"vq"``, ``"pvq"`` or ``"huffman"``: a layer's own ``mode``, else every layer of a
    ``method="deepcomp"`` network is a sparse Huffman-coded layer."""
    return getattr(layer, "mode", "huffman" if lowered.method == "deepcomp" else "vq")


def _huffman_layer(i: int, layer, lanes: int, symbol_bits: int, max_len: int):
    """A deepcomp layer's ROM entries (scalar centroids packed ``lanes`` to an entry) and coded rows."""
    from .sparse_rows import encode_layer
    cb = np.asarray(layer.codebook)
    if cb.ndim != 2 or cb.shape[1] != 1 or len(cb) == 0:
        raise ProgramError(f"layer {i}: a sparse layer needs scalar centroids of shape (k, 1), got {cb.shape}")
    if cb.min() < ACT_MIN or cb.max() > ACT_MAX:
        raise ProgramError(f"layer {i}: centroid values outside int8")
    if cb[0, 0] != 0:
        raise ProgramError(f"layer {i}: centroid 0 must be the exact zero (fillers use it)")
    idx = np.asarray(layer.indices)
    if idx.shape != (layer.out_features, layer.in_features):
        raise ProgramError(f"layer {i}: index matrix shape {idx.shape} does not match the layer")
    if idx.size and (idx.min() < 0 or idx.max() >= len(cb)):
        raise ProgramError(f"layer {i}: centroid indices out of range 0..{len(cb) - 1}")
    entries = np.zeros(ceil_div(len(cb), lanes) * lanes, dtype=np.int64)
    entries[:len(cb)] = cb[:, 0]
    try:
        sparse = encode_layer(idx, len(cb), symbol_bits, max_len)
    except ValueError as e:
        raise ProgramError(f"layer {i}: {e}") from None
    return entries.reshape(-1, lanes).tolist(), sparse


def build_program(lowered, config_max_features: int = 1024, codebook_depth: int = 256,
                  info: dict | None = None, shared_rom=None, pvq_k_max: int = 0,
                  huffman_max_len: int = HUFFMAN_DEFAULT_MAX_LEN, huffman_symbol_bits: int | None = None) -> Program:
    """Lay a :class:`model.lowering.LoweredNetwork` out as a program.

    Each layer's integer codebook goes into the ROM image (layers one after the
    other); its rows become row streams of bias, requantization word and packed
    indices.  With ``shared_rom`` (a universal codebook, int8 (entries, lanes)),
    the ROM is that codebook, every layer uses it from entry 0, and it is not
    counted in the network's bytes: all networks share it.

    Sparse layers (``method="deepcomp"``, or a layer ``mode`` of ``"huffman"``:
    scalar centroids ``(k, 1)`` with centroid 0 the zero, a dense index matrix
    ``(out_features, in_features)`` with 0 at pruned positions) are coded by
    :mod:`model.sparse_rows`; the engine then gets a Huffman decoder with codes
    of at most ``huffman_max_len`` bits over ``huffman_symbol_bits``-bit
    symbols (default: the widest ``REL_BITS + idx_bits`` of the layers).
    """
    lanes = lowered.lanes
    index_bits = codebook_depth.bit_length() - 1
    rom, descs, streams = [], [], []
    if shared_rom is not None:
        rom = np.asarray(shared_rom, dtype=np.int64).tolist()
    modes = [layer_mode(lowered, l) for l in lowered.layers]
    huffman = "huffman" in modes
    if huffman and shared_rom is not None:
        raise ProgramError("sparse (deepcomp) layers keep their centroids in the program's own ROM")
    if huffman and huffman_symbol_bits is None:
        huffman_symbol_bits = max(REL_BITS + max(1, huffman_index_bits(len(l.codebook)))
                                  for l, m in zip(lowered.layers, modes) if m == "huffman")
    if not huffman:
        huffman_max_len, huffman_symbol_bits = 0, 0
    sparse_bits = {}
    addr = JOB_WORDS + DESC_WORDS * len(lowered.layers)
    for i, layer in enumerate(lowered.layers):
        if modes[i] == "huffman":
            from .sparse_rows import layer_bits
            for name in ("bias", "mult", "shift"):
                if np.asarray(getattr(layer, name)).shape != (layer.out_features,):
                    raise ProgramError(f"layer {i}: {name} must have one value per row")
            bias, mult, shift = (np.asarray(a, dtype=np.int64) for a in (layer.bias, layer.mult, layer.shift))
            if np.any(np.abs(bias) >= 1 << (ACC_BITS - 1)) or np.any((mult < 0) | (mult >> MULT_BITS > 0)) \
                    or np.any((shift < 0) | (shift > SHIFT_MAX)):
                raise ProgramError(f"layer {i}: bias or requantization parameters out of range")
            entries, sparse = _huffman_layer(i, layer, lanes, huffman_symbol_bits, huffman_max_len)
            try:
                stream = sparse.stream(bias, mult, shift)
            except ValueError as e:
                raise ProgramError(f"layer {i}: {e}") from None
            base = len(rom)
            rom.extend(entries)
            descs.append(Descriptor(layer.in_features, layer.out_features, base, len(layer.codebook), addr,
                                    len(sparse.table.to_words()), layer.relu, LayerMode.HUFFMAN))
            sparse_bits[i] = layer_bits(sparse, layer.in_features, layer.out_features, len(layer.codebook), lanes)
            streams.append(stream)
            addr += stream.size
            continue
        if modes[i] == "pvq":
            k = int(layer.pvq_k)
            if not 1 <= k <= pvq_k_max:
                raise ProgramError(f"layer {i}: PVQ K={k} outside the engine's 1..{pvq_k_max}")
            entry_bits = EngineConfig(lanes=lanes, codebook_depth=codebook_depth, rom=((0,) * lanes,),
                                      pvq_k_max=pvq_k_max).pvq_entry_bits(k)
            entries = _pvq_rows(layer, lanes, entry_bits)
            bias, mult, shift = (np.asarray(a, dtype=np.int64) for a in (layer.bias, layer.mult, layer.shift))
            rq = (mult | shift << 16).astype(np.uint32)
            rows = np.concatenate([(bias & 0xFFFFFFFF).astype(np.uint32)[:, None], rq[:, None],
                                   pack_indices(entries, entry_bits)], axis=1)
            descs.append(Descriptor(layer.in_features, layer.out_features, k, entry_bits, addr,
                                    rows.shape[1], layer.relu, LayerMode.PVQ))
            streams.append(rows.reshape(-1))
            addr += rows.size
            continue
        cb = np.asarray(layer.codebook)
        if cb.ndim != 2 or cb.shape[1] != lanes:
            raise ProgramError(f"layer {i}: codebook shape {cb.shape} does not match {lanes} lanes")
        if cb.shape[0] > codebook_depth:
            raise ProgramError(f"layer {i}: {cb.shape[0]} codewords exceed codebook depth {codebook_depth}")
        if cb.min() < ACT_MIN or cb.max() > ACT_MAX:
            raise ProgramError(f"layer {i}: codebook values outside int8")
        idx = np.asarray(layer.indices)
        if idx.shape != (layer.out_features, ceil_div(layer.in_features, lanes)):
            raise ProgramError(f"layer {i}: index array shape {idx.shape} does not match the layer")
        if idx.min() < 0 or idx.max() >= len(cb):
            raise ProgramError(f"layer {i}: codebook indices out of range 0..{len(cb) - 1}")
        bias, mult, shift = (np.asarray(a, dtype=np.int64) for a in (layer.bias, layer.mult, layer.shift))
        if np.any(np.abs(bias) >= 1 << (ACC_BITS - 1)) or np.any((mult < 0) | (mult >> MULT_BITS > 0)) \
                or np.any((shift < 0) | (shift > SHIFT_MAX)):
            raise ProgramError(f"layer {i}: bias or requantization parameters out of range")
        rq = (mult | shift << 16).astype(np.uint32)
        rows = np.concatenate([(bias & 0xFFFFFFFF).astype(np.uint32)[:, None], rq[:, None],
                               pack_indices(idx, index_bits)], axis=1)
        rw = row_words(layer.in_features, lanes, index_bits)
        assert rows.shape[1] == rw
        if shared_rom is None:
            base = len(rom)
            rom.extend(cb.tolist())
        else:
            base = 0
            if cb.shape != (len(rom), lanes) or np.any(cb != np.asarray(rom)):
                raise ProgramError(f"layer {i}: its codebook is not the shared ROM codebook")
        descs.append(Descriptor(layer.in_features, layer.out_features, base, len(cb), addr, rw,
                                layer.relu, LayerMode.VQ))
        streams.append(rows.reshape(-1))
        addr += rows.size

    header = [JOB_MAGIC, len(lowered.layers), JOB_WORDS, 0, lowered.layers[0].in_features, 0, 0, 0]
    image = np.concatenate([np.array(header, dtype=np.uint32),
                            np.array([w for d in descs for w in d.encode()], dtype=np.uint32),
                            *streams]).astype(np.uint32)
    meta = {
        "network": lowered.name, "method": lowered.method,
        "engine": {"lanes": lanes, "codebook_depth": codebook_depth, "max_features": config_max_features,
                   "pvq_k_max": pvq_k_max,
                   **({"huffman_max_len": huffman_max_len, "huffman_symbol_bits": huffman_symbol_bits}
                      if huffman else {})},
        "rom": rom,
        "rom_id": rom_id(rom),
        "rom_shared": shared_rom is not None,
        "input_scale": float(lowered.input_scale), "output_scale": float(lowered.output_scale),
        "input_features": lowered.layers[0].in_features,
        "output_features": lowered.layers[-1].out_features,
        "n_layers": len(lowered.layers),
        "layers": [{"in_features": l.in_features, "out_features": l.out_features, "relu": bool(l.relu),
                    "mode": modes[i], "codebook_size": int(len(l.codebook)),
                    **({"pvq_k": int(l.pvq_k)} if modes[i] == "pvq" else {}),
                    **({"sparse": sparse_bits[i]} if i in sparse_bits else {})}
                   for i, l in enumerate(lowered.layers)],
        "info": dict(lowered.info, **(info or {})),
    }
    prog = Program(meta, image)
    prog.meta["compression"] = compression_stats(prog, lowered)
    prog.validate()
    return prog


def compression_stats(prog: Program, lowered) -> dict:
    """Every stored bit counted: row streams (indices, biases, requantization), descriptors, codebooks.

    For sparse (deepcomp) layers the image holds each layer's size and
    requantization words, Huffman table, row headers, codes (fillers
    included) and padding, and the ROM their centroids; ``sparse`` breaks those
    bits down (:func:`model.sparse_rows.layer_bits`, summed over the layers).
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
