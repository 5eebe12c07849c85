"""Model side: dataset parsing, training cache, k-means VQ, int8 lowering, golden forward."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from model.compress import lowering
from model.compress.kmeans.network import (VQNetwork, join_subvectors, kmeans, quantize_layer, split_subvectors,
                                           to_torch, vq_compress)
from model.compress.lowering import INPUT_SCALE, LoweredLayer, LoweredNetwork, golden_forward
from model.contract.fixedpoint import ACT_MAX, ACT_MIN, MULT_BITS, SHIFT_MAX, quantize_act, requantize, wrap_acc
from model.nets.data import DataError, data_dir, load_fashion_mnist, parse_idx
from model.nets.networks import UnknownNetwork, cache_path, evaluate, get_network, lenet300
from model.nets.registry import trained_networks


def require_dataset():
    """Skip, with the reason, when the Fashion-MNIST package is not installed."""
    if not data_dir().is_dir():
        pytest.skip(f"{data_dir()} absent: apt-get install dataset-fashion-mnist")


#: Images used for the quick golden-vs-float agreement check.
AGREEMENT_IMAGES = 1000
#: The brief's accuracy budget: one percentage point.
ONE_POINT = 0.01


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


# ---------------------------------------------------------------------------
# Data


def test_parse_idx_roundtrip_and_errors():
    a = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    np.testing.assert_array_equal(parse_idx(idx_bytes(a)), a)
    raw = idx_bytes(a)
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x01" + raw[1:])
    with pytest.raises(DataError, match="type"):
        parse_idx(raw[:2] + b"\x0d" + raw[3:])
    with pytest.raises(DataError, match="declares"):
        parse_idx(raw[:-1])
    with pytest.raises(DataError, match="truncated"):
        parse_idx(raw[:6])


def test_load_from_directory_and_missing_files(tmp_path: Path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    x, y = load_fashion_mnist("test", tmp_path)
    assert x.dtype == np.float32 and x.shape == (7, 784) and y.dtype == np.int64
    np.testing.assert_allclose(x, images.reshape(7, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels[:3])))
    with pytest.raises(DataError, match="labels"):
        load_fashion_mnist("test", tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(idx_bytes(images))  # not gzip-compressed
    with pytest.raises(DataError, match="decompress"):
        load_fashion_mnist("test", tmp_path)
    with pytest.raises(ValueError):
        load_fashion_mnist("validation", tmp_path)


def test_real_dataset_shapes(test_set):
    x, y = test_set
    assert x.shape == (10000, 784) and y.shape == (10000,)
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.array_equal(np.bincount(y), np.full(10, 1000))


# ---------------------------------------------------------------------------
# Networks


def test_unknown_network_lists_known_names():
    with pytest.raises(KeyError) as e:
        get_network("no-such-net")
    assert isinstance(e.value, UnknownNetwork)
    for name in trained_networks():
        assert name in str(e.value)


def test_cache_key_and_reuse(tmp_path: Path):
    p0, p1 = cache_path("lenet300", 0, tmp_path), cache_path("lenet300", 1, tmp_path)
    assert p0 != p1 and "lenet300" in p0.name and p0.parent == tmp_path
    torch.manual_seed(123)
    m = lenet300()
    torch.save(m.state_dict(), p0)
    # A cached state_dict is loaded, not retrained (retraining would take seconds and differ).
    got = get_network("lenet300", cache_dir=tmp_path, progress=False)
    for k, v in m.state_dict().items():
        assert torch.equal(got.state_dict()[k], v)


# ---------------------------------------------------------------------------
# Vector quantization


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(1)
    centers = rng.uniform(-10, 10, (6, 4))
    labels = rng.integers(0, 6, 3000)
    x = centers[labels] + rng.normal(0, 0.05, (3000, 4))
    codebook, idx = kmeans(x, 6, seed=0)
    # Map each true centre to its nearest codeword: a bijection, and close.
    d = ((centers[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=2)
    match = d.argmin(axis=1)
    assert sorted(match) == list(range(6))
    np.testing.assert_allclose(codebook[match], centers, atol=0.02)
    np.testing.assert_array_equal(idx, match[labels])
    c2, i2 = kmeans(x, 6, seed=0)
    np.testing.assert_array_equal(c2, codebook)
    np.testing.assert_array_equal(i2, idx)


def test_kmeans_same_codebook_on_one_or_two_threads():
    """faiss's Lloyd: a fixed seed gives the same codebook bit for bit whatever the OpenMP thread count."""
    import faiss
    x = np.random.default_rng(3).standard_normal((20000, 4)).astype(np.float32)
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        one, i1 = kmeans(x, 64, seed=5)
        faiss.omp_set_num_threads(2)
        two, i2 = kmeans(x, 64, seed=5)
    finally:
        faiss.omp_set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(i1, i2)
    assert not np.array_equal(kmeans(x, 64, seed=6)[0], one)  # the seed does matter


def test_kmeans_distortion_matches_the_numpy_lloyd_it_replaced():
    """Same k-means++ seeds, faiss's Lloyd: the distortion is the numpy Lloyd's (reports/libraries.json)."""
    from scripts.experiments.libraries import numpy_lloyd
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((6000, 4)) * rng.uniform(0.2, 2.0, 4)).astype(np.float32)
    mse = []
    for f in (kmeans, numpy_lloyd):
        c, i = f(x, 32, seed=0)
        assert c.shape == (32, 4) and i.shape == (6000,)
        np.testing.assert_array_equal(i, ((x[:, None, :] - c[None]) ** 2).sum(2).argmin(1))  # nearest codeword
        mse.append(float(((x - c[i]) ** 2).sum(1).mean()))
    assert mse[0] <= mse[1] * 1.005


def test_kmeans_lossless_when_few_distinct_vectors():
    x = np.array([[1, 2], [3, 4], [1, 2], [0, 0]], dtype=np.float32)
    codebook, idx = kmeans(x, 8)
    assert len(codebook) == 3
    np.testing.assert_array_equal(codebook[idx], x)


def test_subvector_padding_and_vq_linear():
    w = np.arange(30, dtype=np.float32).reshape(3, 10)
    sub = split_subvectors(w, 4)
    assert sub.shape == (3, 3, 4)
    np.testing.assert_array_equal(sub[:, 2, 2:], 0)  # pad coordinates
    np.testing.assert_array_equal(join_subvectors(sub, 10), w)

    torch.manual_seed(0)
    lin = torch.nn.Linear(10, 3)
    layer = quantize_layer(lin, dim=4, k=256, seed=0, relu=False)  # 9 sub-vectors <= k: lossless
    assert layer.indices.shape == (3, 3)
    np.testing.assert_allclose(layer.weight(), lin.weight.detach().numpy())
    net = VQNetwork(name="t", method="vq", dim=4, k=256, layers=[layer])
    x = torch.randn(5, 10)
    torch.testing.assert_close(to_torch(net)(x), lin(x))


def test_golden_forward_small_network_by_hand():
    # in_features = 6 with 4 lanes: the second sub-vector's pad lanes must be ignored.
    codebook = np.array([[1, -2, 3, 100], [0, 5, -7, -100]], dtype=np.int8)
    layer = LoweredLayer(in_features=6, out_features=2, codebook=codebook,
                         indices=np.array([[0, 1], [1, 1]]), bias=np.array([10, -(2 ** 31)]),
                         mult=np.array([1 << 15, 1 << 15]), shift=np.array([16, 16]), relu=False)
    net = LoweredNetwork(name="t", method="vq", lanes=4, input_scale=1.0, output_scale=1.0, layers=[layer], info={})
    x = np.array([[1, 2, 3, 4, 5, 6]], dtype=np.int8)
    w = np.array([[1, -2, 3, 100, 0, 5], [0, 5, -7, -100, 0, 5]])
    acc = wrap_acc(layer.bias + w @ x[0])
    np.testing.assert_array_equal(golden_forward(net, x)[0], requantize(acc, 1 << 15, 16, False))
    assert acc[1] > 0  # the negative bias plus a negative sum wrapped around


def test_lowering_small_padded_network():
    # Feature counts that are not multiples of the lanes exercise padding end to end.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    net = vq_compress(model, dim=4, k=256, finetune_epochs=0, progress=False)  # few sub-vectors: lossless
    x = np.random.default_rng(0).uniform(0, 1, (400, 6)).astype(np.float32)
    low = lowering.lower_vq(net, x, lanes=4)
    assert [l.indices.shape for l in low.layers] == [(5, 2), (3, 2)]
    out = golden_forward(low, quantize_act(x, low.input_scale)) * low.output_scale
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=2 * low.output_scale)  # measured max: 1.1 steps
    with pytest.raises(ValueError, match="lanes"):
        lowering.lower_vq(net, x, lanes=8)


# ---------------------------------------------------------------------------
# Lowering on the real network (session fixtures: train or load once)


@pytest.fixture(scope="session")
def train_set():
    require_dataset()
    return load_fashion_mnist("train")


@pytest.fixture(scope="session")
def test_set():
    require_dataset()
    return load_fashion_mnist("test")


@pytest.fixture(scope="session")
def float_net(train_set):
    return get_network("lenet300", progress=False)


@pytest.fixture(scope="session")
def vq_net(float_net, train_set, test_set):
    return vq_compress(float_net, dim=4, k=256, seed=0, name="lenet300", train_data=train_set, eval_data=test_set,
                       progress=False)


@pytest.fixture(scope="session")
def lowered(vq_net):
    # The whole pipeline, but reusing the session's VQ network instead of
    # compressing again (same arguments: the defaults).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lowering, "vq_compress", lambda *args, **kwargs: vq_net)
        return lowering.lower_network("lenet300", lanes=4, k=256, seed=0, progress=False)


def test_lowered_shapes_and_ranges(lowered, vq_net):
    assert lowered.lanes == 4 and lowered.input_scale == INPUT_SCALE
    assert [(l.in_features, l.out_features) for l in lowered.layers] == [(784, 300), (300, 100), (100, 10)]
    assert [l.relu for l in lowered.layers] == [True, True, False]
    scales = lowered.info["activation_scales"]
    assert lowered.output_scale == scales[-1]
    for i, (l, v) in enumerate(zip(lowered.layers, vq_net.layers)):
        assert l.codebook.dtype == np.int8 and l.codebook.shape == (v.k, 4) and v.k <= 256
        assert np.abs(l.codebook.astype(int)).max() == ACT_MAX  # the per-layer scale uses the full range
        assert l.indices.shape == (l.out_features, -(-l.in_features // 4)) and l.indices.max() < len(l.codebook)
        for a in (l.bias, l.mult, l.shift):
            assert a.dtype == np.int64 and a.shape == (l.out_features,)
        assert (0 <= l.mult).all() and (l.mult < 2 ** MULT_BITS).all()
        assert (0 <= l.shift).all() and (l.shift <= SHIFT_MAX).all()
        # Requantization multiplier approximates s_in * s_w / s_out to MULT_BITS precision.
        s_w = np.abs(v.codebook).max() / ACT_MAX
        want = scales[i] * s_w / scales[i + 1]
        got = l.mult / 2.0 ** l.shift
        np.testing.assert_allclose(got, want, rtol=2.0 ** -(MULT_BITS - 1))
        np.testing.assert_allclose(l.bias * scales[i] * s_w, v.bias, atol=scales[i] * s_w)


def test_golden_forward_tracks_float_vq(lowered, vq_net, test_set):
    x = test_set[0][:AGREEMENT_IMAGES]
    out = golden_forward(lowered, quantize_act(x, lowered.input_scale))
    assert out.dtype == np.int8 and out.shape == (AGREEMENT_IMAGES, 10)
    assert ACT_MIN <= out.min() and out.max() <= ACT_MAX
    with torch.no_grad():
        ref = to_torch(vq_net)(torch.from_numpy(x)).numpy()
    err = np.abs(out * lowered.output_scale - ref)
    # Logits agree to a few output steps on average, and almost always pick the same class.
    assert err.mean() < 3 * lowered.output_scale
    assert np.mean(out.argmax(axis=1) == ref.argmax(axis=1)) > 0.97


def test_accuracy_claims(float_net, vq_net, lowered, test_set):
    float_acc = evaluate(float_net, *test_set)
    vq_acc = evaluate(to_torch(vq_net), *test_set)
    int8_acc = lowered.info["int8_accuracy"]
    print(f"\nfloat {float_acc:.4f}  vq float {vq_acc:.4f}  int8 golden {int8_acc:.4f}")
    assert lowered.info["float_accuracy"] == float_acc and lowered.info["vq_float_accuracy"] == vq_acc
    assert lowered.info["calibration_images"] == lowering.CALIBRATION_IMAGES
    assert float_acc > 0.87
    assert abs(vq_acc - float_acc) < ONE_POINT
    assert abs(int8_acc - vq_acc) < ONE_POINT
