"""PVQ compression of networks: K per budget, lowering contract, golden forward, accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.codecs.pvq import pvq_bits, pvq_decode_many
from model.compress.lowering import INT32_MAX, INT32_MIN, LoweredNetwork, golden_forward
from model.compress.pvq.budget import ROW_OVERHEAD_BITS, SCALE_BITS, SCALE_MAX, choose_layer_k, pvq_layer_bits
from model.compress.pvq.layers import PVQLayer, integer_scales, pvq_to_torch
from model.compress.pvq.lower import acc_bound, evaluate_lowered_pvq, golden_forward_pvq
from model.compress.pvq.network import pvq_compress
from model.contract.fixedpoint import MULT_BITS, SHIFT_MAX, quantize_act, requantize, wrap_acc
from model.nets.data import DataError, load_fashion_mnist
from model.nets.networks import MLP, cache_path, evaluate, get_network

#: Small MLP whose widths are multiples of neither 4 nor 8, so every row has a padded sub-vector.
WIDTHS = (30, 21, 10)
CALIB = 300


def random_mlp(widths=WIDTHS, seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(widths).eval()


def random_vectors(n: int, features: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, features)).astype(np.float32)


def lowered_small(lanes: int, **kw):
    model = random_mlp()
    kw.setdefault("k", 3)
    net, lowered = pvq_compress(model, lanes=lanes, finetune_epochs=0, progress=False,
                                calib_x=random_vectors(CALIB, WIDTHS[0]), **kw)
    return model, net, lowered


# ---------------------------------------------------------------------------
# Bits and K


@pytest.mark.parametrize("lanes", [4, 8])
@pytest.mark.parametrize("shape", [(784, 300), (300, 100), (100, 10), (30, 21)])
@pytest.mark.parametrize("bits", [2.0, 2.5, 3.0, 4.0, 5.5])
def test_choose_layer_k_is_largest_within_budget(lanes, shape, bits):
    in_f, out_f = shape
    k = choose_layer_k(in_f, out_f, lanes, bits)
    per_weight = lambda kk: pvq_layer_bits(in_f, out_f, lanes, kk) / (in_f * out_f)
    if k == 0:
        assert per_weight(1) > bits
    else:
        assert per_weight(k) <= bits + 1e-12
        assert per_weight(k + 1) > bits


def test_layer_bits_formula():
    # 784 inputs in 4 lanes: 196 sub-vectors of pvq_bits + 8 bits, plus 64 bits per row.
    assert pvq_layer_bits(784, 300, 4, 3) == 300 * (196 * (pvq_bits(4, 3) + SCALE_BITS) + ROW_OVERHEAD_BITS)
    # The padded last sub-vector is paid in full: 30 inputs in 8 lanes are 4 sub-vectors.
    assert pvq_layer_bits(30, 1, 8, 2, row_overhead=False) == 4 * (pvq_bits(8, 2) + SCALE_BITS)


def test_compress_meets_budget_per_layer():
    model = random_mlp((64, 48, 24))
    bits = 4.5
    net, lowered = pvq_compress(model, lanes=4, bits_per_weight=bits, finetune_epochs=0, progress=False,
                                calib_x=random_vectors(CALIB, 64))
    assert [layer.k for layer in net.layers] == [2, 1]
    for layer, low in zip(net.layers, lowered.layers):
        assert low.pvq_k == layer.k == choose_layer_k(layer.in_features, layer.out_features, 4, bits)
        assert layer.bits() <= bits * layer.in_features * layer.out_features
    assert lowered.info["over_budget_layers"] == []
    assert lowered.info["bits_per_weight"] <= bits


def test_over_budget_layer_takes_k1_and_is_reported():
    model = random_mlp((40, 36, 10))
    with pytest.warns(UserWarning, match="cannot meet"):
        net, lowered = pvq_compress(model, lanes=4, bits_per_weight=3.0, finetune_epochs=0, progress=False,
                                    calib_x=random_vectors(CALIB, 40))
    over = lowered.info["over_budget_layers"]
    assert over and all(net.layers[i].k == 1 for i in over)


# ---------------------------------------------------------------------------
# Lowering contract


@pytest.mark.parametrize("lanes", [4, 8])
def test_lowering_shapes_and_ranges(lanes):
    model, net, lowered = lowered_small(lanes)
    assert isinstance(lowered, LoweredNetwork) and lowered.method == "pvq" and lowered.lanes == lanes
    for low, (i, o) in zip(lowered.layers, zip(WIDTHS[:-1], WIDTHS[1:])):
        s = -(-i // lanes)
        assert (low.in_features, low.out_features) == (i, o)
        assert low.mode == "pvq" and low.indices is None and low.codebook.shape == (0, lanes)
        assert low.pvq_k == 3 and low.pvq_y.shape == (o, s, lanes) and low.pvq_scale.shape == (o, s)
        for name in ("bias", "mult", "shift", "pvq_y", "pvq_scale", "pvq_index"):
            assert getattr(low, name).dtype == np.int64, name
        assert np.all(np.abs(low.pvq_y).sum(axis=2) == low.pvq_k)
        assert low.pvq_scale.min() >= 0 and low.pvq_scale.max() <= SCALE_MAX
        assert np.all(low.pvq_scale.max(axis=1) == SCALE_MAX)  # each row's largest gain maps to 255
        assert low.bias.min() >= INT32_MIN and low.bias.max() <= INT32_MAX
        assert low.mult.min() >= 0 and low.mult.max() < 1 << MULT_BITS
        assert low.shift.min() >= 0 and low.shift.max() <= SHIFT_MAX
        # The enumeration indices decode back to y.
        y = pvq_decode_many(low.pvq_index.reshape(-1).astype(np.uint64), lanes, low.pvq_k)
        assert np.array_equal(y.reshape(low.pvq_y.shape), low.pvq_y)
        assert acc_bound(low) < 1 << 31
    assert [l.relu for l in lowered.layers] == [True, False]


def test_zero_subvector_gets_k_pulses_on_first_coordinate_and_scale_zero():
    model = random_mlp()
    with torch.no_grad():
        model[0].weight[3, 4:8] = 0  # row 3, sub-vector 1 (4 lanes)
        model[0].weight[5, :] = 0    # a whole zero row
    net, lowered = pvq_compress(model, lanes=4, k=5, finetune_epochs=0, progress=False,
                                calib_x=random_vectors(CALIB, WIDTHS[0]))
    low = lowered.layers[0]
    assert list(low.pvq_y[3, 1]) == [5, 0, 0, 0] and low.pvq_scale[3, 1] == 0
    assert np.all(low.pvq_y[5] == [5, 0, 0, 0]) and np.all(low.pvq_scale[5] == 0)
    assert low.mult[5] > 0  # the zero row still has a valid requantization (from the fallback s_row)


def test_integer_scales():
    g = np.array([[0.0, 0.5, 1.0, 0.25], [0, 0, 0, 0], [2.0, 0.001, 0, 0]])
    scale, s_row = integer_scales(g)
    assert list(scale[0]) == [0, 128, 255, 64] and s_row[0] == pytest.approx(1 / 255)
    assert list(scale[1]) == [0, 0, 0, 0] and s_row[1] > 0
    assert list(scale[2]) == [255, 0, 0, 0]
    assert np.all(np.abs(s_row[:, None] * scale - g) <= s_row[:, None] / 2 + 1e-15)


def test_negative_gains_fold_into_y():
    y = np.array([[[2, -1, 0, 0], [0, 0, 3, 0]]])
    layer = PVQLayer(y=y, gain=np.array([[-0.5, 0.2]]), bias=np.zeros(1, np.float32), in_features=7,
                     out_features=1, relu=False, k=3)
    norm = layer.normalized()
    assert np.all(norm.gain >= 0) and np.all(np.abs(norm.y).sum(axis=2) == 3)
    np.testing.assert_allclose(norm.weight(), layer.weight())


# ---------------------------------------------------------------------------
# Golden forward


def literal_forward(lowered, x_int8):
    """The engine formula written out per row and sub-vector, in Python integers (tiny inputs only)."""
    h = x_int8.astype(np.int64)
    for low in lowered.layers:
        n_s, lanes = low.pvq_y.shape[1:]
        x = np.zeros((h.shape[0], n_s * lanes), dtype=np.int64)
        x[:, :low.in_features] = h
        acc = np.zeros((h.shape[0], low.out_features), dtype=np.int64)
        for b in range(h.shape[0]):
            for r in range(low.out_features):
                total = int(low.bias[r])
                for s in range(n_s):
                    total += int(low.pvq_scale[r, s]) * sum(int(low.pvq_y[r, s, i]) * int(x[b, s * lanes + i])
                                                            for i in range(lanes))
                acc[b, r] = total
        h = requantize(wrap_acc(acc), low.mult[None, :], low.shift[None, :], low.relu).astype(np.int64)
    return h.astype(np.int8)


@pytest.mark.parametrize("lanes", [4, 8])
def test_golden_forward_pvq_matches_literal_formula_and_lowering_golden(lanes):
    _, _, lowered = lowered_small(lanes)
    x = quantize_act(random_vectors(6, WIDTHS[0], seed=7), lowered.input_scale)
    out = golden_forward_pvq(lowered, x)
    assert out.dtype == np.int8 and out.shape == (6, WIDTHS[-1])
    assert np.array_equal(out, literal_forward(lowered, x))
    assert np.array_equal(out, golden_forward(lowered, x))  # lowering's golden through PVQLoweredLayer.weight()


@pytest.mark.parametrize("lanes", [4, 8])
def test_golden_layer_matches_float_reconstruction(lanes):
    """Each layer, fed the same int8 input, is within one output step of the float scale-quantized layer."""
    _, net, lowered = lowered_small(lanes)
    scales = lowered.info["activation_scales"]
    x = quantize_act(random_vectors(200, WIDTHS[0], seed=3), lowered.input_scale)
    h = x
    for i, (layer, low) in enumerate(zip(net.layers, lowered.layers)):
        one = LoweredNetwork(name="", method="pvq", lanes=lanes, input_scale=scales[i],
                             output_scale=scales[i + 1], layers=[low])
        got = golden_forward_pvq(one, h).astype(np.int64)
        real = (h.astype(np.float64) * scales[i]) @ layer.weight(quantized_scales=True).T + layer.bias
        if layer.relu:
            real = np.maximum(real, 0)
        want = real / scales[i + 1]
        inside = np.abs(want) < 127  # saturated outputs are clipped by both
        assert np.abs(got - want)[inside].max() <= 1.0
        assert np.all(got[want >= 127] == 127)
        h = got.astype(np.int8)


# ---------------------------------------------------------------------------
# Accuracy


@pytest.fixture(scope="module")
def train_set():
    try:
        return load_fashion_mnist("train")
    except DataError as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")


@pytest.fixture(scope="module")
def small_fmnist(train_set):
    x, y = train_set
    return (x[:600], y[:600]), (x[-400:], y[-400:])


def random_features_mlp(x: np.ndarray, y: np.ndarray, hidden: int = 64, seed: int = 0) -> MLP:
    """784-hidden-10 MLP trained in closed form: random ReLU features, ridge-regression readout.

    (Gradient training is slow on a loaded machine; this takes well under a second.)
    """
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((hidden, x.shape[1])) * 3 / np.sqrt(x.shape[1])
    h = np.hstack([np.maximum(x @ w0.T, 0), np.ones((len(x), 1))])
    sol = np.linalg.solve(h.T @ h + np.eye(hidden + 1), h.T @ np.eye(10)[y])
    model = MLP((x.shape[1], hidden, 10))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(w0))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor(sol[:hidden].T))
        model[2].bias.copy_(torch.tensor(sol[hidden]))
    return model.eval()


def test_lowered_accuracy_close_to_float_pvq(small_fmnist):
    (xtr, ytr), (xte, yte) = small_fmnist
    model = random_features_mlp(xtr, ytr)
    net, lowered = pvq_compress(model, lanes=4, k=4, finetune_epochs=1, progress=False,
                                train_data=(xtr, ytr), eval_data=(xte, yte), calib_x=xtr[:300])
    info = lowered.info
    assert info["float_accuracy"] > 0.6
    assert info["pvq_float_accuracy"] == evaluate(pvq_to_torch(net), xte, yte)
    assert info["int8_accuracy"] == evaluate_lowered_pvq(lowered, xte, yte)
    assert info["pvq_float_accuracy"] > 0.5  # 10 classes: far above chance
    assert abs(info["pvq_scaleq_accuracy"] - info["pvq_float_accuracy"]) <= 0.03
    assert abs(info["int8_accuracy"] - info["pvq_scaleq_accuracy"]) <= 0.03


def test_cached_lenet300_lowered_close_to_float_pvq(train_set):
    path = cache_path("lenet300", 0)
    if not path.is_file():
        pytest.skip(f"no cached LeNet-300-100 at {path} (run `vqe compress` or the experiments once to train it)")
    test_x, test_y = load_fashion_mnist("test")
    train_x = train_set[0]
    model = get_network("lenet300", progress=False)
    sub = (test_x[:2000], test_y[:2000])
    net, lowered = pvq_compress(model, lanes=4, bits_per_weight=4.0, finetune_epochs=0, progress=False,
                                name="lenet300", eval_data=sub, calib_x=train_x[:1000])
    info = lowered.info
    assert info["pvq_k"] == [3, 3, 2]
    assert info["bits_per_weight"] <= 4.0
    assert info["pvq_float_accuracy"] > 0.84
    assert abs(info["int8_accuracy"] - info["pvq_scaleq_accuracy"]) <= 0.01
