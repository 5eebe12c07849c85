"""What part of each network the engine runs, and the host-side front end that feeds it.

The engine runs chains of fully-connected layers.  A registry entry's
``engine`` field (:mod:`model.nets.registry`) says how: LeNet-300-100 is such a
chain and runs whole; LeNet-5's convolutions stay on the host in float (its
*front end*, :data:`FRONTENDS`); the engine runs its fully-connected tail (400-120-84-10).

The engine's input is int8 at scale ``1/127`` (:data:`model.compress.lowering.INPUT_SCALE`),
which suits pixels in [0, 1].  A front end's features are non-negative but
unbounded, so they are divided by a fixed ``feature_scale`` (their
:data:`FEATURE_PERCENTILE` percentile over the training images) and clipped
to 1, and the tail's first weight matrix is multiplied by the same scale: the
float tail computes the same function on every feature below the clip.  The
program records the front end's name and scale, so ``vqe run`` can recompute
the engine's inputs from test images.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from model.contract.errors import VqeError
from model.nets.networks import get_network
from model.nets.registry import NETWORKS, WHOLE, engine_networks

#: Percentile of the training features mapped to the engine's largest input.
FEATURE_PERCENTILE = 99.99


class FrontendError(VqeError, ValueError):
    """A network or front end this version cannot run."""


@dataclass
class EngineTask:
    """A network split into the host front end and the fully-connected tail the engine runs.

    Members
    -------
    name : str
        Network name.
    full : torch.nn.Module
        The whole float network (the reference).
    tail : torch.nn.Sequential
        The engine's part, Linear/ReLU only, taking features in [0, 1]
        (a copy, with the front end's scale folded in: ``full`` is untouched).
    frontend : str or None
        Front-end name recorded in the program (None: the engine takes the pixels).
    feature_scale : float
        Divisor applied to the front end's features before clipping to [0, 1].
    """
    name: str
    full: nn.Module
    tail: nn.Sequential
    frontend: str | None = None
    feature_scale: float = 1.0

    def features(self, x: np.ndarray) -> np.ndarray:
        """The tail's float input for images ``x`` (n, 784)."""
        return frontend_features(self.frontend, self.feature_scale, x, self.full)

    def meta(self) -> dict:
        """What a program must record to recompute its inputs."""
        return {} if self.frontend is None else {"frontend": self.frontend, "feature_scale": self.feature_scale}


def frontend_features(frontend: str | None, feature_scale: float, x: np.ndarray,
                      full: nn.Module | None = None, *, network: str = "") -> np.ndarray:
    """The engine's float input for images ``x``: the pixels, or scaled, clipped front-end features."""
    if frontend is None:
        return x
    if frontend not in FRONTENDS:
        raise FrontendError(f"unknown front end {frontend!r} (this vqe knows {', '.join(FRONTENDS)})")
    if not feature_scale > 0:
        raise FrontendError(f"front-end feature scale must be positive, got {feature_scale}")
    if full is None:
        full = full_network(network, progress=False)
    return np.clip(FRONTENDS[frontend].features(full, x) / feature_scale, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Frontend:
    """A host front end: the layers the host runs in float before the engine's tail.

    Members
    -------
    features : callable
        ``features(full, images) -> numpy.ndarray``: the tail's raw (unscaled) input.
    tail : callable
        ``tail(full) -> nn.Sequential``: the Linear/ReLU layers the engine runs (not copied).
    """
    features: Callable[[nn.Module, np.ndarray], np.ndarray]
    tail: Callable[[nn.Module], nn.Sequential]


def _lenet5_features(model: nn.Module, x: np.ndarray) -> np.ndarray:
    from model.nets.zoo.lenet5 import tail_features
    return tail_features(model, x).numpy()


def _lenet5_tail(model: nn.Module) -> nn.Sequential:
    from model.nets.zoo.lenet5 import fc_tail
    return fc_tail(model)


#: Front ends by the name a registry entry's ``engine`` field (and a program's metadata) gives.
FRONTENDS: dict[str, Frontend] = {"lenet5-conv": Frontend(_lenet5_features, _lenet5_tail)}
#: Networks ``vqe compress`` writes engine programs for (:func:`model.nets.registry.engine_networks`).
ENGINE_NETWORKS = engine_networks()


def full_network(name: str, *, seed: int = 0, progress: bool = True) -> nn.Module:
    """The trained float network ``name`` (cached after the first training)."""
    return get_network(name, progress=progress, seed=seed)


def engine_task(name: str, train_x: np.ndarray, *, seed: int = 0, progress: bool = True) -> EngineTask:
    """Split network ``name`` for the engine; ``train_x`` (training images) sets the feature scale."""
    if name not in ENGINE_NETWORKS:
        raise FrontendError(f"unknown network {name!r}; the engine runs {', '.join(ENGINE_NETWORKS)}")
    full = full_network(name, seed=seed, progress=progress)
    frontend = NETWORKS[name].engine
    if frontend == WHOLE:
        return EngineTask(name, full, full)
    raw = FRONTENDS[frontend].features(full, train_x)
    scale = float(np.percentile(raw, FEATURE_PERCENTILE))
    tail = copy.deepcopy(FRONTENDS[frontend].tail(full))
    first = next(m for m in tail if isinstance(m, nn.Linear))
    with torch.no_grad():
        first.weight.mul_(scale)
    return EngineTask(name, full, tail.eval(), frontend, scale)
