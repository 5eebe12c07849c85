"""The universal codebook: KDE extraction, the codebook file, soft-to-hard assignment, lowering."""
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from model.compress.lowering import golden_forward
from model.compress.universal.codebook import (DEFAULT_CODEBOOK, DEFAULT_DIM, DEFAULT_K, CodebookError,
                                               UniversalCodebook, load_codebook, save_codebook)
from model.compress.universal.extract import (build_codebook, codebook_from_samples, normalized_subvectors,
                                              quantize_codewords)
from model.compress.universal.fit import (UniversalNetwork, assign_nearest, fit_universal, nearest_codewords,
                                          scaled_assignment)
from model.compress.universal.lower import lower_universal
from model.contract.fixedpoint import quantize_act
from model.nets.distill import DistillSet

#: Six sign patterns: unit RMS each, well apart (squared distance >= 8).
PATTERNS = np.array([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [-1, 1, 1, -1], [-1, -1, -1, -1],
                     [-1, -1, 1, 1]], dtype=np.float64)
SMALL_KDE = dict(draws=8192, samples_per_donor=600)


def _pattern_rows(rng, rows, subs, noise=0.05):
    idx = rng.integers(len(PATTERNS), size=(rows, subs))
    return (PATTERNS[idx] + noise * rng.standard_normal((rows, subs, 4))).reshape(rows, subs * 4)


def _linear(w: np.ndarray, bias=True) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
        if bias:
            lin.bias.uniform_(-0.1, 0.1)
    return lin


@pytest.fixture(scope="module")
def pattern_donors():
    """Two 'networks' built from the same patterns at row scales 1000x apart."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    a = nn.Sequential(_linear(0.01 * _pattern_rows(rng, 40, 8)), nn.ReLU(), _linear(0.01 * _pattern_rows(rng, 8, 10)))
    scales = rng.uniform(2, 10, size=(24, 1))  # different per row: normalization removes it
    b = nn.Sequential(nn.Conv1d(3, 24, 4))
    with torch.no_grad():
        b[0].weight.copy_(torch.as_tensor((scales * _pattern_rows(rng, 24, 3)).reshape(24, 3, 4), dtype=torch.float32))
    return {"a": (a, None), "b": (b, ["0"])}


@pytest.fixture(scope="module")
def pattern_codebook(pattern_donors):
    return build_codebook(["a", "b"], dim=4, k=6, seed=1, resolve=pattern_donors.__getitem__, **SMALL_KDE)


def test_normalized_subvectors_drop_padding_and_zero_rows():
    w = np.array([[3.0, 0, 0, 4, 1], [0, 0, 0, 0, 0]])
    v = normalized_subvectors(w, 2)
    rms = np.sqrt(np.mean(w[0] ** 2))
    assert v.shape == (2, 2)  # one row, two full pairs; the padded fifth column and the zero row are left out
    np.testing.assert_allclose(v, (w[0, :4] / rms).reshape(2, 2), rtol=1e-6)


def test_kde_codebook_recovers_cluster_structure(pattern_codebook):
    cb = pattern_codebook
    assert (cb.k, cb.dim) == (6, 4) and cb.codewords.dtype == np.int8
    d = np.linalg.norm(PATTERNS[:, None, :] - cb.values()[None, :, :].astype(np.float64), axis=2)
    # Every pattern has its own codeword, close by (noise 0.05, KDE smoothing, int8 rounding).
    assert len(set(d.argmin(axis=1))) == 6
    assert d.min(axis=1).max() < 0.2
    kde = cb.params["kde"]
    # Tight clusters: held-out likelihood picks a bandwidth well below Scott's rule.
    assert kde["factor"] < kde["scott_factor"]
    assert kde["factor"] == kde["grid_factors"][int(np.argmax(kde["heldout_loglik"]))]
    assert cb.donors == ("a", "b")
    assert cb.params["samples_per_donor"] == SMALL_KDE["samples_per_donor"]


def test_sampling_is_equal_per_donor():
    rng = np.random.default_rng(2)
    big = np.tile(PATTERNS[:1], (5000, 1)) + 0.01 * rng.standard_normal((5000, 4))
    small = np.tile(PATTERNS[4:5], (50, 1)) + 0.01 * rng.standard_normal((50, 4))
    cb = codebook_from_samples({"big": big, "small": small}, k=2, seed=0, samples_per_donor=400, draws=4096)
    # The 50-vector donor weighs as much as the 5000-vector one: it gets its own codeword.
    d = np.linalg.norm(PATTERNS[[0, 4], None, :] - cb.values()[None], axis=2)
    assert d.min(axis=1).max() < 0.1
    assert cb.params["donor_subvectors"] == {"big": 5000, "small": 50}


def test_empty_donor_list_and_unknown_donor():
    with pytest.raises(CodebookError, match="no donor networks"):
        build_codebook([], dim=4, k=8)
    with pytest.raises(CodebookError, match="no donor networks"):
        codebook_from_samples({}, k=8)
    with pytest.raises(CodebookError, match="unknown network"):
        build_codebook(["no-such-network"], dim=4, k=8)


def test_codebook_file_round_trip(tmp_path, pattern_codebook):
    p = save_codebook(pattern_codebook, tmp_path / "cb.npz")
    cb = load_codebook(p, dim=4, k=6)
    np.testing.assert_array_equal(cb.codewords, pattern_codebook.codewords)
    assert cb.scale == pattern_codebook.scale and cb.donors == pattern_codebook.donors
    assert json.dumps(cb.params, sort_keys=True) == json.dumps(pattern_codebook.params, sort_keys=True)
    assert cb.content_hash() == pattern_codebook.content_hash()


def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_codebook_file_errors(tmp_path, pattern_codebook):
    p = save_codebook(pattern_codebook, tmp_path / "cb.npz")
    with pytest.raises(CodebookError, match="dimension 4, but 8 is required") as e:
        load_codebook(p, dim=8)
    _one_line(e)
    with pytest.raises(CodebookError, match="6 codewords, but 128"):
        load_codebook(p, k=128)
    with pytest.raises(CodebookError, match="not found") as e:
        load_codebook(tmp_path / "missing.npz")
    _one_line(e)
    raw = p.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(CodebookError) as e:
        load_codebook(tmp_path / "trunc.npz")
    _one_line(e)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CodebookError, match="not a readable codebook") as e:
        load_codebook(tmp_path / "junk.npz")
    _one_line(e)
    # A consistent file whose codewords were edited after hashing.
    with np.load(p) as z:
        fields = {k: z[k] for k in z.files}
    fields["codewords"] = fields["codewords"].copy()
    fields["codewords"][0, 0] ^= 1
    np.savez(tmp_path / "edited.npz", **fields)
    with pytest.raises(CodebookError, match="corrupted") as e:
        load_codebook(tmp_path / "edited.npz")
    _one_line(e)
    del fields["sha256"]
    np.savez(tmp_path / "nohash.npz", **fields)
    with pytest.raises(CodebookError, match="missing sha256"):
        load_codebook(tmp_path / "nohash.npz")
    # Flip each byte of the file in turn, and each byte of the .npy headers of an uncompressed copy (there the
    # flips reach the header text NumPy tokenizes): a damaged file either still holds the same codebook (the
    # byte was zip metadata NumPy does not read) or fails with one CodebookError line, wherever the damage is
    # (zip directory, zlib stream, .npy header, the payload the hash covers).
    good = load_codebook(p)
    with np.load(p) as z:
        np.savez(tmp_path / "plain.npz", **{k: z[k] for k in z.files})
    plain = (tmp_path / "plain.npz").read_bytes()
    headers = [i for m in re.finditer(rb"\x93NUMPY", plain) for i in range(m.start(), m.start() + 128)]
    for name, data, where in (("compressed", raw, range(len(raw))), ("plain", plain, headers)):
        for i in where:
            bad = bytearray(data)
            bad[i] ^= 0xFF
            (tmp_path / "flip.npz").write_bytes(bytes(bad))
            try:
                cb = load_codebook(tmp_path / "flip.npz")
            except CodebookError as e:
                assert "\n" not in str(e) and str(e), f"{name} byte {i}"
            else:
                assert cb.content_hash() == good.content_hash(), f"{name} byte {i}"


def test_shipped_codebook():
    cb = load_codebook()
    assert DEFAULT_CODEBOOK.name == f"universal-d{DEFAULT_DIM}-k{DEFAULT_K}-v1.npz"
    assert (cb.dim, cb.k) == (DEFAULT_DIM, DEFAULT_K)
    assert len(np.unique(cb.codewords, axis=0)) == cb.k
    assert cb.donors and cb.params["kde"]["factor"] > 0
    assert cb.params["samples_per_donor"] > 0


def test_quantize_codewords_is_symmetric_int8():
    q, s = quantize_codewords(np.array([[0.5, -2.0], [1.0, 0.25]]))
    assert q.dtype == np.int8 and np.abs(q).max() == 127 and s == pytest.approx(2.0 / 127)
    with pytest.raises(CodebookError):
        UniversalCodebook(np.zeros((2, 2), np.int16), 1.0)


def test_nearest_codewords_ignore_row_padding():
    cb = np.array([[0, 0, 0, 0], [1, 1, 9, 9], [1, 1, 0, 0]], dtype=np.float32)
    sub = np.array([[[0, 0, 0, 0], [1, 1, 0, 0]]], dtype=np.float32)  # last sub-vector: 2 valid columns
    idx, d2 = nearest_codewords(sub, 2, cb, 2)
    assert idx[0, 0, 0] == 0
    assert set(idx[0, 1]) == {1, 2} and d2[0, 1, 0] == 0  # pad columns (9, 9 vs 0, 0) do not count


def test_scaled_assignment_recovers_row_scales():
    cb = PATTERNS.astype(np.float32)
    rng = np.random.default_rng(3)
    idx = rng.integers(len(cb), size=(5, 4))
    s = np.array([0.01, 0.5, 3.0, 7.0, 100.0])
    w = s[:, None] * cb[idx].reshape(5, 16)
    got_idx, got_s = scaled_assignment(w, cb)
    np.testing.assert_array_equal(got_idx, idx)
    np.testing.assert_allclose(got_s, s, rtol=1e-5)


@pytest.fixture(scope="module")
def small_task():
    """A 2-layer MLP teacher on random inputs, and a small random codebook."""
    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    model = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 6)).eval()
    x = torch.rand(2048, 24)
    q, s = quantize_codewords(rng.standard_normal((32, 4)))
    return model, x, UniversalCodebook(q, s, ("random",), {})


def _output_mse(model, ref, x):
    with torch.no_grad():
        return float(((model(x) - ref(x)) ** 2).mean())


def test_soft_to_hard_assignment_converges(small_task):
    model, x, cb = small_task
    data = DistillSet(x, kind="regression")
    nearest = assign_nearest(model, cb)
    net = fit_universal(model, cb, data, soft_steps=250, hard_steps=50, batch=128, progress=False, lr_logits=0.1)
    info = net.info
    assert info["mean_max_prob"] > 0.97  # the softmax has hardened
    assert info["final_temperature"] == pytest.approx(0.01)
    assert 0 < info["frac_not_nearest"] < 1  # training moved some sub-vectors off their nearest codeword
    for layer, mod in zip(net.layers, [model[0], model[2]]):
        assert layer.indices.shape == (mod.out_features, -(-mod.in_features // 4))
        assert layer.indices.min() >= 0 and layer.indices.max() < cb.k
        assert (layer.row_scale > 0).all()
        w = layer.weight(cb.values())
        rel = np.linalg.norm(w - mod.weight.detach().numpy()) / np.linalg.norm(mod.weight.detach().numpy())
        assert rel < 0.8  # a 32-word random codebook: coarse weights (the fit matches outputs, not weights)
    # The trained hard network matches the teacher better than the nearest-codeword one.
    assert _output_mse(net.apply(model), model, x) < 0.5 * _output_mse(nearest.apply(model), model, x)


def test_lower_universal_shares_the_rom_and_scales_per_row(small_task):
    model, x, cb = small_task
    net = assign_nearest(model, cb, name="tiny")
    assert [l.relu for l in net.layers] == [True, False]
    low = lower_universal(net, x[:512].numpy())
    assert low.method == "universal" and low.lanes == 4
    for layer in low.layers:
        assert layer.codebook is low.layers[0].codebook or np.array_equal(layer.codebook, cb.codewords)
        np.testing.assert_array_equal(layer.codebook, cb.codewords)
        assert len(np.unique(layer.mult * 2.0 ** -layer.shift)) > 1  # per-row requantization
    xt = x[512:1024].numpy()
    out = golden_forward(low, quantize_act(xt, low.input_scale)).astype(np.float64) * low.output_scale
    with torch.no_grad():
        ref = net.apply(model)(torch.from_numpy(xt)).numpy()
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max() + 3 * low.output_scale
    with pytest.raises(ValueError, match="lanes"):
        lower_universal(net, xt, lanes=8)


def test_universal_network_on_conv_layers(small_task):
    _, _, cb = small_task
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 3)).eval()
    net = assign_nearest(model, cb)
    assert isinstance(net, UniversalNetwork)
    assert net.layers[0].indices.shape == (5, 5)  # 2*3*3 = 18 columns -> 5 sub-vectors
    out = net.apply(model)(torch.rand(2, 2, 6, 6))
    assert out.shape == (2, 3)
    with pytest.raises(ValueError, match="not fully connected"):
        lower_universal(net, np.zeros((1, 72), np.float32))


# ---------------------------------------------------------------------------
# Nested codebooks

NESTED_KW = dict(draws=4096, iters=10)


@pytest.fixture(scope="module")
def nested_codebook(pattern_donors, pattern_codebook):
    from model.compress.universal.extract import donor_subvectors
    from model.compress.universal.nested import extend_codebook
    per_donor, _ = donor_subvectors(["a", "b"], 4, pattern_donors.__getitem__)
    return extend_codebook(pattern_codebook, per_donor, (6, 12, 24), **NESTED_KW)


def test_nested_prefix_is_the_base(nested_codebook, pattern_codebook):
    cb = nested_codebook
    assert (cb.k, cb.stages) == (24, (6, 12, 24))
    np.testing.assert_array_equal(cb.codewords[:6], pattern_codebook.codewords)
    assert cb.scale == pattern_codebook.scale
    assert len(np.unique(cb.codewords, axis=0)) == 24  # every ROM entry distinct
    base = cb.prefix(6)
    assert base.content_hash() == pattern_codebook.content_hash()  # bit for bit the base, parameters too
    mid = cb.prefix(12)
    np.testing.assert_array_equal(mid.codewords, cb.codewords[:12])
    assert mid.index_bits == 4 and mid.params["prefix_of"] == 24
    facts = cb.params["nested"]["stage_facts"]
    # Each stage lowers the draws' quantization error.
    assert facts[0]["mse_int8"] > facts[1]["mse_int8"] > 0
    with pytest.raises(CodebookError, match="no 7-codeword prefix") as e:
        cb.prefix(7)
    _one_line(e)


def test_nested_file_round_trip_and_prefix_loading(tmp_path, nested_codebook, pattern_codebook):
    p = save_codebook(nested_codebook, tmp_path / "nested.npz")
    full = load_codebook(p)
    assert full.content_hash() == nested_codebook.content_hash() and full.stages == (6, 12, 24)
    assert load_codebook(p, k=6).content_hash() == pattern_codebook.content_hash()
    np.testing.assert_array_equal(load_codebook(p, k=12, dim=4).codewords, nested_codebook.codewords[:12])
    with pytest.raises(CodebookError, match="24 codewords, but 16 are required") as e:
        load_codebook(p, k=16)
    _one_line(e)


def test_nested_file_inconsistencies_refused(tmp_path, nested_codebook):
    import copy

    # Internally consistent hashes, but the first stage is no longer the base it names.
    cw = nested_codebook.codewords.copy()
    cw[0] = cw[-1]
    save_codebook(UniversalCodebook(cw, nested_codebook.scale, nested_codebook.donors, nested_codebook.params),
                  tmp_path / "base.npz")
    with pytest.raises(CodebookError, match="not the base codebook") as e:
        load_codebook(tmp_path / "base.npz")
    _one_line(e)
    params = copy.deepcopy(nested_codebook.params)
    params["nested"]["stages"] = [6, 24, 12]
    save_codebook(UniversalCodebook(nested_codebook.codewords, nested_codebook.scale, nested_codebook.donors,
                                    params), tmp_path / "stages.npz")
    with pytest.raises(CodebookError, match="do not increase") as e:
        load_codebook(tmp_path / "stages.npz")
    _one_line(e)
    del params["nested"]["base_sha256"]
    save_codebook(UniversalCodebook(nested_codebook.codewords, nested_codebook.scale, nested_codebook.donors,
                                    params), tmp_path / "nobase.npz")
    with pytest.raises(CodebookError, match="malformed nested") as e:
        load_codebook(tmp_path / "nobase.npz")
    _one_line(e)


def test_extend_codebook_refuses_bad_stages_and_donors(pattern_donors, pattern_codebook):
    from model.compress.universal.extract import donor_subvectors
    from model.compress.universal.nested import extend_codebook
    per_donor, _ = donor_subvectors(["a", "b"], 4, pattern_donors.__getitem__)
    with pytest.raises(CodebookError, match="must increase from the base's 6"):
        extend_codebook(pattern_codebook, per_donor, (8, 16), **NESTED_KW)
    with pytest.raises(CodebookError, match="must increase"):
        extend_codebook(pattern_codebook, per_donor, (6, 6), **NESTED_KW)
    with pytest.raises(CodebookError, match="not the base codebook's"):
        extend_codebook(pattern_codebook, {"a": per_donor["a"]}, (6, 12), **NESTED_KW)
    # Same donor names, other weights: the KDE is not the base's.
    with pytest.raises(CodebookError, match="not the base codebook's \\("):
        extend_codebook(pattern_codebook, {"a": per_donor["a"] * 3.0, "b": per_donor["b"]}, (6, 12), **NESTED_KW)


def test_continuing_a_nested_codebook_is_building_it_at_once(pattern_donors, pattern_codebook):
    """Extending a nested file by more stages gives the file built to all of them in one go, also when the
    later stages draw more blocks of KDE points than the earlier ones (512 per block, 64 per codeword)."""
    from model.compress.universal.extract import donor_subvectors
    from model.compress.universal.nested import extend_codebook
    per_donor, _ = donor_subvectors(["a", "b"], 4, pattern_donors.__getitem__)
    kw = dict(draws=512, iters=5)
    once = extend_codebook(pattern_codebook, per_donor, (6, 8, 24), **kw)
    first = extend_codebook(pattern_codebook, per_donor, (6, 8), **kw)
    cont = extend_codebook(first, per_donor, (8, 24), **kw)
    np.testing.assert_array_equal(cont.codewords, once.codewords)
    assert cont.stages == once.stages == (6, 8, 24)
    assert [f["draws"] for f in cont.params["nested"]["stage_facts"]] == [512, 1536]
    assert cont.prefix(6).content_hash() == pattern_codebook.content_hash()
    with pytest.raises(CodebookError, match="built with 512"):
        extend_codebook(first, per_donor, (8, 24), draws=1024)


def test_kmeans_fixed_prefix_keeps_fixed_centres():
    from model.compress.universal.nested import kmeans_fixed_prefix
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    x = np.repeat(centres, 300, axis=0) + 0.1 * rng.standard_normal((900, 2))
    new, info = kmeans_fixed_prefix(x, centres[:1], 3, seed=0)
    assert new.shape == (2, 2)
    # The two new centres land on the two clusters the fixed one does not serve.
    d = np.linalg.norm(new[:, None, :] - centres[None, 1:, :], axis=2)
    assert sorted(d.argmin(axis=1)) == [0, 1] and d.min(axis=1).max() < 0.05
    assert info["mse"] <= info["mse_seeded"] and info["mse"] < 0.05
    with pytest.raises(CodebookError, match="must add codewords"):
        kmeans_fixed_prefix(x, centres, 3)


def test_shipped_nested_codebook_extends_the_shipped_one():
    from model.compress.universal.codebook import DEFAULT_NESTED, NESTED_K
    base = load_codebook()
    assert base.k == DEFAULT_K and DEFAULT_NESTED.exists()
    full = load_codebook(DEFAULT_NESTED, dim=DEFAULT_DIM)
    assert full.k == NESTED_K and full.stages[0] == DEFAULT_K and full.stages[-1] == NESTED_K
    np.testing.assert_array_equal(full.codewords[:DEFAULT_K], base.codewords)
    assert full.prefix(DEFAULT_K).content_hash() == base.content_hash()
    assert len(np.unique(full.codewords, axis=0)) == full.k
    for k in full.stages[1:]:
        sub = load_codebook(k=k)
        assert sub.k == k and sub.index_bits == (k - 1).bit_length()
        np.testing.assert_array_equal(sub.codewords, full.codewords[:k])
