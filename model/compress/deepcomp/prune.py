"""Iterative magnitude pruning with retraining (Deep Compression, step 1).

Each ``nn.Linear`` weight matrix of a trained network gets a binary mask.  A
pruning round keeps, in every layer, the largest-magnitude weights that the
round's target density allows and zeroes the rest; the surviving weights (and
all biases) are then retrained with the masks held fixed.  Densities shrink
geometrically from 1 to each layer's final target over the rounds, so each
round removes the same fraction of what is left and the network can recover
between rounds (Han et al., "Learning both weights and connections", 2015).

Weights that a mask removes are exactly 0.0 from then on: the gradient is
masked before the optimizer step, which leaves Adam's moments at zero for
those entries, and the weight is multiplied by its mask after every step so
no rounding can revive it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model.nets.training import as_tensors, cosine_lr, train_epochs

#: Training threads: pinned so the floating-point reduction order, hence the
#: trained weights, do not depend on the machine's core count.
TRAIN_THREADS = 1


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` modules of ``model``, input side first."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ValueError("the model has no nn.Linear layers to prune")
    return layers


def magnitude_mask(weight: np.ndarray, density: float) -> np.ndarray:
    """Mask keeping the ``round(density * size)`` largest-magnitude entries of ``weight``.

    Ties at the threshold are broken by position (a stable sort), so the mask
    is deterministic and holds exactly the requested number of ones.

    Parameters
    ----------
    weight : numpy.ndarray
    density : float
        Fraction of entries kept, in (0, 1].

    Returns
    -------
    numpy.ndarray of bool, same shape as ``weight``
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    w = np.asarray(weight)
    keep = max(1, int(round(density * w.size)))
    order = np.argsort(-np.abs(w).ravel(), kind="stable")
    mask = np.zeros(w.size, dtype=bool)
    mask[order[:keep]] = True
    return mask.reshape(w.shape)


def density_schedule(targets, rounds: int) -> list[list[float]]:
    """Per-round densities falling geometrically from 1 to ``targets`` in ``rounds`` rounds.

    Returns
    -------
    list of list of float
        ``rounds`` lists, one density per layer; the last equals ``targets``.
    """
    if rounds < 1:
        raise ValueError(f"at least one pruning round is needed, got {rounds}")
    targets = [float(t) for t in targets]
    for t in targets:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"target densities must be in (0, 1], got {t}")
    return [[t ** ((r + 1) / rounds) for t in targets] for r in range(rounds)]


def apply_masks(layers: list[nn.Linear], masks: list[torch.Tensor]) -> None:
    """Zero every pruned weight in place."""
    with torch.no_grad():
        for layer, m in zip(layers, masks):
            layer.weight.mul_(m)


def train_masked(model: nn.Module, masks: list[torch.Tensor], x: np.ndarray, y: np.ndarray, *, epochs: int,
                 batch: int, lr: float, seed: int, progress: bool = True, desc: str = "retrain",
                 anneal: bool = False) -> nn.Module:
    """Retrain ``model`` (Adam, cross-entropy) with its Linear weights held to ``masks``.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place and returned, in eval mode.
    masks : list of torch.Tensor
        One 0/1 float mask per ``nn.Linear`` (input side first), shaped like its weight.
    x, y : numpy.ndarray
        Inputs (n, features) and labels (n,).
    epochs, batch : int
    lr : float
    seed : int
        Seeds the minibatch order.
    progress : bool
    desc : str
        Progress bar label.
    anneal : bool
        Decay the step size from ``lr`` to 0 along a cosine over the run (a
        settled end point recovers more accuracy than a constant step).
    """
    layers = linear_layers(model)
    if len(masks) != len(layers) or any(m.shape != l.weight.shape for m, l in zip(masks, layers)):
        raise ValueError("need one mask per Linear layer, shaped like its weight")
    xt, yt = as_tensors(x, y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()

    def step(idx):
        loss = loss_fn(model(xt[idx]), yt[idx])
        loss.backward()
        for layer, m in zip(layers, masks):
            layer.weight.grad.mul_(m)   # pruned weights get no update ...
        return loss
    apply_masks(layers, masks)
    model.train()
    train_epochs(len(xt), step, opt, epochs=epochs, batch=batch, seed=seed, threads=TRAIN_THREADS,
                 progress=progress, desc=desc, lr=(lambda k, steps: cosine_lr(lr, k, steps)) if anneal else None,
                 after_step=lambda: apply_masks(layers, masks))   # ... and Adam's momentum cannot revive them
    model.eval()
    return model


def iterative_prune(model: nn.Module, targets, x: np.ndarray, y: np.ndarray, *, rounds: int, epochs_per_round: int,
                    batch: int, lr: float, seed: int, progress: bool = True, anneal: bool = False,
                    final_epochs: int = 0) -> list[torch.Tensor]:
    """Prune ``model`` in place to per-layer ``targets`` densities over ``rounds`` prune-and-retrain rounds.

    Each round recomputes every layer's mask from the current weights'
    magnitudes (a weight pruned earlier is 0 and can only come back if fewer
    than the new count of weights are non-zero, which a falling schedule
    never allows), then retrains with :func:`train_masked`.

    Returns
    -------
    list of torch.Tensor
        The final 0/1 float masks, one per ``nn.Linear``.
    """
    layers = linear_layers(model)
    targets = list(targets)
    if len(targets) != len(layers):
        raise ValueError(f"{len(targets)} target densities for {len(layers)} Linear layers")
    masks = []
    for r, densities in enumerate(density_schedule(targets, rounds)):
        masks = [torch.from_numpy(magnitude_mask(l.weight.detach().numpy(), d).astype(np.float32))
                 for l, d in zip(layers, densities)]
        epochs = epochs_per_round + (final_epochs if r == rounds - 1 else 0)
        train_masked(model, masks, x, y, epochs=epochs, batch=batch, lr=lr, seed=seed + r,
                     progress=progress, desc=f"prune {r + 1}/{rounds}", anneal=anneal)
    return masks
