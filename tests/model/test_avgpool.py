"""Average pooling (the AVGPOOL kind): golden model against float references, lowering from torch, refusals.

The references share nothing with the golden model but the program: PyTorch's
``avg_pool2d`` on NCHW maps (float, so the golden model is within one int8
step of it), and, end to end, a small torch network with ``AvgPool2d`` and
``AdaptiveAvgPool2d((1, 1))`` lowered, quantized and run by the golden model.
"""
import copy
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.codecs.layers.kinds import kind_named
from model.codecs.vectors import random_vectors
from model.compress.lowering import LayerCoding, LoweredAvgPool, LoweredNetwork, lower_sequence
from model.compress.program_net import program_outputs, dequantize
from model.contract.config import EngineConfig
from model.contract.errors import EngineError, EngineFault
from model.contract.fixedpoint import quantize_multiplier
from model.contract.window import Window
from model.contract.descriptor import Descriptor
from model.golden.engine import GoldenEngine
from model.golden.windows import forward
from model.nets.graph.modules import WEIGHT_LAYERS, EngineAvgPool
from model.nets.graph.trace import GraphError, lower_graph
from model.program.synthetic import random_lowered
from model.program.writer import build_program


@pytest.mark.parametrize("seed", range(12))
def test_golden_average_pooling_is_torch_avg_pool_within_one_step(seed):
    """Golden outputs against float ``avg_pool2d`` (padding counted as zeros) times the requantization."""
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([1, 2, 4, 8]))
    groups, h, w = int(rng.integers(1, 3)), int(rng.integers(2, 7)), int(rng.integers(2, 7))
    kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    sy, sx = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    pt, pl = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
    oh, ow = (h + 2 * pt - kh) // sy + 1, (w + 2 * pl - kw) // sx + 1
    win = Window(groups, w, h, ow, oh, kw, kh, sx, sy, pl, pt)
    mult, shift = quantize_multiplier(1 / win.taps())
    ch = win.channels(lanes)
    layer = _decoded(win, ch, mult, shift)
    x = random_vectors(rng, 4, h * w * ch)
    out = forward(layer, x.astype(np.int64), lanes).astype(np.float64)
    maps = torch.tensor(x.astype(np.float64)).reshape(len(x), h, w, ch).permute(0, 3, 1, 2)
    ref = F.avg_pool2d(maps, (kh, kw), (sy, sx), (pt, pl), count_include_pad=True)
    ref = ref.permute(0, 2, 3, 1).reshape(len(x), -1).numpy()
    assert out.shape == ref.shape
    # One int8 step: round-half-up of sum * mult / 2**shift, mult / 2**shift within 2**-16 of 1 / taps.
    assert np.abs(out - ref).max() <= 0.5 + 128 * win.taps() * 2.0 ** -16 + 1e-9
    assert np.abs(out - ref).mean() < 0.3


def _decoded(win: Window, ch: int, mult: int, shift: int, **activation):
    """An average-pooling layer as the golden model reads it from its descriptor."""
    rule = kind_named("avgpool")
    desc = rule.rowless_descriptor(0, SimpleNamespace(in_features=win.taps() * ch, out_features=ch, mult=mult,
                                                      shift=shift, relu=activation.get("relu", False),
                                                      floor=activation.get("floor", False),
                                                      act=activation.get("act", 0)))
    desc.kind, desc.window = rule.kind, win
    return rule.rowless_layer(Descriptor.decode(desc.encode()))


def test_golden_average_pooling_counts_reads_writes_and_adds():
    """Per image: the descriptor, one read per lane-word of a tap inside the map, a write per output
    lane-word, and ``lanes`` adds per read."""
    lanes = 4
    win = Window(1, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1)    # 2x2 windows at stride 2 over a padded 3x3 map
    rule = kind_named("avgpool")
    layer = _decoded(win, 4, 3, 2)
    c = rule.counters(None, layer, 5, EngineConfig(lanes=lanes, rom=((0,) * lanes,), windows=True, avgpool=True))
    inside = 1 + 2 + 2 + 4       # taps inside the map at positions (0,0), (0,1), (1,0), (1,1)
    assert c["sram_reads"] == 5 * inside and c["adds"] == 5 * inside * lanes
    assert c["sram_writes"] == 5 * 4 and c["dram_read_words"] == 5 * 8 and c["macs"] == 0
    assert list(layer.mult) == [3] * 4 and list(layer.shift) == [2] * 4


def test_average_pooling_needs_its_unit():
    """An AVGPOOL layer on an engine without the average-pooling unit stops with BAD_MODE."""
    rng = np.random.default_rng(3)
    win = Window(1, 2, 2, 1, 1, 2, 2)
    ch = win.channels(4)
    pool = SimpleNamespace(kind="avgpool", window=win, in_features=4 * ch, out_features=ch, mult=1, shift=2,
                           relu=False, floor=False, act=0)
    fc = random_lowered(rng, 4, [8, win.in_map(4)], 16).layers[0]
    low = SimpleNamespace(name="p", method="random", lanes=4, input_scale=1 / 127, output_scale=1.0,
                          layers=[fc, pool], info={})
    program = build_program(low, codebook_depth=16)
    image, *_ = program.dram_image(random_vectors(rng, 1, 8))
    GoldenEngine(program.config).run(image)
    with pytest.raises(EngineFault) as e:
        GoldenEngine(dataclasses.replace(program.config, avgpool=False)).run(image)
    assert e.value.code == EngineError.BAD_MODE
    with pytest.raises(ValueError, match="avgpool needs windows"):
        EngineConfig(lanes=4, rom=((0,) * 4,), avgpool=True)


# --- lowering from torch ----------------------------------------------------------------------


class _PoolNet(nn.Module):
    """Conv, ReLU, AvgPool2d (padded), conv, ReLU, global average pooling, Linear."""

    def __init__(self, adaptive, pool=None):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 6, 3, padding=1)
        self.pool = pool or nn.AvgPool2d(2, 2, padding=1)
        self.conv2 = nn.Conv2d(6, 5, 3)
        self.gap = adaptive
        self.fc = nn.Linear(5, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.gap(F.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


def _float_same(model, shape, lanes, n=5):
    model.eval()
    net = lower_graph(model, shape, lanes)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32))
    with torch.no_grad():
        ref, out = model(x), net(x)
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4), (out - ref).abs().max()
    return net


@pytest.mark.parametrize("gap, pool", [
    (lambda: nn.AdaptiveAvgPool2d((1, 1)), lambda: None), (lambda: nn.AdaptiveAvgPool2d(1), lambda: None),
    (lambda: _Functional(lambda x: F.adaptive_avg_pool2d(x, (1, 1))),
     lambda: _Functional(lambda x: F.avg_pool2d(x, 2, stride=2, padding=1)))])
def test_avgpool_and_global_pooling_lower_exactly_in_float(gap, pool):
    torch.manual_seed(0)
    net = _float_same(_PoolNet(gap(), pool()), (2, 8, 8), 4)
    pools = [m for m in net if isinstance(m, EngineAvgPool)]
    assert [(p.window.kernel_h, p.window.kernel_w, p.window.pad_top) for p in pools] == [(2, 2, 1), (3, 3, 0)]


class _Functional(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Pool1d(nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)
        self.pool = pool
        self.fc = nn.Linear(4 * 4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))


@pytest.mark.parametrize("pool", [lambda: nn.AvgPool1d(2), lambda: nn.AdaptiveAvgPool1d(4),
                                  lambda: _Functional(lambda x: F.avg_pool1d(x, 2, 2)),
                                  lambda: nn.AvgPool1d(3, 2, padding=1)])
def test_1d_average_pooling_lowers_exactly_in_float(pool):
    torch.manual_seed(1)
    _float_same(_Pool1d(pool()), (3, 10), 2)


def _coded(net: nn.Sequential, lanes: int = 1):
    """Every weight layer's rows as int8 values times a per-row scale (the "codebook" is every int8 value):
    what a compression method hands :func:`lower_sequence`, with no loss beyond int8 weights."""
    coded = copy.deepcopy(net)
    codings = []
    values = np.arange(-127, 128, dtype=np.int8)[:, None]
    for m in coded:
        if isinstance(m, WEIGHT_LAYERS):
            w = m.weight.detach().double().numpy()
            scale = np.maximum(np.abs(w).max(axis=1), 1e-12) / 127
            q = np.round(w / scale[:, None]).astype(np.int64)
            codings.append(LayerCoding(values, q + 127, scale, m.bias.detach().double().numpy()))
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(q * scale[:, None]))
    return coded, codings


def test_a_network_with_average_pooling_runs_on_the_golden_model_as_torch_does():
    """AvgPool2d and AdaptiveAvgPool2d((1, 1)) end to end: lowered, quantized, written, run by the golden
    model; the outputs are torch's within quantization error."""
    torch.manual_seed(2)
    model = _PoolNet(nn.AdaptiveAvgPool2d((1, 1))).eval()
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (64, 2, 8, 8)).astype(np.float32)
    net = lower_graph(model, (2, 8, 8), 1).eval()
    coded, codings = _coded(net)
    calib = net[0](torch.from_numpy(x)).numpy()
    layers, scales, out_scales = lower_sequence(net, coded, codings, calib, 1, net.outputs)
    assert [l.kind for l in layers] == ["conv", "avgpool", "conv", "avgpool", "fc"]
    pools = [l for l in layers if isinstance(l, LoweredAvgPool)]
    assert all(abs(p.mult / 2 ** p.shift * p.window.taps() - 1) < 1e-4 for p in pools)
    lowered = LoweredNetwork("poolnet", "vq", 1, scales[0], out_scales[0], layers, {}, out_scales)
    program = build_program(lowered, codebook_depth=256)
    program.meta["input_index"] = net.input_index.tolist()
    assert program.config.avgpool
    got = dequantize(program, program_outputs(program, x))
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    err = np.abs(got - ref)
    span = np.abs(ref).max()
    print(f"max error {err.max():.4f}, mean {err.mean():.4f}, largest |output| {span:.4f}")
    assert err.max() < 0.08 * span and err.mean() < 0.02 * span, (err.max(), err.mean(), span)


@pytest.mark.parametrize("pool, match", [
    (lambda: nn.AvgPool2d(3, 2, ceil_mode=True), r"AvgPool2d \(node 'pool'.*ceil_mode=True does not run.*"
                                                 "count_include_pad=True"),
    (lambda: nn.AvgPool2d(3, 1, padding=1, count_include_pad=False), "count_include_pad=False does not run"),
    (lambda: nn.AvgPool2d(2, divisor_override=3), "divisor_override=3 does not run"),
    (lambda: nn.AdaptiveAvgPool2d((3, 3)), r"AdaptiveAvgPool2d \(node 'pool'.*output 3x3 does not divide the input "
                                           "8x8"),
])
def test_average_pooling_the_engine_cannot_run_is_refused_in_one_line(pool, match):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)
            self.pool = pool()

        def forward(self, x):
            return torch.flatten(self.pool(self.conv(x)), 1)

    with pytest.raises(GraphError, match=match) as e:
        lower_graph(Net().eval(), (1, 8, 8), 4)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("length, out, match", [
    (300, 1, "kernel 300 does not fit the window's 8-bit field"),
    (32, 2, "stride 16 does not fit the window's 3-bit field"),
])
def test_adaptive_pooling_beyond_the_window_fields_is_refused(length, out, match):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 2, 1)

        def forward(self, x):
            return torch.flatten(F.adaptive_avg_pool1d(self.conv(x), out), 1)

    with pytest.raises(GraphError, match=match):
        lower_graph(Net().eval(), (1, length), 4)
