"""Deep Compression pipeline: pruning, trained quantization, sparse-row accounting, int8 lowering."""
import numpy as np
import pytest
import torch

from model.codecs.huffman import HuffmanTable, encode
from model.codecs.sparse_rows import SIZE_WORDS, decode_row, encode_layer
from model.compress.deepcomp import stats
from model.compress.deepcomp.prune import density_schedule, iterative_prune, magnitude_mask, train_masked
from model.compress.deepcomp.recipe import (DeepCompConfig, _load, _save, deepcomp_compress, format_table,
                                            lower_deepcomp, lowered_account)
from model.compress.deepcomp.trained_quant import (QuantLayer, QuantNet, finetune_centroids, gather_centroid_grads,
                                                   init_centroids, quantize_layer, quantize_network)
from model.compress.lowering import evaluate_lowered, golden_forward
from model.contract.layout import DESC_WORDS, SPARSE_ROW_HEADER_WORDS
from model.nets.data import load_fashion_mnist
from model.nets.networks import MLP
from model.program.writer import build_program

TINY_WIDTHS = (784, 24, 12, 10)
TINY_TRAIN = 1500
TINY_TEST = 500


@pytest.fixture(scope="module")
def tiny():
    """A small MLP trained briefly on a Fashion-MNIST subset, with its data."""
    x, y = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    torch.manual_seed(0)
    model = MLP(TINY_WIDTHS)
    dense = [torch.ones_like(l.weight) for l in model.linears()]  # all-ones masks: plain training, one thread
    train_masked(model, dense, x[:TINY_TRAIN], y[:TINY_TRAIN], epochs=3, batch=64, lr=2e-3, seed=0, progress=False)
    return model, (x[:TINY_TRAIN], y[:TINY_TRAIN]), (xt[:TINY_TEST], yt[:TINY_TEST])


TINY_CONFIG = DeepCompConfig(densities=(0.2, 0.3, 0.6), bits=(4, 3, 3), prune_rounds=2, prune_epochs=1,
                             quant_epochs=1, batch=64)


@pytest.fixture(scope="module")
def tiny_comp(tiny):
    """:data:`TINY_CONFIG` applied to the tiny network."""
    model, train, test = tiny
    return deepcomp_compress(model, train, test, TINY_CONFIG, seed=0, progress=False)


# --- pruning -----------------------------------------------------------------------------------

def test_magnitude_mask_keeps_largest():
    w = np.array([[0.1, -3.0, 0.5], [2.0, -0.2, 0.0]])
    m = magnitude_mask(w, 0.5)
    assert m.sum() == 3
    assert m[0, 1] and m[1, 0] and m[0, 2]
    with pytest.raises(ValueError, match="density"):
        magnitude_mask(w, 0.0)


def test_density_schedule_ends_at_targets():
    s = density_schedule([0.1, 0.5], 3)
    assert len(s) == 3 and s[-1] == pytest.approx([0.1, 0.5])
    assert s[0][0] > s[1][0] > s[2][0]
    with pytest.raises(ValueError):
        density_schedule([1.5], 2)


def test_pruned_weights_stay_zero_through_retraining_and_quantization(tiny):
    model, train, _ = tiny
    import copy
    m = copy.deepcopy(model)
    masks = iterative_prune(m, (0.1, 0.2, 0.5), *train, rounds=2, epochs_per_round=1, batch=64, lr=1e-3, seed=1,
                            progress=False)
    linears = [l for l in m if isinstance(l, torch.nn.Linear)]
    for l, mask in zip(linears, masks):
        w = l.weight.detach().numpy()
        assert np.all(w[mask.numpy() == 0] == 0.0)
        assert np.count_nonzero(w) == int(mask.sum())
    # More retraining with the final masks: still exactly zero.
    train_masked(m, masks, *train, epochs=1, batch=64, lr=1e-2, seed=2, progress=False)
    for l, mask in zip(linears, masks):
        assert np.all(l.weight.detach().numpy()[mask.numpy() == 0] == 0.0)
    quant = quantize_network(m, [mk.numpy() for mk in masks], (4, 3, 3))
    tuned = finetune_centroids(quant, *train, epochs=1, batch=64, lr=1e-2, seed=3, progress=False)
    for q, mask in zip(tuned, masks):
        pruned = mask.numpy() == 0
        assert q.centroids[0] == 0.0
        assert np.all(q.indices[pruned] == 0) and np.all(q.indices[~pruned] > 0)
        assert np.all(q.weight()[pruned] == 0.0)


# --- trained quantization ----------------------------------------------------------------------

def test_gather_centroid_grads_sums_member_gradients():
    rng = np.random.default_rng(0)
    k = 8
    idx = rng.integers(0, k, size=(7, 11))
    grad = rng.normal(size=(7, 11))
    got = gather_centroid_grads(torch.from_numpy(grad), torch.from_numpy(idx), k).numpy()
    for j in range(1, k):
        assert got[j] == pytest.approx(grad[idx == j].sum(), abs=1e-12)
    assert got[0] == 0.0  # the exact zero never moves
    with pytest.raises(ValueError, match="shape"):
        gather_centroid_grads(torch.zeros(3, 4), torch.zeros(4, 3, dtype=torch.int64), k)


def test_gathered_gradient_matches_autograd_of_shared_weights():
    rng = np.random.default_rng(1)
    layer = QuantLayer(centroids=np.array([0, -0.5, 0.25, 1.0], dtype=np.float32),
                       indices=rng.integers(0, 4, size=(5, 6)), bias=np.zeros(5, dtype=np.float32), relu=False)
    net = QuantNet([layer])
    x = torch.from_numpy(rng.normal(size=(3, 6)).astype(np.float32))
    net(x).square().sum().backward()  # autograd through centroids[indices]
    auto = net.centroids[0].grad.clone()
    weights = net.dense_weights()
    net.forward_with(x, weights).square().sum().backward()
    gathered = gather_centroid_grads(weights[0].grad, net.indices(0), 4)
    assert torch.allclose(gathered[1:], auto[1:], atol=1e-5)


def test_linear_init_and_assignment():
    v = np.array([-1.0, -0.9, 0.8, 1.0, 0.05])
    c = init_centroids(v, 2)
    assert c[0] == 0.0 and len(c) == 4
    assert c[1] == pytest.approx(-1.0) and c[3] == pytest.approx(1.0)
    q = quantize_layer(np.array([[0.0, -0.95, 0.9]]), np.array([[False, True, True]]), np.zeros(1), 2, relu=False)
    assert q.indices.tolist() == [[0, 1, 3]]
    with pytest.raises(ValueError, match="centroids"):
        QuantLayer(centroids=np.array([0.5, 1.0], dtype=np.float32), indices=np.zeros((1, 1), dtype=np.int64),
                   bias=np.zeros(1, dtype=np.float32), relu=False)


# --- sparse rows and accounting ----------------------------------------------------------------

def _expand(symbols, idx_bits, length):
    """Rebuild a dense row from its joint symbols with the engine's decoding twin."""
    positions, idx = decode_row(symbols, idx_bits, 1 << idx_bits, length)
    row = np.zeros(length, dtype=np.int64)
    row[positions] = idx
    return row


@pytest.mark.parametrize("rel_bits", [1, 2, 3, 4])
def test_fillers_appear_exactly_when_gaps_overflow(rel_bits):
    limit = (1 << rel_bits) - 1
    # Gaps (zeros before each non-zero): limit (fits), limit + 1 (one filler), 3 * (limit + 1) + limit (three).
    gaps = [limit, limit + 1, 3 * (limit + 1) + limit, 0]
    row = []
    for g in gaps:
        row += [0] * g + [5]
    row += [0] * 40  # trailing zeros need no entry
    a = stats.layer_account(np.array([row]), k=8, lanes=4, rel_bits=rel_bits)
    assert a.fillers == 0 + 1 + 3 + 0
    assert a.entries == a.nonzeros + a.fillers == 4 + 4
    coded = encode_layer(np.array([row]), 8, rel_bits + 3, rel_bits=rel_bits)
    np.testing.assert_array_equal(_expand(coded.symbols[0], 3, len(row)), row)


def test_accounting_adds_up():
    rng = np.random.default_rng(3)
    k, lanes, rel_bits = 8, 4, 2
    m = rng.integers(1, k, size=(20, 50)) * (rng.random((20, 50)) < 0.15)
    m[4] = 0  # an empty row still costs its header and one (0, 0) symbol
    a = stats.layer_account(m, k, lanes, rel_bits=rel_bits)
    assert a.idx_bits == 3 and a.nonzeros == np.count_nonzero(m)
    assert a.entries == a.nonzeros + a.fillers
    assert a.index_bits == a.entries * 3 and a.rel_index_bits == a.entries * rel_bits
    assert a.header_bits == 32 * (SIZE_WORDS + DESC_WORDS + SPARSE_ROW_HEADER_WORDS * 20)
    coded = encode_layer(m, k, rel_bits + 3, rel_bits=rel_bits)
    freqs = np.bincount(np.concatenate(coded.symbols), minlength=1 << (rel_bits + 3))
    table = HuffmanTable.from_freqs(freqs, symbol_bits=rel_bits + 3)
    assert a.table_bits == 32 * len(table.to_words())
    encoded = [encode(r, table) for r in coded.symbols]
    assert a.huffman_bits == sum(bits for _, bits in encoded)
    assert a.padding_bits >= 32 * sum(len(w) for w, _ in encoded) - a.huffman_bits
    assert a.codebook_bits == 8 * 8  # 8 centroids, 4 to a ROM entry of 4 bytes
    assert a.total_bits == a.header_bits + a.huffman_bits + a.padding_bits + a.table_bits + a.codebook_bits
    assert a.entropy <= a.avg_code_length < a.entropy + 1
    assert a.fp32_bytes == (m.size + 20) * 4
    fixed_rows = sum(-(-len(r) * (rel_bits + 3) // 32) for r in coded.symbols)
    assert a.fixed_total_bits == a.header_bits + 32 * fixed_rows + a.codebook_bits
    net = stats.network_account([m, m[:, :10]], [k, k], lanes, rel_bits=rel_bits)
    assert net["total_bytes"] == net["job_header_bytes"] + sum(l.total_bits for l in net["layers"]) / 8
    assert net["ratio"] == pytest.approx(net["fp32_bytes"] / net["total_bytes"])
    with pytest.raises(ValueError):
        stats.network_account([m], [8, 8], lanes)


# --- the pipeline on a tiny subset -------------------------------------------------------------

def test_quick_pipeline_on_a_subset(tiny, tiny_comp, tmp_path):
    model, train, test = tiny
    comp = tiny_comp
    info = comp.info
    sizes = [a * b for a, b in zip(TINY_WIDTHS[:-1], TINY_WIDTHS[1:])]
    assert info["densities"] == [round(d * n) / n for d, n in zip(TINY_CONFIG.densities, sizes)]
    for key in ("float_accuracy", "pruned_accuracy", "quantized_accuracy", "finetuned_accuracy"):
        assert 0.5 < info[key] <= 1.0  # far above chance (0.1) on 10 classes
    again = deepcomp_compress(model, train, test, TINY_CONFIG, seed=0, progress=False)
    for a, b in zip(comp.layers, again.layers):  # deterministic for a seed
        np.testing.assert_array_equal(a.centroids, b.centroids)
        np.testing.assert_array_equal(a.indices, b.indices)

    lowered = lower_deepcomp(comp.layers, train[0][:500], name="tiny", info=info)
    assert lowered.method == "deepcomp"
    for q, l in zip(comp.layers, lowered.layers):
        assert l.codebook.shape == (len(q.centroids), 1) and l.codebook.dtype == np.int8
        assert l.codebook[0, 0] == 0
        np.testing.assert_array_equal(l.indices, q.indices)
        assert np.all(l.weight()[q.indices == 0] == 0)
    acc8 = evaluate_lowered(lowered, *test)
    assert abs(acc8 - info["finetuned_accuracy"]) < 0.05
    x8 = np.clip(np.round(test[0][:3] * 127), 0, 127).astype(np.int8)
    assert golden_forward(lowered, x8).shape == (3, 10)

    acc = lowered_account(lowered)
    assert [l.idx_bits for l in acc["layers"]] == list(TINY_CONFIG.bits)
    assert acc["nonzeros"] == sum(np.count_nonzero(q.indices) for q in comp.layers)
    assert "P+Q+H" in format_table(lowered)
    # The accounting counts exactly what the program writer stores.
    prog = build_program(lowered)
    assert prog.meta["compression"]["bytes"] == acc["total_bytes"]

    path = tmp_path / "c.npz"
    _save(path, comp)
    back = _load(path)
    assert back.info == comp.info
    for a, b in zip(comp.layers, back.layers):
        np.testing.assert_array_equal(a.centroids, b.centroids)
        np.testing.assert_array_equal(a.indices, b.indices)
        assert a.relu == b.relu
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert _load(tmp_path / "bad.npz") is None


def test_bad_recipes_rejected(tiny, tiny_comp):
    model, train, test = tiny
    with pytest.raises(ValueError, match="one density"):
        DeepCompConfig(densities=(0.1, 0.2), bits=(4,))
    with pytest.raises(ValueError, match="index bits"):
        DeepCompConfig(densities=(0.1,), bits=(9,))
    with pytest.raises(ValueError, match="layers"):
        deepcomp_compress(model, train, test, DeepCompConfig(densities=(0.1,), bits=(4,)), progress=False)
    lowered = lower_deepcomp(tiny_comp.layers, train[0][:200])
    lowered.method = "vq"
    with pytest.raises(ValueError, match="deepcomp"):
        lowered_account(lowered)


def test_lower_network_deepcomp_caches_its_training(tiny, monkeypatch, tmp_path):
    import model.compress.deepcomp.recipe as dc
    model, train, test = tiny
    monkeypatch.setattr(dc, "get_network", lambda name, **kw: model)
    monkeypatch.setattr(dc, "load_fashion_mnist", lambda split: train if split == "train" else test)
    first = dc.lower_network_deepcomp("tiny", cache_dir=tmp_path, progress=False, config=TINY_CONFIG,
                                      calibration_images=300)
    assert not first.info["cached"] and len(list(tmp_path.glob("deepcomp-tiny-seed0-*.npz"))) == 1
    second = dc.lower_network_deepcomp("tiny", cache_dir=tmp_path, progress=False, config=TINY_CONFIG,
                                       calibration_images=300)
    assert second.info["cached"]
    for key in ("float_accuracy", "pruned_accuracy", "finetuned_accuracy", "int8_accuracy", "densities"):
        assert second.info[key] == first.info[key]
    for a, b in zip(first.layers, second.layers):
        np.testing.assert_array_equal(a.codebook, b.codebook)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.bias, b.bias)
    assert first.info["deepcomp_account"]["ratio"] == lowered_account(first)["ratio"]


def test_lowering_rejects_what_int8_cannot_hold():
    rng = np.random.default_rng(4)
    layer = QuantLayer(centroids=np.array([0, -1e-6, 1e-6, 2e-6], dtype=np.float32),
                       indices=rng.integers(0, 4, size=(3, 5)), bias=np.array([0.0, 1e6, 0.0], dtype=np.float32),
                       relu=False)
    with pytest.raises(ValueError, match="int32"):
        lower_deepcomp([layer], rng.random((20, 5)))
    zero = QuantLayer(centroids=np.zeros(4, dtype=np.float32), indices=np.zeros((3, 5), dtype=np.int64),
                      bias=np.ones(3, dtype=np.float32), relu=False)
    with pytest.raises(ValueError, match="all zero"):
        lower_deepcomp([zero], rng.random((20, 5)))


def test_command_line(tiny, tiny_comp, monkeypatch, capsys):
    import json

    import model.compress.deepcomp.recipe as dc
    _, train, _ = tiny
    lowered = lower_deepcomp(tiny_comp.layers, train[0][:200], name="lenet300", info=tiny_comp.info)
    monkeypatch.setattr(dc, "lower_network_deepcomp", lambda *a, **kw: lowered)
    assert dc.main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [l["nonzeros"] for l in out["layers"]] == [int(np.count_nonzero(q.indices)) for q in tiny_comp.layers]
    assert dc.main(["--table"]) == 0
    assert "P+Q+H x" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        dc.main(["--network", "nosuchnet"])
    assert e.value.code == 2 and "unknown network" in capsys.readouterr().err


def test_field_entropies():
    # Runs always 0, indices uniform over 1..4: the run field carries nothing.
    m = np.tile(np.array([1, 2, 3, 4]), (8, 2))
    a = stats.layer_account(m, k=8, lanes=4)
    assert a.run_entropy == 0.0
    assert a.idx_entropy == pytest.approx(2.0) and a.entropy == pytest.approx(2.0)


def test_training_rejects_empty_or_mismatched_data(tiny):
    model, (x, y), _ = tiny
    masks = [torch.ones_like(l.weight) for l in model.linears()]
    with pytest.raises(ValueError, match="labels"):
        train_masked(model, masks, x[:0], y[:0], epochs=1, batch=8, lr=1e-3, seed=0, progress=False)
    with pytest.raises(ValueError, match="labels"):
        finetune_centroids(quantize_network(model, [m.numpy() for m in masks], (3, 3, 3)), x[:10], y[:9],
                           epochs=1, batch=8, lr=1e-3, seed=0, progress=False)
    with pytest.raises(ValueError, match="mask"):
        train_masked(model, masks[:1], x, y, epochs=1, batch=8, lr=1e-3, seed=0, progress=False)
