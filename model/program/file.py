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

from model.codecs.layers.registry import decode_job
from model.codecs.vectors import pack_vectors
from model.contract.config import EngineConfig
from model.contract.descriptor import read_job_header
from model.contract.errors import EngineFault, ProgramError
from model.contract.fixedpoint import ACT_MAX, ACT_MIN
from model.contract.layout import DRAM_WORDS_WORD, WORD_BYTES, vector_words

MAGIC = b"VQZ\0"
#: 3: window word 7 repacked (3-bit strides, 5-bit pads), the requantization word's activation
#: parameter and the floor flag, programs record how the host writes inputs and reads outputs.
#: The AVGPOOL layer kind came later without a new version: it is an addition (new kind value,
#: descriptor word 1 read as a requantization word only in it), so every version-3 file stays
#: valid, and an older vqe refuses a program using it at validation with one line (BAD_MODE).
#: The ADD kind and FLAG_SAVE (the residual add and its skip buffer) followed the same way, and so
#: did the RVQ and PQ layer modes (new mode values, the flags' MODE_PARAM bits read only by them), and the
#: E8P lattice mode (a new mode value; descriptor word 1 not read).
FORMAT_VERSION = 3
_HEADER = struct.Struct("<4sHHIII")


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
        return EngineConfig(lanes=e["lanes"], codebook_depth=e["codebook_depth"], windows=e.get("windows", False),
                            avgpool=e.get("avgpool", False), residual=e.get("residual", False),
                            rom=tuple(tuple(cw) for cw in self.meta["rom"]),
                            max_features=e["max_features"], pvq_k_max=e.get("pvq_k_max", 0),
                            huffman_max_len=e.get("huffman_max_len", 0),
                            huffman_symbol_bits=e.get("huffman_symbol_bits", 0),
                            weight_sram_words=e.get("weight_sram_words", 0),
                            rvq_stages_max=e.get("rvq_stages_max", 0), pq=e.get("pq", False),
                            nearest_prototype=e.get("nearest_prototype", False),
                            lattice=e.get("lattice", False), pes=e.get("pes", 1),
                            **{name: e.get(name, 0) for name in EngineConfig.COLUMN_FIELDS})

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

    # --- partitioned programs (model.program.segments) -----------------------------------
    @property
    def segmented(self) -> bool:
        """The program alternates engine and host segments (``meta["segments"]``), one engine job each."""
        return "segments" in self.meta

    def engine_segments(self) -> list[tuple[dict, "Program"]]:
        """Each engine segment's record and its job as a program of its own, on this program's engine and ROM.

        A segment's job is the image's words ``words[0]:words[1]``, addressed from 0 as if alone in DRAM.
        """
        out = []
        for seg in self.meta["segments"]:
            if seg["kind"] == "engine":
                start, stop = seg["words"]
                meta = dict(seg["meta"], engine=self.meta["engine"], rom=self.meta["rom"],
                            rom_id=self.meta.get("rom_id"), rom_shared=self.meta.get("rom_shared", False))
                out.append((seg, Program(meta, self.image[start:stop])))
        return out

    def validate(self, name: str = "program") -> None:
        """Check the metadata and every descriptor and index the engine will read (each engine segment's, in a
        partitioned program)."""
        if self.segmented:
            self._validate_segments(name)
            return
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
            _, layers = decode_job(self.job_image(n_images=1), cfg,
                                   np.asarray(cfg.rom, dtype=np.int64).reshape(-1, cfg.lanes))
        except EngineFault as e:
            raise ProgramError(f"{name}: {e.detail} ({e.code.name})") from None
        out = read_job_header(self.job_image(1))
        if out.input_features != self.meta["input_features"]:
            raise ProgramError(f"{name}: metadata and image disagree on the input size")
        _check_no_overlap(layers, name)
        shapes = [(l.desc.in_features, l.desc.out_features) for l in layers]
        if meta_shapes != shapes or self.meta["n_layers"] != len(shapes) \
                or self.meta["output_features"] != layers[-1].desc.output_features(cfg.lanes):
            raise ProgramError(f"{name}: metadata and image disagree on the layer shapes")

    def _validate_segments(self, name: str) -> None:
        try:
            segments = self.meta["segments"]
            kinds = [seg["kind"] for seg in segments]
            for seg in segments:
                if seg["kind"] not in ("engine", "host") or not isinstance(seg["ops"], list):
                    raise ValueError(f"segment kind {seg['kind']!r}")
            jobs = self.engine_segments()
        except (KeyError, TypeError, ValueError) as e:
            raise ProgramError(f"{name}: partition metadata incomplete or invalid ({e})") from None
        if "engine" not in kinds:
            raise ProgramError(f"{name}: a partitioned program without an engine segment")
        end = 0
        for i, (seg, job) in enumerate(jobs):
            start, stop = seg["words"]
            if not 0 <= start < stop <= len(self.image) or start != end:
                raise ProgramError(f"{name}: engine segment {i} ({seg.get('name')}) has words {start}..{stop}, "
                                   f"not the next ones of the image ({end}..)")
            end = stop
            job.validate(f"{name}: engine segment {i} ({seg.get('name')})")
        if end != len(self.image):
            raise ProgramError(f"{name}: {len(self.image) - end} image words belong to no engine segment")

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
        img[DRAM_WORDS_WORD] = len(img)   # the engine reads nothing past the image
        return img, output_addr, out_words


def _check_no_overlap(layers, name: str) -> None:
    """Resident streams must not share weight-SRAM words (the engine would read one over the other)."""
    spans = sorted((l.desc.wsram_addr, l.desc.wsram_addr + l.stream_words, i)
                   for i, l in enumerate(layers) if l.desc.resident)
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise ProgramError(f"{name}: layers {a} and {b} overlap in the weight SRAM")


def rom_id(rom) -> str:
    """Content hash of a ROM image: equal ids mean one elaborated engine serves both programs."""
    words = np.asarray(rom, dtype=np.int64).astype(np.int8).tobytes()
    return hashlib.sha256(words).hexdigest()[:16]


