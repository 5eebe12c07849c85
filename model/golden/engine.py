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

from model.codecs.layers.kinds import kind_rule, lane_words
from model.codecs.layers.registry import codec_for_mode, decode_job, decode_layer
from model.codecs.vectors import unpack_vectors
from model.contract.config import EngineConfig
from model.contract.counters import COUNTERS, zero_counters
from model.contract.descriptor import read_words
from model.contract.layout import JOB_WORDS, vector_words
from model.golden.windows import forward
import model.golden.nearest  # noqa: F401  (registers the NEAREST kind's arithmetic)


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

    def run(self, image: np.ndarray) -> GoldenResult:
        """Execute a DRAM image.  Raises ``EngineFault`` where the RTL would stop with an error."""
        cfg, lanes = self.config, self.config.lanes
        image = np.asarray(image, dtype=np.uint32)
        # The bound (dram_words) applies to descriptors and streams (decode); the header and the
        # input vectors are the host's, which the engine trusts.
        hdr, layers = self.decode(image)
        n = hdr.n_images
        in_words = vector_words(hdr.input_features, lanes)
        x = unpack_vectors(read_words(image, hdr.input_addr, n * in_words, "input vectors")
                           .reshape(n, in_words), hdr.input_features).astype(np.int64)
        # Image 0 runs the layers as read from DRAM; later images run resident layers as
        # the weight SRAM holds them after image 0 (the same, unless placements overlap).
        later = self._from_weight_sram(image, layers) if n > 1 else layers
        batches = [(layers, slice(0, 1)), (later, slice(1, n))] if later is not layers else [(layers, slice(0, n))]

        layer_counters = []
        saved = None   # the skip buffer (model.contract.layout): the last saving layer's outputs
        for i, layer in enumerate(layers):
            d = layer.desc
            rule = kind_rule(d.kind)
            x_in = x
            x = np.concatenate([forward(run[i], x[rows], lanes, None if saved is None else saved[rows])
                                for run, rows in batches if rows.stop > rows.start])
            codec = codec_for_mode(d.mode) if rule.has_rows else None
            parts = [rule.counters(codec, run[i], rows.stop - rows.start, cfg) for run, rows in batches]
            # Counters that depend on the activations too (a sparse layer's zero skips).
            for part, (run, rows) in zip(parts, batches):
                for name, step in getattr(codec, "activation_counters", lambda *_: {})(run[i], x_in[rows]).items():
                    part[name] += step
            c = {k: sum(part[k] for part in parts) for k in COUNTERS}
            # What a layer costs once per job (a COLUMNS layer's stream, read into the column unit in image 0).
            for name, step in getattr(codec, "job_counters", lambda *_: {})(layer, cfg).items():
                c[name] += step
            if d.save and cfg.residual:   # every output lane-word is written to the skip buffer too
                saved = x
                c["sram_writes"] *= 2
            if d.resident and rule.has_rows:
                # Read from DRAM once (image 0's first use), written to the weight SRAM, read from it after.
                uses = n * rule.stream_uses(layer) - 1
                c["dram_read_words"] -= uses * later[i].stream_words
                c["weight_sram_writes"] = layer.stream_words
                c["weight_sram_reads"] = uses * later[i].stream_words
            layer_counters.append(c)

        out_features = layers[-1].desc.output_features(lanes)
        io = zero_counters()
        io["dram_read_words"] = JOB_WORDS + n * in_words
        io["sram_writes"] = n * lane_words(hdr.input_features, lanes)
        io["sram_reads"] = n * lane_words(out_features, lanes)
        io["dram_write_words"] = n * vector_words(out_features, lanes)
        return GoldenResult(outputs=x.astype(np.int8), layer_counters=layer_counters, io_counters=io)

    def _from_weight_sram(self, image: np.ndarray, layers: list) -> list:
        """The layers as images after the first see them: resident streams from the weight SRAM.

        The weight SRAM holds what image 0 wrote into it, in layer order.  A
        resident layer whose words there are not its DRAM stream (another
        layer's placement overlapped it) is decoded again from them, with
        every check, as the engine would read it.
        """
        resident = [(i, layer) for i, layer in enumerate(layers)
                    if layer.desc.resident and kind_rule(layer.desc.kind).has_rows]
        if not resident:
            return layers
        wsram = np.zeros(self.config.weight_sram_words, dtype=np.uint32)
        for _, layer in resident:
            d = layer.desc
            wsram[d.wsram_addr:d.wsram_addr + layer.stream_words] = \
                image[d.stream_addr:d.stream_addr + layer.stream_words]
        later = list(layers)
        for i, layer in resident:
            d = layer.desc
            if np.array_equal(wsram[d.wsram_addr:d.wsram_addr + layer.stream_words],
                              image[d.stream_addr:d.stream_addr + layer.stream_words]):
                continue
            # What the engine reads from the stream's address on is the weight SRAM from the layer's
            # placement on; reads past its end are refused by the placement check first.
            view = np.concatenate([image[:d.stream_addr], wsram[d.wsram_addr:]])
            later[i] = decode_layer(view, d, self.config, i, self.rom, d.input_features(self.config.lanes))
        return later

    def output_words(self, image: np.ndarray) -> tuple[int, int]:
        """(address, word count) of the outputs the run writes, for reading them back from RTL."""
        hdr, layers = self.decode(np.asarray(image, dtype=np.uint32))
        lanes = self.config.lanes
        return hdr.output_addr, hdr.n_images * vector_words(layers[-1].desc.output_features(lanes), lanes)
