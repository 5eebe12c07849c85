"""The input representations the LVQ classifiers are trained on (:data:`REPRESENTATIONS`).

* ``pca``: Fashion-MNIST's pixels (in [0, 1]) projected on the :data:`PCA_COMPONENTS`
  leading principal components of the training set, centred on its mean.  It
  keeps 88 % of the pixels' variance, makes Euclidean distances cheap, and
  lets the reference implementation's localized GMLVQ run at all (it holds a
  features x features matrix per prototype: 18 M parameters on the raw 784
  pixels, 123 k here).  Being an affine map of the pixels, it folds into the
  engine's first layer (:mod:`model.compress.lvq`).
* ``lenet5``: the 84 penultimate features (after the ReLU, before the last
  Linear) of the zoo's LeNet-5, the float network trained here: LVQ as a
  classifier head replacing the last layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from model.nets.data import load_fashion_mnist
from model.nets.training import TorchThreads

#: Principal components kept by the ``pca`` representation.
PCA_COMPONENTS = 64
#: Images per forward pass when computing LeNet-5's features.
FEATURE_BATCH = 2000


@dataclass
class Representation:
    """A representation's training and test features.

    Attributes
    ----------
    name, description : str
    train, test : (numpy.ndarray, numpy.ndarray)
        Features (n, dim) float32 and labels.
    affine : (numpy.ndarray, numpy.ndarray) or None
        When the features are an affine map of the pixels ``x``: ``(A, b)`` with features
        ``x @ A.T + b`` (what the engine's first layer can compute); None otherwise.
    """
    name: str
    description: str
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    affine: tuple[np.ndarray, np.ndarray] | None = None


def fit_pca(x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean (features,) and the ``components`` leading principal axes (components, features) of ``x``.

    Each axis's sign is fixed (its largest-magnitude entry positive) so the result is deterministic.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    cov = np.cov((x - mean).T)
    values, vectors = np.linalg.eigh(cov)
    axes = vectors[:, np.argsort(values)[::-1][:components]].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])
    return mean, axes * signs[:, None]


def pca_representation(components: int = PCA_COMPONENTS) -> Representation:
    """Fashion-MNIST pixels projected on the training set's leading principal components."""
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    mean, axes = fit_pca(train[0], components)
    a, b = axes, -(axes @ mean)

    def proj(x):
        return (np.asarray(x, dtype=np.float64) @ a.T + b).astype(np.float32)
    return Representation("pca", f"Fashion-MNIST pixels in [0, 1], centred and projected on the {components} "
                                 "leading principal components of the 60k training images",
                          (proj(train[0]), train[1]), (proj(test[0]), test[1]), (a, b))


@torch.no_grad()
def lenet5_features(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """LeNet-5's penultimate features (after the last hidden ReLU, before the last Linear) of pixels ``x``."""
    head = torch.nn.Sequential(model.features, *list(model.classifier)[:-1]).eval()
    out = []
    with TorchThreads(1):
        for i in range(0, len(x), FEATURE_BATCH):
            out.append(head(torch.from_numpy(np.ascontiguousarray(x[i:i + FEATURE_BATCH], dtype=np.float32))))
    return torch.cat(out).numpy()


def lenet5_representation(seed: int = 0, progress: bool = False) -> Representation:
    """The zoo LeNet-5's (float, trained here and cached) penultimate features of Fashion-MNIST."""
    from model.nets.networks import get_network
    model = get_network("lenet5", progress=progress, seed=seed)
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    return Representation("lenet5", "the 84 penultimate features (after the ReLU, before the last Linear) of "
                                    f"the zoo's float LeNet-5 (seed {seed}) on Fashion-MNIST",
                          (lenet5_features(model, train[0]), train[1]), (lenet5_features(model, test[0]), test[1]))


#: The representations by name: ``fn() -> Representation``.
REPRESENTATIONS: dict[str, Callable[[], Representation]] = {"pca": pca_representation,
                                                            "lenet5": lenet5_representation}
