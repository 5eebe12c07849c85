"""What the engine runs of each network: the whole network, lowered from its torch graph.

A registry entry with ``engine`` set (:mod:`model.nets.registry`) runs on the
engine whole: :func:`engine_task` lowers the trained float network with
:func:`model.nets.graph.trace.lower_graph` onto the engine's layer kinds and
data layout.  The lowered network takes the source network's raw inputs and
its first module is what the host does when it writes the engine's input
(HWC maps with padded channels); a program records that as its
``input_index`` so ``vqe run`` can write the engine's inputs from test images.
:func:`engine_data` gives each network's training data and quality metric:
Fashion-MNIST and accuracy for the networks trained here, the zoo's
distillation inputs and metric (fidelity, pitch accuracy) for the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from model.contract.errors import VqeError
from model.contract.layout import MAX_FEATURES_LIMIT
from model.nets.distill import DistillSet
from model.nets.graph.modules import POOLING, EngineConv
from model.nets.graph.trace import EngineNet, GraphError, lower_graph, split_outputs
from model.nets.networks import get_network
from model.nets.registry import NETWORKS, engine_networks, resolve

#: Dataset name of the Fashion-MNIST networks' programs.
FASHION_MNIST = "fashion-mnist"
#: Distillation inputs drawn for a zoo network without labelled training data (its recipe's count in
#: :data:`model.compress.universal.recipes.RECIPES`).
ZOO_DISTILL = 8192


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


class SourceOutputs(nn.Module):
    """A network in the engine's layout giving the source network's outputs (its heads, the host's
    softmax or sigmoid applied), so the source's own quality metric can score it.

    Parameters
    ----------
    net : torch.nn.Module
        Takes the raw inputs, returns the engine's output vector.
    outputs : list of dict
        :attr:`model.nets.graph.trace.EngineNet.outputs`.
    """

    def __init__(self, net: nn.Module, outputs: list[dict]):
        super().__init__()
        self.net, self.outputs = net, outputs

    def forward(self, x: torch.Tensor):
        return split_outputs(self.net(x), self.outputs)


@dataclass
class EngineData:
    """What compressing a network for the engine needs besides the network.

    Members
    -------
    train : DistillSet
        Training / distillation inputs (with labels for a classifier).
    metric : str
        The headline quality metric (higher is better).
    quality : callable
        ``quality(model) -> dict`` of metrics for a module giving the source network's outputs.
    dataset : str
        The program's ``dataset``: where ``vqe run`` takes its inputs.
    test : tuple of numpy.ndarray or None
        A classifier's test images and labels.
    """
    train: DistillSet
    metric: str
    quality: Callable[[nn.Module], dict]
    dataset: str
    test: tuple[np.ndarray, np.ndarray] | None = None


def engine_data(name: str, seed: int = 0, n_distill: int = ZOO_DISTILL) -> EngineData:
    """Training data and quality metric of engine network ``name``: Fashion-MNIST (train split, test
    accuracy) for the networks trained here; the zoo's distillation inputs and evaluation for the others."""
    if NETWORKS[name].recipe is not None:
        from model.nets.data import load_fashion_mnist
        from model.nets.networks import evaluate
        x, y = load_fashion_mnist("train")
        test = load_fashion_mnist("test")
        return EngineData(DistillSet(x, y, kind="logits"), "accuracy",
                          lambda m: {"accuracy": evaluate(m, *test)}, FASHION_MNIST, test)
    from model.nets.zoo import load_network
    zn = load_network(name, progress=False)
    inputs = zn.distill_data(n_distill, seed)
    inputs = inputs.numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    return EngineData(DistillSet(inputs.astype(np.float32), kind="regression"), zn.metric_name,
                      lambda m: zn.evaluate(m), zoo_dataset(name))


def zoo_dataset(name: str) -> str:
    """The ``dataset`` of a program of zoo network ``name``: its evaluation set."""
    return f"zoo:{name}"


def eval_inputs(dataset: str) -> np.ndarray:
    """The inputs of a zoo network's evaluation set, from a program's ``dataset``."""
    name = dataset.removeprefix("zoo:")
    if name not in NETWORKS or NETWORKS[name].eval_inputs is None:
        raise TaskError(f"unknown dataset {dataset!r}")
    return np.asarray(resolve(NETWORKS[name].eval_inputs)(), dtype=np.float32)


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
    """The float network ``name``: trained here (cached after the first training) or the zoo's pretrained one."""
    if NETWORKS[name].recipe is not None:
        return get_network(name, progress=progress, seed=seed)
    from model.nets.zoo import load_network
    return load_network(name, progress=progress).model


def engine_task(name: str, lanes: int, *, seed: int = 0, progress: bool = True) -> EngineTask:
    """Network ``name`` lowered for an engine of ``lanes`` lanes."""
    if name not in engine_networks():
        raise TaskError(f"unknown network {name!r}; the engine runs {', '.join(engine_networks())}")
    full = full_network(name, seed=seed, progress=progress).eval()
    try:
        net = lower_graph(full, NETWORKS[name].input_shape, lanes)
    except GraphError as e:
        raise TaskError(f"{name}: {e}") from None
    check_maps_fit(name, net)
    return EngineTask(name, full, net.eval())


def check_maps_fit(name: str, net: EngineNet) -> None:
    """Refuse a network with a vector larger than the largest activation SRAM: maps are not tiled."""
    sizes = [("its input", len(net.input_index))]
    for m in net:
        if isinstance(m, (EngineConv, *POOLING)):
            w, c = m.window, getattr(m, "out_channels_padded", None) or m.channels
            sizes.append((f"the {type(m).__name__[6:].lower()} output map {w.out_height}x{w.out_width}x{c}",
                          w.positions() * c))
    what, size = max(sizes, key=lambda t: t[1])
    if size > MAX_FEATURES_LIMIT:
        raise TaskError(f"{name}: {what} holds {size:,} values, more than the largest activation SRAM the "
                        f"engine has ({MAX_FEATURES_LIMIT:,} values); feature maps are not tiled")
