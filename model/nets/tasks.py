"""What the engine runs of each network: the whole network, lowered from its torch graph.

A registry entry with ``engine`` set (:mod:`model.nets.registry`) runs on the
engine whole: :func:`engine_task` lowers the trained float network with
:func:`model.nets.graph.trace.lower_graph` onto the engine's layer kinds and
data layout.  The lowered network takes the raw inputs (pixels in [0, 1])
and its first module is what the host does when it writes the engine's
input (HWC maps with padded channels); a program records that as its
``input_index`` so ``vqe run`` can write the engine's inputs from test images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from model.contract.errors import VqeError
from model.nets.graph.trace import EngineNet, GraphError, lower_graph
from model.nets.networks import get_network
from model.nets.registry import NETWORKS, engine_networks


class TaskError(VqeError, ValueError):
    """A network this version cannot run on the engine."""


@dataclass
class EngineTask:
    """A network and its lowered form.

    Members
    -------
    name : str
        Network name.
    full : torch.nn.Module
        The float network (the reference), untouched.
    net : EngineNet
        The same function in the engine's layers and layout, taking the same raw inputs.
    """
    name: str
    full: nn.Module
    net: EngineNet

    def meta(self) -> dict:
        """What a program records so the host can write the engine's inputs and read its outputs."""
        index = self.net.input_index
        identity = np.array_equal(index, np.arange(len(index)))
        return {"input_shape": list(self.net.input_shape), "outputs": self.net.outputs,
                "lowered_from": self.net.source, **({} if identity else {"input_index": index.tolist()})}


def engine_input(meta: dict, x: np.ndarray) -> np.ndarray:
    """The engine's input values for raw inputs ``x`` (n, ...), as a program's ``input_index`` says."""
    flat = np.asarray(x).reshape(len(x), -1)
    if "input_index" not in meta:
        return flat
    index = np.asarray(meta["input_index"], dtype=np.int64)
    out = flat[:, np.maximum(index, 0)]
    out[:, index < 0] = 0
    return out


def full_network(name: str, *, seed: int = 0, progress: bool = True) -> nn.Module:
    """The trained float network ``name`` (cached after the first training)."""
    return get_network(name, progress=progress, seed=seed)


def engine_task(name: str, lanes: int, *, seed: int = 0, progress: bool = True) -> EngineTask:
    """Network ``name`` lowered for an engine of ``lanes`` lanes."""
    if name not in engine_networks():
        raise TaskError(f"unknown network {name!r}; the engine runs {', '.join(engine_networks())}")
    full = full_network(name, seed=seed, progress=progress).eval()
    try:
        net = lower_graph(full, NETWORKS[name].input_shape, lanes)
    except GraphError as e:
        raise TaskError(f"{name}: {e}") from None
    return EngineTask(name, full, net.eval())
