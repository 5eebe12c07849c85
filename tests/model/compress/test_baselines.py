"""Per-layer baselines (k-means VQ, PQ, RQ, LR2VQ) and the bit accounting."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from model.compress.baselines import (capped_k, code_kmeans, code_lr2vq, code_pq, code_rq, compress, engine_bytes,
                                      index_bits, int8_side, storage)
from model.compress.universal.codebook import UniversalCodebook
from model.compress.universal.fit import assign_nearest
from model.nets.weightmat import find_weight_layers, weight_matrix, with_weights


@pytest.fixture(scope="module")
def w():
    rng = np.random.default_rng(0)
    # Correlated columns, so low-rank and product structure both matter.
    return (rng.standard_normal((96, 64)) @ (np.eye(64) + 0.3 * rng.standard_normal((64, 64)))).astype(np.float32)


def _err(w, rec):
    return float(np.sum((w - rec) ** 2) / np.sum(w ** 2))


def _monotone(errs):
    return all(a > b for a, b in zip(errs, errs[1:]))


def test_kmeans_more_codewords_less_error(w):
    errs = [_err(w, code_kmeans(w, 4, k)[0]) for k in (4, 16, 64)]
    assert _monotone(errs), errs


def test_pq_more_codewords_less_error(w):
    errs = [_err(w, code_pq(w, 4, k)[0]) for k in (2, 4, 8, 16)]
    assert _monotone(errs), errs


def test_rq_more_stages_less_error(w):
    errs = [_err(w, code_rq(w, 4, 8, t)[0]) for t in (1, 2, 3)]
    assert _monotone(errs), errs


def test_lr2vq_more_bits_less_error(w):
    errs = [_err(w, code_lr2vq(w, 8, k, 4)[0]) for k in (4, 16, 64)]
    assert _monotone(errs), errs
    errs_r = [_err(w, code_lr2vq(w, 8, 64, r)[0]) for r in (1, 2, 4)]
    assert _monotone(errs_r), errs_r
    with pytest.raises(ValueError):
        code_lr2vq(w, 8, 16, 9)


def test_capped_k_and_index_bits():
    assert capped_k(256, 24) == 4   # 24 / 4 = 6 -> 4
    assert capped_k(2, 24) == 2
    assert capped_k(16, 3) == 1
    assert [index_bits(k) for k in (1, 2, 3, 4, 128, 129)] == [1, 1, 2, 2, 7, 8]


def test_int8_side_data():
    deq, bits = int8_side(np.array([[1.0, -0.5], [0.25, 0.0]]))
    assert bits == 4 * 8 + 32
    np.testing.assert_allclose(deq, np.round(np.array([[1.0, -0.5], [0.25, 0.0]]) * 127) / 127, rtol=1e-6)


@pytest.fixture()
def tiny():
    """Linear(10 -> 8): 80 weights, 8 biases; with d = 4 each row has 3 sub-vectors (24 in all)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 8))


@pytest.mark.parametrize("method,config,indices,side", [
    # 24 sub-vectors, k capped at 24 // 4 = 6 -> 4: 2-bit indices; codebook 4x4 int8 + one 32-bit scale.
    ("kmeans", dict(d=4, k=256), 24 * 2, 4 * 4 * 8 + 32),
    # 3 column segments of 8 rows, k capped at 8 // 4 = 2: 1-bit indices; 3 codebooks of 2x4 + one scale.
    ("pq", dict(d=4, k=16), 8 * 3 * 1, 3 * 2 * 4 * 8 + 32),
    # 2 stages of 4 codewords: 2 x 24 2-bit indices, 2 codebooks 4x4 + 2 scales.
    ("rq", dict(d=4, k=4, stages=2), 2 * 24 * 2, 2 * (4 * 4 * 8 + 32)),
    # 24 sub-vectors of m=4, k=4 codewords in r=2 dims: codebook 4x2, basis 4x2, mean 4, each with a scale.
    ("lr2vq", dict(m=4, k=4, r=2), 24 * 2, (4 * 2 * 8 + 32) + (4 * 2 * 8 + 32) + (4 * 8 + 32)),
])
def test_bit_accounting_by_hand(tiny, method, config, indices, side):
    net = compress(tiny, method, config)
    st = storage(net, tiny)
    total = indices + side + 8 * 32
    assert (st["indices"], st["side"], st["scales"], st["biases"]) == (indices, side, 0, 8 * 32)
    assert st["total_bits"] == total
    assert st["bits_per_weight"] == pytest.approx(total / 80)
    assert st["ratio_vs_fp32"] == pytest.approx(32 * 88 / total)


def test_universal_bit_accounting_by_hand(tiny):
    rng = np.random.default_rng(0)
    cb = UniversalCodebook(rng.integers(-127, 128, size=(128, 4)).astype(np.int8), 0.01)
    st = storage(assign_nearest(tiny, cb), tiny)
    # 24 seven-bit indices, 8 fp16 row scales, 8 int32 biases; the ROM is not counted.
    assert (st["indices"], st["side"], st["scales"], st["biases"]) == (24 * 7, 0, 8 * 16, 8 * 32)
    assert st["bits_per_weight"] == pytest.approx((168 + 128 + 256) / 80)


def test_engine_bytes_by_hand():
    # Layer 784->300 and 300->10 at 4 lanes, 7-bit indices: rows of 2 + ceil(196*7/32) = 45 and
    # 2 + ceil(75*7/32) = 19 words; header 8 + 2 descriptors of 8 words.
    assert engine_bytes([(300, 784), (10, 300)], 4, 7, 0) == 4 * (8 + 16 + 300 * 45 + 10 * 19)
    assert engine_bytes([(10, 300)], 4, 8, 256) == 4 * (8 + 8 + 10 * (2 + 19)) + 256 * 4


def test_conv_layers_as_matrices():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(6 * 4 * 4, 5))
    names = find_weight_layers(model)
    assert names == ["0", "3"]
    m = weight_matrix(model[0])
    assert m.shape == (6, 27)
    np.testing.assert_array_equal(m[2], model[0].weight[2].detach().numpy().reshape(-1))
    assert weight_matrix(nn.Conv1d(2, 4, 3)).shape == (4, 6)
    copy = with_weights(model, {"0": 2 * m})
    torch.testing.assert_close(copy[0].weight, 2 * model[0].weight)
    for method, config in (("kmeans", dict(d=4, k=8)), ("pq", dict(d=4, k=4)), ("rq", dict(d=4, k=4, stages=2)),
                           ("lr2vq", dict(m=4, k=8, r=2))):
        net = compress(model, method, config)
        assert net.layers[0].weight.shape == (6, 27)
        out = net.apply(model)(torch.rand(2, 3, 6, 6))
        assert out.shape == (2, 5)


def test_unknown_method(tiny):
    with pytest.raises(ValueError, match="unknown method"):
        compress(tiny, "nope", {})


def test_matched_rows_respect_the_universal_budget():
    from scripts.experiments.universal import format_table, matched

    def row(method, bpw, q, net="n"):
        return dict(network=net, method=method, config={"k": 1}, bits_per_weight=bpw, ratio_vs_fp32=32 / bpw,
                    metric="accuracy", quality=q, delta=q - 0.9, seconds=1.0)
    rows = [row("universal", 1.8, 0.89), row("kmeans", 1.75, 0.88), row("kmeans", 2.1, 0.895),
            row("pq", 1.6, 0.80), row("pq", 1.81, 0.82), row("rq", 2.5, 0.9), row("kmeans", 1.0, 0.5, net="other")]
    got = {(r["network"], r["method"]): r["quality"] for r in matched(rows)}
    assert got == {("n", "universal"): 0.89, ("n", "kmeans"): 0.88, ("n", "pq"): 0.82}
    text = format_table(rows)
    assert "universal" in text and "within the universal bit budget" in text


def _table_row(net, method, cfg, bpw, q, fq=0.9, metric="accuracy"):
    return dict(network=net, method=method, config=cfg, metric=metric, quality=q, float_quality=fq, delta=q - fq,
                bits_per_weight=bpw, ratio_vs_fp32=32 / bpw, weights=1000, other_params=0, seconds=3.0,
                training_seconds=3.0)


def test_table_json_keeps_other_networks_and_markdown_checks_criteria(tmp_path):
    from model.compress.universal.codebook import load_codebook
    from scripts.experiments.universal import write_json
    from scripts.experiments.universal_table import render_markdown
    cb = load_codebook(k=16384)
    path = tmp_path / "t.json"
    lenet = [_table_row("lenet300", "universal", dict(dim=4, k=128, donor=False), 1.86, 0.895),
             _table_row("lenet300", "kmeans", dict(d=4, k=128), 1.9, 0.91)]
    minilm = [_table_row("minilm", "universal", dict(dim=4, k=4096, donor=True), 3.1, 0.93, 1.0, "embedding_cosine"),
              _table_row("minilm", "universal", dict(dim=4, k=1024, donor=True), 2.6, 0.90, 1.0, "embedding_cosine")]
    write_json(path, lenet, cb, {"lenet300": {"seconds_total": 5, "universal_training_seconds": {"128": 3}}})
    write_json(path, minilm, cb, {"minilm": {"seconds_total": 9, "universal_training_seconds": {"4096": 7}}})
    table = json.loads(path.read_text())
    assert [r["network"] for r in table["rows"]] == ["lenet300", "lenet300", "minilm", "minilm"]
    assert set(table["networks"]) == {"lenet300", "minilm"}
    assert table["codebook"]["stages"] == [128, 1024, 2048, 4096, 8192, 16384] and table["codebook"]["kde"]["factor"] > 0
    assert table["codebook"]["base_sha256"] == load_codebook().content_hash()
    md = render_markdown(table)
    assert "lenet300, shipped 128-entry ROM: 17.2x (>= 16x), accuracy -0.50 pt vs float (>= -1 pt): **met**" in md
    # MiniLM at 0.93: the cosine criterion fails, and the check says so.
    assert "mean embedding cosine 0.9300 (>= 0.95): **NOT met**" in md
    # Non-donor vs per-layer k-means at the same k: 1.5 points behind.
    assert "-1.50 pt (>= -1 point): **NOT met**" in md
    # A row measured again (same network, method, configuration) replaces the old one; the same run
    # writing again replaces its times, another run's times are merged.
    again = dict(lenet[0], quality=0.9)
    write_json(path, [again], cb, {"lenet300": {"run_id": "a", "seconds_total": 1,
                                                "universal_training_seconds": {"128": 1}}})
    table = json.loads(path.read_text())
    assert [(r["network"], r["method"], r["quality"]) for r in table["rows"]] == [
        ("lenet300", "kmeans", 0.91), ("minilm", "universal", 0.93), ("minilm", "universal", 0.90),
        ("lenet300", "universal", 0.9)]
    write_json(path, [], cb, {"minilm": {"run_id": "b", "seconds_total": 4, "universal_training_seconds": {"2048": 2}}})
    nets = json.loads(path.read_text())["networks"]
    assert nets["minilm"]["universal_training_seconds"] == {"4096": 7, "2048": 2}
    assert nets["minilm"]["seconds_total"] == 13 and nets["lenet300"]["seconds_total"] == 6  # 5 + 1: two runs
    write_json(path, [], cb, {"minilm": {"run_id": "b", "seconds_total": 5, "universal_training_seconds": {"2048": 3}}})
    assert json.loads(path.read_text())["networks"]["minilm"]["seconds_total"] == 5


def test_table_notes_survive_rewrites_and_are_rendered(tmp_path):
    from model.compress.universal.codebook import load_codebook
    from scripts.experiments.universal import write_json
    from scripts.experiments.universal_table import render_markdown
    cb = load_codebook(k=16384)
    path = tmp_path / "t.json"
    write_json(path, [_table_row("lenet300", "universal", dict(dim=4, k=128, donor=False), 1.86, 0.895)], cb,
               {"lenet300": {"seconds_total": 5, "universal_training_seconds": {"128": 3}}})
    table = json.loads(path.read_text())
    table["notes"] = {"codebook": "ROM NOTE.", "lenet300": "NET NOTE."}
    path.write_text(json.dumps(table))
    write_json(path, [_table_row("lenet300", "kmeans", dict(d=4, k=128), 1.9, 0.91)], cb,
               {"lenet300": {"run_id": "x", "seconds_total": 1, "universal_training_seconds": {}}})
    table = json.loads(path.read_text())
    assert table["notes"] == {"codebook": "ROM NOTE.", "lenet300": "NET NOTE."} and len(table["rows"]) == 2
    md = render_markdown(table)
    assert "not in the ratios. ROM NOTE." in md and "\nNET NOTE.\n" in md
