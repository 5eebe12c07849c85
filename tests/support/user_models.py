"""Networks this project does not otherwise use, as a user brings them: defined here, exported as a
``torch.export`` program (``.pt2``) and as ONNX (``torch.onnx.export(..., dynamo=False)``), with their data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

#: One input of the test models, without the batch: a 1 x 8 x 8 map.
SHAPE = (1, 8, 8)
#: Calibration and evaluation inputs.
N_CALIB, N_EVAL = 256, 16


class TinyMLP(nn.Module):
    """An MLP on the flattened map: 64 -> 24 -> 10, with a leaky ReLU."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.LeakyReLU(0.125), nn.Linear(24, 10))

    def forward(self, x):
        return self.net(x)


class TinyCNN(nn.Module):
    """conv, ReLU, max pool, flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class Residual(nn.Module):
    """A convolution whose output is added to its input: a residual connection (part B of issue 14)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)) + x, 1))


class ResidualCNN(nn.Module):
    """conv, ReLU, then a basic block (conv, ReLU, conv, plus its input, ReLU), max pool, flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = self.conv2(torch.relu(self.conv1(x)))
        return self.fc(torch.flatten(self.pool(torch.relu(y + x)), 1))


class WithGelu(nn.Module):
    """A Linear followed by GELU, which the engine has no unit for."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return nn.functional.gelu(self.fc(torch.flatten(x, 1)))


MODELS = {"mlp": TinyMLP, "cnn": TinyCNN, "rescnn": ResidualCNN}


def build(name: str, seed: int = 0) -> nn.Module:
    """Model ``name`` (of :data:`MODELS` or the refused ones) with seeded weights, in eval mode."""
    torch.manual_seed(seed)
    cls = {**MODELS, **PARTITIONED, "residual": Residual, "gelu": WithGelu, "cumsum": CumSum}[name]
    return cls().eval()


def export(model: nn.Module, path: Path, shape=SHAPE, dynamic: bool = False) -> Path:
    """``model`` written as ``path`` (``.pt2`` or ``.onnx``); ``dynamic`` leaves the map's height and width free
    (ONNX), and the batch is free in ONNX files."""
    example = torch.zeros((1, *shape))
    if path.suffix == ".pt2":
        torch.export.save(torch.export.export(model, (example,)), str(path))
    else:
        axes = {0: "n", 2: "h", 3: "w"} if dynamic else {0: "n"}
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": axes})
    return path


def data(model: nn.Module, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Calibration inputs (``calib.npy``) and an evaluation set (``eval.npz``: the float model's arg-max as labels)."""
    rng = np.random.default_rng(seed)
    calib = rng.uniform(0, 1, (N_CALIB, *SHAPE)).astype(np.float32)
    x = rng.uniform(0, 1, (N_EVAL, *SHAPE)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    np.save(folder / "calib.npy", calib)
    np.savez(folder / "eval.npz", x=x, y=y)
    return folder / "calib.npy", folder / "eval.npz"


class NormMLP(nn.Module):
    """An MLP with a LayerNorm in the middle, which the engine has no unit for: Linear, ReLU, Linear, LayerNorm
    (the host), Linear, ReLU, Linear."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 32)
        self.norm = nn.LayerNorm(32)
        self.fc3, self.fc4 = nn.Linear(32, 24), nn.Linear(24, 10)

    def forward(self, x):
        x = self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc4(torch.relu(self.fc3(self.norm(x))))


class GatedCNN(nn.Module):
    """A CNN with a sigmoid gate (``y * sigmoid(y)``) and a GELU between its convolutions, both on the host:
    conv, ReLU, conv, gate, conv, GELU, conv, ReLU, max pool, flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.conv3, self.conv4 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        y = self.conv2(torch.relu(self.conv1(x)))
        y = nn.functional.gelu(self.conv3(y * torch.sigmoid(y)))
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv4(y))), 1))


class CumSum(nn.Module):
    """A cumulative sum between Linear layers: ONNX's CumSum, which neither the engine nor the host (this
    version's ONNX reader) runs."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 10), nn.Linear(10, 10)

    def forward(self, x):
        return self.fc2(torch.cumsum(self.fc1(torch.flatten(x, 1)), 1))


#: Models with operators the engine cannot run between layers it runs: partitioned between engine and host.
PARTITIONED = {"normmlp": NormMLP, "gatedcnn": GatedCNN}


class FeedForward(nn.Module):
    """A transformer's feed-forward block in miniature: up, LayerNorm, GELU, down (seeded weights)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.up, self.norm, self.down = nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 8)

    def forward(self, x):
        return self.down(nn.functional.gelu(self.norm(self.up(x))))
