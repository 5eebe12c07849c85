"""The golden model: executes a DRAM image exactly as :class:`hw.engine.Engine` does.

It reads the same job header, descriptors and row streams as the RTL, checks
them in the same order (through the layer codecs, :mod:`model.codecs.layers`),
computes the same int8 outputs with the same arithmetic (:mod:`model.golden.mac`,
:mod:`model.golden.requantizer`), and counts the same events.  It is
vectorised over images (one matrix product per layer), so it runs the whole
Fashion-MNIST test set in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.codecs.layers.registry import codec_for_mode, decode_job
from model.codecs.vectors import unpack_vectors
from model.contract.config import EngineConfig
from model.contract.counters import zero_counters
from model.contract.descriptor import read_words
from model.contract.layout import JOB_WORDS, WORD_BYTES, vector_words
from model.golden.mac import accumulate
from model.golden.requantizer import requantize_rows


@dataclass
class GoldenResult:
    """What a run produced: outputs, and the event counters.

    Members
    -------
    outputs : numpy.ndarray of int8, shape (n_images, out_features)
    layer_counters : list of dict
        Per layer, over all images.
    io_counters : dict
        The job header, input loads and output stores.
    """
    outputs: np.ndarray
    layer_counters: list = field(default_factory=list)
    io_counters: dict = field(default_factory=dict)

    @property
    def counters(self) -> dict:
        total = dict(self.io_counters)
        for c in self.layer_counters:
            for k, v in c.items():
                total[k] += v
        return total


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
        """Check the header and every layer in the RTL's order; return the header and the layers decoded."""
        return decode_job(np.asarray(image, dtype=np.uint32), self.config, self.rom)

    def _lane_word_words(self, features: int) -> int:
        """SRAM lane-words of a vector of ``features`` int8 values."""
        return vector_words(features, self.config.lanes) * WORD_BYTES // self.config.lanes

    def run(self, image: np.ndarray) -> GoldenResult:
        """Execute a DRAM image.  Raises ``EngineFault`` where the RTL would stop with an error."""
        cfg, lanes = self.config, self.config.lanes
        image = np.asarray(image, dtype=np.uint32)
        hdr, layers = self.decode(image)
        n = hdr.n_images
        in_words = vector_words(hdr.input_features, lanes)
        x = unpack_vectors(read_words(image, hdr.input_addr, n * in_words, "input vectors")
                           .reshape(n, in_words), hdr.input_features).astype(np.int64)

        layer_counters = []
        for layer in layers:
            d = layer.desc
            acc = accumulate(layer.bias, x, layer.weights()[:, :d.in_features])
            x = requantize_rows(acc, layer.mult, layer.shift, d.relu)
            c = codec_for_mode(d.mode).counters(layer, n, cfg)
            c["sram_writes"] = n * self._lane_word_words(d.out_features)  # the output packer
            layer_counters.append(c)

        out_features = layers[-1].desc.out_features
        io = zero_counters()
        io["dram_read_words"] = JOB_WORDS + n * in_words
        io["sram_writes"] = n * self._lane_word_words(hdr.input_features)
        io["sram_reads"] = n * self._lane_word_words(out_features)
        io["dram_write_words"] = n * vector_words(out_features, lanes)
        return GoldenResult(outputs=x.astype(np.int8), layer_counters=layer_counters, io_counters=io)

    def output_words(self, image: np.ndarray) -> tuple[int, int]:
        """(address, word count) of the outputs the run writes, for reading them back from RTL."""
        hdr, layers = self.decode(np.asarray(image, dtype=np.uint32))
        return hdr.output_addr, hdr.n_images * vector_words(layers[-1].desc.out_features, self.config.lanes)
