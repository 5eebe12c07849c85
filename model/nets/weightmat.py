"""Weight layers of any torch network, seen as matrices of row sub-vectors.

A *weight layer* is an ``nn.Linear``, ``nn.Conv1d`` or ``nn.Conv2d``.  Its
weight is handled as a matrix ``(out, cols)``:

* ``nn.Linear`` weight ``(out, in)`` as it is;
* a convolution weight ``(out, in/groups, *kernel)`` flattened row-major to
  ``(out, in/groups * prod(kernel))``: one row per output channel, its columns
  running over input channel, then kernel row, then kernel column (the order of
  an im2col patch, so a row times a patch is the convolution's dot product).

Each row is then cut into sub-vectors of ``dim`` consecutive columns exactly
as :func:`model.compress.kmeans.network.split_subvectors` does (the last one zero-padded when
``cols % dim != 0``).  Everything here is generic over those three layer
types and over the network around them, which is only ever called, never
rewritten: compressed weights go in through :func:`with_weights` (a copy) or
:func:`torch.func.functional_call` (training).
"""
from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import torch
from torch import nn

#: Layer types whose weights are compressed.
WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def find_weight_layers(model: nn.Module) -> list[str]:
    """Qualified names of every Linear/Conv1d/Conv2d in ``model``, in module order."""
    names = [n for n, m in model.named_modules() if isinstance(m, WEIGHT_TYPES)]
    if not names:
        raise TypeError("model has no nn.Linear / nn.Conv1d / nn.Conv2d layers")
    return names


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name`` (a qualified name from ``named_modules``)."""
    mod = model.get_submodule(name)
    if not isinstance(mod, WEIGHT_TYPES):
        raise TypeError(f"layer {name!r} is a {type(mod).__name__}, not Linear/Conv1d/Conv2d")
    return mod


def weight_matrix(module: nn.Module) -> np.ndarray:
    """The layer's weight as a float32 ``(out, cols)`` matrix (see the module docstring)."""
    w = module.weight.detach().cpu().float().numpy()
    return np.ascontiguousarray(w.reshape(w.shape[0], -1))


def layer_bias(module: nn.Module) -> np.ndarray | None:
    """The layer's bias as float32, or None when it has none."""
    b = getattr(module, "bias", None)
    return None if b is None else b.detach().cpu().float().numpy().copy()


def row_rms(w2d: np.ndarray) -> np.ndarray:
    """Root-mean-square of every row of ``w2d`` (0 for an all-zero row)."""
    w = np.asarray(w2d, dtype=np.float64)
    return np.sqrt(np.mean(w * w, axis=1))


def linear_relu_chain(model: nn.Module) -> list[bool] | None:
    """ReLU flags of a plain ``nn.Sequential`` of Linear (each optionally followed by ReLU).

    Returns None for any other network: only such chains can be lowered to the
    engine, whose layers are dense.
    """
    if not isinstance(model, nn.Sequential):
        return None
    mods = list(model.children())
    flags = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            flags.append(i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU))
        elif not isinstance(m, nn.ReLU):
            return None
    return flags or None


def overrides(model: nn.Module, weights: dict[str, torch.Tensor],
              biases: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Parameter overrides for :func:`torch.func.functional_call` from weight *matrices*.

    ``weights[name]`` is an ``(out, cols)`` tensor; it is reshaped to the
    layer's own weight shape.
    """
    out = {}
    for name, w in weights.items():
        mod = get_module(model, name)
        out[f"{name}.weight"] = w.reshape(mod.weight.shape)
    for name, b in (biases or {}).items():
        out[f"{name}.bias"] = b
    return out


def with_weights(model: nn.Module, weights: dict[str, np.ndarray],
                 biases: dict[str, np.ndarray] | None = None) -> nn.Module:
    """A deep copy of ``model`` (eval mode) whose named layers carry the given weight matrices and biases."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, w in weights.items():
            mod = get_module(m, name)
            mod.weight.copy_(torch.as_tensor(np.asarray(w), dtype=mod.weight.dtype).reshape(mod.weight.shape))
        for name, b in (biases or {}).items():
            mod = get_module(m, name)
            if mod.bias is None:
                raise ValueError(f"layer {name!r} has no bias")
            mod.bias.copy_(torch.as_tensor(np.asarray(b), dtype=mod.bias.dtype))
    return m.eval()


def count_params(model: nn.Module, names: Iterable[str]) -> tuple[int, int, int]:
    """(weights in the named layers, their biases, every other parameter of ``model``)."""
    names = list(names)
    w = b = 0
    seen = set()
    for name in names:
        mod = get_module(model, name)
        w += mod.weight.numel()
        seen.add(id(mod.weight))
        if mod.bias is not None:
            b += mod.bias.numel()
            seen.add(id(mod.bias))
    other = sum(p.numel() for p in model.parameters() if id(p) not in seen)
    return w, b, other
