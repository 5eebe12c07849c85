"""Residual connections lowered from torch (``y = f(x) + x``): the skip saved, the add on the engine, the float
network unchanged; what is not a residual block the engine runs is refused in one line naming the operator."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model.nets.graph.modules import EngineAdd, EngineSave
from model.nets.graph.trace import GraphError, lower_graph


class Blocks(nn.Module):
    """Linear, then two residual blocks in sequence (the first add's output is the second's skip)."""

    def __init__(self, width=12):
        super().__init__()
        self.inp, self.a1, self.a2, self.b1, self.out = (nn.Linear(n, m) for n, m in
                                                         ((10, width), (width, width), (width, width),
                                                          (width, width), (width, 3)))

    def forward(self, x):
        x = torch.relu(self.inp(x))
        x = torch.relu(self.a2(torch.relu(self.a1(x))) + x)
        x = torch.add(self.b1(x), x)
        return self.out(x)


def test_blocks_in_sequence_lower_to_save_and_add_and_compute_the_same():
    torch.manual_seed(0)
    model = Blocks().eval()
    net = lower_graph(model, (10,), 4)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["EngineInput", "EngineLinear", "ReLU", "EngineSave", "EngineLinear", "ReLU", "EngineLinear",
                     "EngineAdd", "ReLU", "EngineSave", "EngineLinear", "EngineAdd", "EngineLinear"]
    x = torch.randn(7, 10)
    torch.testing.assert_close(net(x), model(x))
    import copy
    coded = torch.nn.Sequential(*(copy.deepcopy(m) for m in net))   # copied module by module, as methods do
    torch.testing.assert_close(coded(x), model(x))
    saves, adds = [m for m in coded if isinstance(m, EngineSave)], [m for m in coded if isinstance(m, EngineAdd)]
    assert [s.box for s in saves] == [a.box for a in adds] and saves[0].box is not saves[1].box


def test_calibration_gives_the_skip_and_the_branch_one_scale():
    from model.compress.lowering import calibrate
    torch.manual_seed(1)
    net = lower_graph(Blocks().eval(), (10,), 4)
    hidden, out = calibrate(net, np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32), 5)
    # Scaled outputs in order: inp, a1, a2, add 1, b1, add 2 (out last): each add's operands share one.
    assert len(hidden) == 6 and len(out) == 1
    assert hidden[0] == hidden[2] and hidden[3] == hidden[4]
    assert hidden[0] != hidden[1]


class InputSkip(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(x) + x


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        x = torch.relu(self.a(x))
        return self.b(x) + self.c(x)


class Overlapping(nn.Module):
    """The second add's skip is older than the first add's output."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        x = torch.relu(self.a(x))
        y = torch.relu(self.b(x) + x)
        return self.c(y) + x


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        x = torch.relu(self.a(x))
        return torch.add(self.b(x), x, alpha=2)


@pytest.mark.parametrize("model, words", [
    (InputSkip, ["node 'add'", "skip is the network's input", "y = f(x) + x"]),
    (TwoBranches, ["node 'add'", "both come from branches", "y = f(x) + x"]),
    (Overlapping, ["node 'add_1'", "not the vector saved most recently", "y = f(x) + x"]),
    (Scaled, ["node 'add'", "alpha=2", "y = f(x) + x"]),
])
def test_unsupported_adds_are_one_line(model, words):
    torch.manual_seed(0)
    with pytest.raises(GraphError) as e:
        lower_graph(model().eval(), (8,), 4)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
