"""Lowering torch graphs onto the engine's layer kinds: the lowered network computes what the source does."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.nets.graph.modules import PAD, EngineConv, EngineLinear, EngineMaxPool
from model.nets.graph.trace import GraphError, lower_graph


def _same(model: nn.Module, shape, lanes: int, seed: int = 0, n: int = 7):
    model.eval()
    net = lower_graph(model, shape, lanes)
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32))
    with torch.no_grad():
        ref, out = model(x), net(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4), (out - ref).abs().max()
    return net


class _Conv2dNet(nn.Module):
    """Random 2-D geometry: BN folded, ceil-mode pooling, a permute before flatten (as MTCNN's)."""

    def __init__(self, rng, c_in, side):
        super().__init__()
        c1, c2 = (int(v) for v in rng.integers(1, 11, size=2))
        k1, k2 = (int(v) for v in rng.integers(1, 4, size=2))
        self.conv1 = nn.Conv2d(c_in, c1, k1, stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, k1)))
        self.bn1 = nn.BatchNorm2d(c1)
        self.pool = nn.MaxPool2d(int(rng.integers(1, 4)), int(rng.integers(1, 3)), ceil_mode=bool(rng.integers(2)))
        self.conv2 = nn.Conv2d(c1, c2, k2, padding=int(rng.integers(0, k2)))
        self.permute = bool(rng.integers(2))
        with torch.no_grad():
            self.bn1.running_mean.normal_()
            self.bn1.running_var.uniform_(0.5, 2)
            self.bn1.weight.normal_()
            self.bn1.bias.normal_()
            h = self.features(torch.zeros(1, c_in, side, side))
        self.fc = nn.Linear(h.numel(), int(rng.integers(1, 9)))

    def features(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.conv2(x))
        if self.permute:
            x = x.permute(0, 3, 2, 1).contiguous()
        return x.view(x.shape[0], -1)

    def forward(self, x):
        return self.fc(self.features(x))


@pytest.mark.parametrize("seed", range(12))
def test_random_2d_networks_compute_what_torch_computes(seed):
    rng = np.random.default_rng(seed)
    c_in, side, lanes = int(rng.integers(1, 5)), int(rng.integers(6, 12)), int(rng.choice([1, 4, 8]))
    _same(_Conv2dNet(rng, c_in, side), (c_in, side, side), lanes, seed)


class _Conv1dNet(nn.Module):
    """CREPE's shape of network: an input padded by more than a window's pad field, conv, ReLU, pool, BN'd conv."""

    def __init__(self, pad):
        super().__init__()
        self.pad = pad
        self.conv1 = nn.Conv1d(1, 5, 9, stride=2)
        self.conv2 = nn.Conv1d(5, 6, 4)
        self.bn2 = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6 * 11, 3)

    def forward(self, x):
        x = F.pad(x[:, None, :], (self.pad, self.pad))
        x = F.max_pool1d(F.relu(self.conv1(x)), 2, 2)
        x = F.pad(x, (1, 2))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.max_pool1d(x, 2)
        return torch.sigmoid(self.fc(x.permute(0, 2, 1).reshape(x.shape[0], -1)))


def test_1d_network_padding_beyond_the_field_is_the_hosts():
    model = _Conv1dNet(pad=40).eval()
    net = lower_graph(model, (17,), 4)
    assert net.outputs == [{"start": 0, "stop": 3, "activation": "sigmoid"}]
    x = torch.randn(5, 17)
    with torch.no_grad():
        assert torch.allclose(net.source_outputs(net(x)), model(x), atol=1e-5)
    # The host wrote the 40 zeros on either side: 97 positions of 4 channels, one of them real.
    index = net.input_index
    assert len(index) == 97 * 4 and np.sum(index != PAD) == 17
    assert [type(m) for m in net if not isinstance(m, nn.ReLU)][1:] == [EngineConv, EngineMaxPool, EngineConv,
                                                                         EngineMaxPool, EngineLinear]
    assert net[1].window.pad_left == 0 and net[4].window.pad_left == 1


def test_small_first_padding_stays_in_the_window():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 25, 2))
    net = _same(model, (1, 5, 5), 4)
    assert len(net.input_index) == 25 * 4 and net[1].window.pad_left == 1


@pytest.mark.parametrize("model, shape, match", [
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU()), (3, 8, 8), r"operator GELU \(node '_1', module '1'\) does not run"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(4)), (3, 8, 8),
     "follows something else"),
    (nn.Sequential(nn.Conv1d(1, 4, 300)), (1, 400), "kernel 300 does not fit"),
    (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), (4, 8, 8), "only groups=1"),
    (nn.Sequential(nn.Linear(4, 4), nn.Tanh()), (4,), "Tanh"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()), (1, 5, 5), "a run of the last layer's values"),
])
def test_what_cannot_run_is_named(model, shape, match):
    with pytest.raises(GraphError, match=match):
        lower_graph(model.eval(), shape, 4)


class _Heads(nn.Module):
    """MTCNN's shape of network: PReLU after a convolution and a Linear, three heads, one of them softmaxed."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        self.prelu = nn.PReLU(5)
        self.fc = nn.Linear(5 * 4 * 4, 7)
        self.act = nn.LeakyReLU(0.3)
        self.a, self.b, self.c = nn.Linear(7, 2), nn.Linear(7, 3), nn.Linear(7, 4)
        with torch.no_grad():
            self.prelu.weight.uniform_(-0.7, 1.3)

    def forward(self, x):
        x = self.prelu(self.conv(x)).permute(0, 3, 2, 1).contiguous()
        x = self.act(self.fc(x.view(x.shape[0], -1)))
        return self.b(x), torch.softmax(self.a(x), dim=1), self.c(x)


def test_parametric_relu_and_parallel_heads():
    model = _Heads().eval()
    net = lower_graph(model, (3, 6, 6), 4)
    # Rows in the order the heads are computed (b, a, c); outputs in the order they are returned.
    assert net.outputs == [{"start": 0, "stop": 3, "activation": None}, {"start": 3, "stop": 5, "activation": "softmax"},
                           {"start": 5, "stop": 9, "activation": None}]
    assert net[-1].out_features == 9      # the three heads are one layer
    x = torch.randn(5, 3, 6, 6)
    with torch.no_grad():
        for ref, out in zip(model(x), net.source_outputs(net(x))):
            assert torch.allclose(ref, out, atol=1e-5)


def test_batch_norm_after_relu_is_a_floor():
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.BatchNorm1d(3), nn.Flatten(), nn.Linear(3 * 6, 2)).eval()
    with torch.no_grad():
        model[2].running_mean.normal_()
        model[2].weight.uniform_(0.5, 2)
        model[2].bias.normal_()
    net = _same(model, (2, 8), 4)
    assert [type(m).__name__ for m in net][1:4] == ["EngineConv", "EngineActivation", "EngineLinear"]
    with torch.no_grad():
        model[2].weight[0] = -1.0         # a negative scale is not a floor
    with pytest.raises(GraphError, match="every channel's scale is positive"):
        lower_graph(model, (2, 8), 4)


def test_a_first_kernel_too_wide_goes_space_to_depth():
    """CREPE's first layer (kernel 512, stride 4): the host writes its input 4 columns per position."""
    model = nn.Sequential(nn.Conv1d(1, 3, 300, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 26, 2)).eval()
    net = _same(model, (1, 400), 4)
    win = net[1].window
    assert (win.kernel_w, win.stride_x, win.channel_groups) == (75, 1, 1) and net[1].in_features == 300


def test_branches_are_refused():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.b(h) + self.b(torch.relu(self.a(x)))
    with pytest.raises(GraphError, match="does not run|earlier layer|residual blocks overlap"):
        lower_graph(Branch(), (4,), 4)


def test_linear_chain_is_recognised():
    mlp = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    chain = lower_graph(mlp, (6,), 4).linear_chain()
    assert [type(m) for m in chain] == [nn.Linear, nn.ReLU, nn.Linear]
    conv = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(4, 2))
    assert lower_graph(conv, (1, 2, 2), 4).linear_chain() is None


@pytest.mark.parametrize("name", ["lenet5", "rnet", "onet", "crepe-tiny"])
def test_zoo_networks_lower_exactly(name):
    """Every convolutional network of the zoo, through the one lowering: the same outputs as the network."""
    from model.nets.registry import NETWORKS
    from model.nets.tasks import full_network
    from model.nets.zoo import missing_packages
    if missing_packages(name):
        pytest.skip(f"{name} needs {missing_packages(name)}")
    model = full_network(name, progress=False).eval()
    net = lower_graph(model, NETWORKS[name].input_shape, 4)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((3, *NETWORKS[name].input_shape)).astype(np.float32))
    with torch.no_grad():
        ref, out = model(x), net.source_outputs(net(x))
    for r, o in zip(ref if isinstance(ref, tuple) else (ref,), out if isinstance(out, tuple) else (out,)):
        assert torch.allclose(r, o, atol=1e-4, rtol=1e-4)


def test_a_map_larger_than_the_largest_activation_sram_is_refused():
    from model.nets.tasks import TaskError, check_maps_fit
    model = nn.Sequential(nn.Conv2d(1, 64, 1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 64 * 64, 2)).eval()
    net = lower_graph(model, (1, 64, 64), 4)
    with pytest.raises(TaskError, match="the conv output map 64x64x64 holds 262,144 values"):
        check_maps_fit("big", net)
    small = nn.Sequential(nn.Conv2d(1, 8, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 2)).eval()
    check_maps_fit("small", lower_graph(small, (1, 4, 4), 4))
