"""A program as a torch module: the golden model's exact integers, scored by the source network's metric.

:class:`ProgramNet` takes the source network's raw inputs, writes the engine's
int8 inputs as the host does (:func:`model.nets.tasks.engine_input`), runs
the golden model and gives back the source network's outputs (each output
slice dequantized with its scale, the host's softmax or sigmoid applied).  A
zoo metric (:meth:`model.nets.zoo.ZooNetwork.evaluate`) can then score the
program exactly as it scores the float network.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model.contract.fixedpoint import quantize_act
from model.golden.engine import GoldenEngine
from model.nets.graph.trace import split_outputs
from model.nets.tasks import engine_input
from model.program.file import Program

#: Images per golden run (bounds the DRAM image).
BATCH = 500


def program_outputs(program: Program, x: np.ndarray) -> np.ndarray:
    """The golden model's int8 outputs (n, output values) for raw inputs ``x``."""
    meta = program.meta
    q = engine_input(meta, quantize_act(np.asarray(x, dtype=np.float32).reshape(len(x), -1), meta["input_scale"]))
    engine = GoldenEngine(program.config)
    parts = []
    for i in range(0, len(q), BATCH):
        image, _, _ = program.dram_image(q[i:i + BATCH])
        parts.append(engine.run(image).outputs)
    return np.concatenate(parts)


def dequantize(program: Program, out: np.ndarray) -> np.ndarray:
    """Real values of int8 outputs: each output slice times its scale."""
    meta = program.meta
    spans = meta.get("outputs") or [{"start": 0, "stop": out.shape[1]}]
    scales = meta.get("output_scales") or [meta["output_scale"]] * len(spans)
    real = np.asarray(out, dtype=np.float64).copy()
    for sp, sc in zip(spans, scales):
        real[:, sp["start"]:sp["stop"]] *= sc
    return real


class ProgramNet(nn.Module):
    """The program's golden arithmetic with the source network's inputs and outputs."""

    def __init__(self, program: Program):
        super().__init__()
        self.program = program

    def forward(self, x: torch.Tensor):
        real = dequantize(self.program, program_outputs(self.program, torch.as_tensor(x).numpy()))
        spans = self.program.meta.get("outputs") or [{"start": 0, "stop": real.shape[1], "activation": None}]
        return split_outputs(real, spans)
