"""Nearest-prototype classifiers and their trainers: LVQ1, GLVQ and GMLVQ (Nova & Estévez 2014).

A classifier holds ``per_class`` prototypes per class (class ``c``'s are rows
``c * per_class .. (c + 1) * per_class - 1``) and, for GMLVQ, a projection
``omega`` (``rank`` x features).  It predicts the label of the nearest
prototype in squared Euclidean distance, after the projection when there is
one: ``d(x, p) = ||omega (x - p)||^2``; ties go to the lowest prototype index,
as :func:`numpy.argmin`.

Trainers (:data:`TRAINERS`), all minibatch, seeded, on one torch thread:

* ``lvq1``: Kohonen's LVQ1: the winner moves towards a sample of its class and
  away from a sample of another, by a step that decays linearly to zero.
  Minibatched: the updates of a batch are summed (a batch of :data:`LVQ1_BATCH`
  at step :data:`LVQ1_LR` moves a prototype at most a few percent of the way
  per batch, as sequential LVQ1 does over as many samples);
* ``glvq``: Sato & Yamada's GLVQ: gradient descent on the mean of
  ``sigmoid(GLVQ_BETA * mu)``, ``mu = (d+ - d-) / (d+ + d-)`` with ``d+`` the
  distance to the nearest prototype of the sample's class and ``d-`` to the
  nearest of another (Adam);
* ``gmlvq``: Schneider et al.'s GMLVQ, the same cost with the distance
  ``||omega (x - p)||^2``, ``omega`` learnt with the prototypes and normalized
  to ``trace(omega^T omega) = 1`` (limited rank, Bunte et al. 2012).

Every trainer starts from the same prototypes: per class, a seeded k-means of
that class's samples (:func:`init_prototypes`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from model.nets.training import TorchThreads

#: Prototypes per class of every model in the results (30 prototypes for Fashion-MNIST's 10 classes).
PER_CLASS = 3
#: Lloyd iterations of the per-class k-means that places the initial prototypes.
INIT_ITERS = 10
#: Torch threads of every trainer: one, so the reduction order (hence the result) is fixed and the
#: machine's other core stays free.
THREADS = 1
#: LVQ1: minibatch, initial step (a fraction of the way to the sample; linear decay to 0), epochs.
LVQ1_BATCH = 32
LVQ1_LR = 0.002
LVQ1_EPOCHS = 10
#: GLVQ and GMLVQ: minibatch, Adam step (in units of the features' RMS), epochs, and the sigmoid's slope.
GLVQ_BATCH = 128
GLVQ_LR = 0.01
GLVQ_EPOCHS = 20
GLVQ_BETA = 2.0
#: GMLVQ: rank of the projection (its rows; the engine's projection layer has this many outputs) and the
#: Adam step of ``omega`` relative to the prototypes'.
GMLVQ_RANK = 16
GMLVQ_OMEGA_LR = 0.01
#: Distances are clamped here before the ratio ``mu`` (a sample sitting on two prototypes).
EPS = 1e-12


@dataclass
class LVQModel:
    """A trained nearest-prototype classifier.

    Attributes
    ----------
    method : str
        ``"lvq1"``, ``"glvq"`` or ``"gmlvq"``.
    prototypes : numpy.ndarray of float32, shape (P, features)
    labels : numpy.ndarray of int64, shape (P,)
        Each prototype's class.
    omega : numpy.ndarray of float32, shape (rank, features), or None
        GMLVQ's projection; None is the identity (plain Euclidean distance).
    info : dict
        Training facts: epochs, steps, seconds, seed, hyperparameters.
    """
    method: str
    prototypes: np.ndarray
    labels: np.ndarray
    omega: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def project(self, x: np.ndarray) -> np.ndarray:
        """``x`` (n, features) in the space distances are measured in (``omega x``, or ``x``)."""
        x = np.asarray(x, dtype=np.float64)
        return x if self.omega is None else x @ np.asarray(self.omega, dtype=np.float64).T

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Squared distances (n, P) of every sample to every prototype, in float64."""
        z, q = self.project(x), self.project(self.prototypes)
        return np.maximum((z * z).sum(1)[:, None] - 2.0 * z @ q.T + (q * q).sum(1)[None, :], 0.0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The label of each sample's nearest prototype (ties to the lowest index)."""
        return self.labels[np.argmin(self.distances(x), axis=1)]

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == np.asarray(y)))


def prototype_labels(n_classes: int, per_class: int) -> np.ndarray:
    """Labels of ``n_classes * per_class`` prototypes, class by class."""
    return np.repeat(np.arange(n_classes, dtype=np.int64), per_class)


def init_prototypes(x: np.ndarray, y: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Initial prototypes: per class, ``per_class`` centres of a k-means of its samples (seeded random
    samples, then :data:`INIT_ITERS` Lloyd iterations; an emptied centre keeps its place).

    Returns
    -------
    (numpy.ndarray of float32, numpy.ndarray of int64)
        Prototypes (classes * per_class, features) and their labels.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    classes = np.unique(y)
    if not np.array_equal(classes, np.arange(len(classes))):
        raise ValueError(f"labels must be 0..C-1 with every class present, got {classes.tolist()}")
    rng = np.random.default_rng(seed)
    protos = []
    for c in classes:
        xc = x[y == c]
        if len(xc) < per_class:
            raise ValueError(f"class {c} has {len(xc)} samples, fewer than {per_class} prototypes")
        centres = xc[rng.choice(len(xc), per_class, replace=False)]
        for _ in range(INIT_ITERS):
            d = (xc * xc).sum(1)[:, None] - 2.0 * xc @ centres.T + (centres * centres).sum(1)[None, :]
            j = d.argmin(1)
            for k in range(per_class):
                if np.any(j == k):
                    centres[k] = xc[j == k].mean(0)
        protos.append(centres)
    return np.concatenate(protos).astype(np.float32), prototype_labels(len(classes), per_class)


def _sq_dist(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (n, P) between rows of ``z`` and ``q``."""
    return ((z * z).sum(1, keepdim=True) - 2.0 * z @ q.T + (q * q).sum(1)[None, :]).clamp_min(0.0)


def _mu(d: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """GLVQ's relative distance difference ``(d+ - d-) / (d+ + d-)`` per sample, in [-1, 1]."""
    inf = torch.finfo(d.dtype).max
    d_plus = d.masked_fill(~same, inf).min(1).values
    d_minus = d.masked_fill(same, inf).min(1).values
    return (d_plus - d_minus) / (d_plus + d_minus).clamp_min(EPS)


def _batches(n: int, batch: int, epochs: int, seed: int):
    """Seeded minibatch indices, a new order each epoch."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            yield perm[i:i + batch]


def _bar(total: int, desc: str, progress: bool):
    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=True if not progress else None)


def train_lvq1(x, y, *, per_class: int = PER_CLASS, seed: int = 0, epochs: int = LVQ1_EPOCHS,
               lr: float = LVQ1_LR, batch: int = LVQ1_BATCH, progress: bool = True) -> LVQModel:
    """LVQ1, minibatched: each batch's winners move by the sum of ``+-step (x - p)`` over the samples they won.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, features)
    y : numpy.ndarray of int, shape (n,)
        Labels 0..C-1.
    per_class : int
    seed : int
        Initial prototypes and batch order.
    epochs, lr, batch : int, float, int
        Passes, initial step (linear decay to 0 over all steps) and minibatch size.
    progress : bool

    Returns
    -------
    LVQModel
    """
    protos, labels = init_prototypes(x, y, per_class, seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    p, lab = torch.from_numpy(protos), torch.from_numpy(labels)
    steps = epochs * -(-len(xt) // batch)
    t0 = time.perf_counter()
    with torch.no_grad(), TorchThreads(THREADS), _bar(steps, "lvq1", progress) as bar:
        for s, idx in enumerate(_batches(len(xt), batch, epochs, seed)):
            xb = xt[idx]
            w = _sq_dist(xb, p).argmin(1)
            sign = torch.where(lab[w] == yt[idx], 1.0, -1.0)[:, None]
            p.index_add_(0, w, lr * (1.0 - s / steps) * sign * (xb - p[w]))
            bar.update()
    return LVQModel("lvq1", p.numpy().copy(), labels, info=dict(
        per_class=per_class, seed=seed, epochs=epochs, lr=lr, batch=batch, steps=steps,
        train_seconds=time.perf_counter() - t0, train_samples=len(xt)))


def _train_glvq(x, y, *, rank: int | None, per_class: int, seed: int, epochs: int, lr: float, batch: int,
                progress: bool) -> LVQModel:
    """GLVQ (``rank`` None) or GMLVQ with a ``rank`` x features projection: Adam on the mean sigmoid cost."""
    protos, labels = init_prototypes(x, y, per_class, seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    scale = float(xt.pow(2).mean().sqrt())       # the step is relative to the features' RMS
    p, lab = torch.nn.Parameter(torch.from_numpy(protos)), torch.from_numpy(labels)
    groups = [{"params": [p], "lr": lr * scale}]
    omega = None
    if rank is not None:
        if not 1 <= rank <= xt.shape[1]:
            raise ValueError(f"the projection's rank must be 1..{xt.shape[1]}, got {rank}")
        # Start from the plain distance restricted to the first ``rank`` features (a PCA input's leading
        # components), trace normalized: GMLVQ's usual identity start, at limited rank.
        omega = torch.nn.Parameter(torch.eye(rank, xt.shape[1]) / rank ** 0.5)
        groups.append({"params": [omega], "lr": GMLVQ_OMEGA_LR})
    opt = torch.optim.Adam(groups)
    steps = epochs * -(-len(xt) // batch)
    method = "glvq" if rank is None else "gmlvq"
    t0 = time.perf_counter()
    with TorchThreads(THREADS), _bar(steps, method, progress) as bar:
        for idx in _batches(len(xt), batch, epochs, seed):
            xb = xt[idx]
            if omega is None:
                d = _sq_dist(xb, p)
            else:
                om = omega / omega.norm()         # trace(omega^T omega) = ||omega||_F^2 = 1
                d = _sq_dist(xb @ om.T, p @ om.T)
            loss = torch.sigmoid(GLVQ_BETA * _mu(d, lab[None, :] == yt[idx][:, None])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update()
    om = None if omega is None else (omega / omega.norm()).detach().numpy().copy()
    info = dict(per_class=per_class, seed=seed, epochs=epochs, lr=lr, lr_scale=scale, batch=batch, steps=steps,
                beta=GLVQ_BETA, train_seconds=time.perf_counter() - t0, train_samples=len(xt))
    if rank is not None:
        info.update(rank=rank, omega_lr=GMLVQ_OMEGA_LR)
    return LVQModel(method, p.detach().numpy().copy(), labels, om, info)


def train_glvq(x, y, *, per_class: int = PER_CLASS, seed: int = 0, epochs: int = GLVQ_EPOCHS, lr: float = GLVQ_LR,
               batch: int = GLVQ_BATCH, progress: bool = True) -> LVQModel:
    """GLVQ (parameters as :func:`train_lvq1`; ``lr`` is Adam's step in units of the features' RMS)."""
    return _train_glvq(x, y, rank=None, per_class=per_class, seed=seed, epochs=epochs, lr=lr, batch=batch,
                       progress=progress)


def train_gmlvq(x, y, *, per_class: int = PER_CLASS, seed: int = 0, epochs: int = GLVQ_EPOCHS,
                lr: float = GLVQ_LR, batch: int = GLVQ_BATCH, rank: int = GMLVQ_RANK,
                progress: bool = True) -> LVQModel:
    """GMLVQ with a ``rank`` x features projection (parameters as :func:`train_glvq`)."""
    return _train_glvq(x, y, rank=min(rank, np.shape(x)[1]), per_class=per_class, seed=seed, epochs=epochs, lr=lr,
                       batch=batch, progress=progress)


#: The trainers by method name: ``fn(x, y, *, per_class, seed, progress, ...) -> LVQModel``.
TRAINERS: dict[str, Callable[..., LVQModel]] = {"lvq1": train_lvq1, "glvq": train_glvq, "gmlvq": train_gmlvq}


def train(method: str, x, y, **kwargs) -> LVQModel:
    """Train ``method`` (a key of :data:`TRAINERS`) on ``x``, ``y``."""
    if method not in TRAINERS:
        raise ValueError(f"unknown LVQ method {method!r}; choose one of {', '.join(TRAINERS)}")
    return TRAINERS[method](x, y, **kwargs)
