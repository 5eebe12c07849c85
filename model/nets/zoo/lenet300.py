"""LeNet-300-100 (Fashion-MNIST), delegating to :mod:`model.nets.networks`."""
from __future__ import annotations

import numpy as np
import torch

from model.nets.data import load_fashion_mnist
from model.nets.networks import get_network, predict
from model.nets.zoo import ZooNetwork

#: Test images used by ``evaluate(quick=True)``: the first ones of the 10k test split.
QUICK_TEST_IMAGES = 2000

_TEST = {}


def test_set(quick: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST test split (10k images), or its first :data:`QUICK_TEST_IMAGES` if ``quick``."""
    if "test" not in _TEST:
        _TEST["test"] = load_fashion_mnist("test")
    x, y = _TEST["test"]
    if quick:
        return x[:QUICK_TEST_IMAGES], y[:QUICK_TEST_IMAGES]
    return x, y


def evaluate_classifier(net: ZooNetwork, model: torch.nn.Module, quick: bool) -> dict[str, float]:
    """Top-1 accuracy on the Fashion-MNIST test images (and agreement with the fp32 model)."""
    x, y = test_set(quick)
    pred = predict(model, x)
    ref = net.reference(f"pred-{quick}", lambda m: predict(m, x))
    return {"accuracy": float(np.mean(pred == y)), "agreement_vs_fp32": float(np.mean(pred == ref)),
            "n_images": float(len(y))}


def distill_fashion_mnist(n: int, seed: int) -> torch.Tensor:
    """``n`` Fashion-MNIST training images (n, 784) in [0, 1], chosen by ``seed``."""
    x, _ = load_fashion_mnist("train")
    idx = np.random.default_rng(seed).choice(len(x), size=n, replace=n > len(x))
    return torch.from_numpy(x[idx])


def load(progress: bool = True, cache_dir=None) -> ZooNetwork:
    model = get_network("lenet300", cache_dir=cache_dir, progress=progress)
    layers = [str(i) for i, m in enumerate(model) if isinstance(m, torch.nn.Linear)]
    return ZooNetwork(name="lenet300", model=model, weight_layers=layers, metric_name="accuracy",
                      _evaluate=evaluate_classifier, _distill=distill_fashion_mnist,
                      description="LeNet-300-100 MLP, Fashion-MNIST top-1 accuracy on the 10k test images")
