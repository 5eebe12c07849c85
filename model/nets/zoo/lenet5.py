"""LeNet-5 style CNN trained here on Fashion-MNIST, cached like LeNet-300-100.

Architecture (input (n, 784) or (n, 1, 28, 28) pixels in [0, 1])::

    features:   conv 6@5x5 (pad 2) - ReLU - maxpool 2 - conv 16@5x5 - ReLU - maxpool 2 - flatten (400)
    classifier: Linear 400->120 - ReLU - Linear 120->84 - ReLU - Linear 84->10

``classifier`` is a :class:`model.nets.networks.MLP` (an ``nn.Sequential`` of
Linear / ReLU).  The engine runs the whole network, lowered from its torch
graph (:mod:`model.nets.graph.trace`).
"""
from __future__ import annotations

import time

import torch
from torch import nn

from model.nets.data import IMAGE_SIDE, N_CLASSES, load_fashion_mnist
from model.nets.networks import MLP, TrainRecipe, get_network
from model.nets.training import as_tensors, train_epochs
from model.nets.zoo import ZooNetwork
from model.nets.zoo.lenet300 import distill_fashion_mnist, evaluate_classifier

#: Cache key part: bump when the architecture or recipe below changes.
RECIPE = "r1"
#: Training recipe: Adam with a one-cycle schedule (peak LR_MAX), batch 128,
#: all 60k training images.  Seed 0: 89.9 % test accuracy after 10 epochs of
#: about 15 s CPU each on one thread (89.9 %; 88.9 % after 6 epochs).
EPOCHS = 10
BATCH = 128
LR_MAX = 2e-3
#: Training runs on one thread: small convolutions gain little from a second
#: one, and a fixed count keeps the trained weights reproducible.
TRAIN_THREADS = 1
TAIL_WIDTHS = (400, 120, 84, N_CLASSES)


class ToImage(nn.Module):
    """(n, 784) or (n, 1, 28, 28) -> (n, 1, 28, 28)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE)


class LeNet5(nn.Module):
    """LeNet-5: ``features`` (conv/pool, ends with flatten to 400) then ``classifier`` (MLP 400-120-84-10)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            ToImage(),
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten())
        self.classifier = MLP(TAIL_WIDTHS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


#: Qualified names of the weight layers, in forward order.
WEIGHT_LAYERS = ["features.1", "features.4", "classifier.0", "classifier.2", "classifier.4"]


def train_lenet5(seed: int = 0, epochs: int = EPOCHS, progress: bool = True) -> LeNet5:
    """Train LeNet-5 on the 60k Fashion-MNIST training images, deterministically in ``seed``."""
    x, y = load_fashion_mnist("train")
    xt, yt = as_tensors(x, y)
    torch.manual_seed(seed)
    model = LeNet5()
    steps = epochs * -(-len(xt) // BATCH)
    opt = torch.optim.Adam(model.parameters(), lr=LR_MAX)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR_MAX, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()

    def step(idx):
        loss = loss_fn(model(xt[idx]), yt[idx])
        loss.backward()
        return loss
    t0 = time.perf_counter()
    model.train()
    train_epochs(len(xt), step, opt, epochs=epochs, batch=BATCH, seed=seed, threads=TRAIN_THREADS,
                 progress=progress, desc="lenet5", after_step=sched.step)
    model.eval()
    model.train_seconds = time.perf_counter() - t0
    model.epochs = epochs
    return model


#: How LeNet-5 is built, trained and cached (:func:`model.nets.networks.get_network`).
RECIPE_LENET5 = TrainRecipe(build=lambda: LeNet5(), train=train_lenet5, dataset="fashion-mnist",
                            cache_key=f"lenet5-{RECIPE}")


def load(progress: bool = True, cache_dir=None) -> ZooNetwork:
    model = get_network("lenet5", cache_dir=cache_dir, progress=progress)
    return ZooNetwork(
        name="lenet5", model=model, weight_layers=list(WEIGHT_LAYERS), metric_name="accuracy",
        _evaluate=evaluate_classifier, _distill=distill_fashion_mnist,
        description="LeNet-5 CNN trained here, Fashion-MNIST top-1 accuracy on the 10k test images")
