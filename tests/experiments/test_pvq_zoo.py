"""PVQ against k-means on any weight matrix: budgets, bit counts and the coded weights (scripts.experiments.pvq --zoo)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from model.codecs.pvq import pvq_bits
from model.compress.baselines import index_bits
from model.compress.pvq.budget import ROW_OVERHEAD_BITS, PVQBudgetError, choose_layer_k, choose_matrix_k
from model.compress.pvq.layers import pvq_code_matrix
from scripts.experiments import pvq as ex


@pytest.mark.parametrize("lanes, shape, bits, row_bits", [(4, (30, 40), 5.0, 40), (8, (16, 64), 3.0, 64),
                                                          (4, (3, 100), 5.0, 0)])
def test_choose_matrix_k_is_largest_within_budget(lanes, shape, bits, row_bits):
    out, cols = shape
    s = math.ceil(cols / lanes)
    cost = lambda k: out * (s * (pvq_bits(lanes, k) + 8) + row_bits)  # noqa: E731
    k = choose_matrix_k(cols, out, lanes, bits, row_bits)
    assert k >= 1 and cost(k) <= bits * out * cols < cost(k + 1)


def test_choose_matrix_k_generalizes_choose_layer_k():
    assert choose_matrix_k(784, 300, 4, 4.0, ROW_OVERHEAD_BITS) == choose_layer_k(784, 300, 4, 4.0)
    assert choose_matrix_k(100, 10, 4, 3.0, 0) == choose_layer_k(100, 10, 4, 3.0, row_overhead=False)
    assert choose_matrix_k(27, 32, 4, 1.0, 64) == 0  # not even K = 1 fits
    with pytest.raises(PVQBudgetError, match="lanes"):
        choose_matrix_k(8, 8, 1, 3.0, 0)
    with pytest.raises(PVQBudgetError, match="row_bits"):
        choose_matrix_k(8, 8, 4, 3.0, -1)
    with pytest.raises(PVQBudgetError, match="positive"):
        choose_matrix_k(8, 8, 4, float("nan"), 0)


def test_pvq_code_matrix_is_what_the_entries_store():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 10)).astype(np.float32)
    rec, y, scale = pvq_code_matrix(w, 4, 3)
    assert rec.shape == w.shape and y.shape == (6, 3, 4) and scale.shape == (6, 3)
    assert (np.abs(y).sum(axis=2) == 3).all() and scale.min() >= 0 and scale.max() <= 255
    # The reconstruction is one float scale per row times the 8-bit scales times y, padding dropped.
    expected = (scale[..., None] * y).reshape(6, -1)[:, :10]
    assert ((rec == 0) == (expected == 0)).all()
    ratio = np.where(expected == 0, np.nan, rec / np.where(expected == 0, 1, expected))
    row_scale = np.broadcast_to(np.nanmax(ratio, axis=1)[:, None], ratio.shape)
    assert np.allclose(ratio[expected != 0], row_scale[expected != 0], rtol=1e-5)
    assert scale.max(axis=1).tolist() == [255] * 6  # each row's largest gain takes the top code
    # And it is close to the weights: the pulses follow their signs.
    assert np.sign(rec[np.abs(rec) > 0]).tolist() == np.sign(w[np.abs(rec) > 0]).tolist()
    with pytest.raises(ValueError, match="K must be"):
        pvq_code_matrix(w, 4, 0)


def test_kmeans_k_and_bits_are_counted_as_stated():
    # 4000 sub-vectors of 4 in a 400 x 40 matrix: k = 256 costs 32000 index bits, 8192 codebook
    # bits, a 32-bit scale and 12800 bias bits = 53024 <= 3.5 * 16000; k = 512 (65216) does not fit.
    assert ex.kmeans_matrix_bits(4000, 4, 256, 12800) == 4000 * index_bits(256) + 256 * 32 + 32 + 12800 == 53024
    assert ex.kmeans_matrix_bits(4000, 4, 512, 12800) == 65216
    assert ex.choose_kmeans_k(4000, 4, 16000, 3.5, 12800) == 256
    # The codebook cap (a quarter of the sub-vectors) stops k before the budget does.
    assert ex.choose_kmeans_k(40, 4, 160, 30.0, 0) == 8
    # Nothing fits: the smallest codebook, reported over budget by the caller.
    assert ex.choose_kmeans_k(10, 4, 40, 0.1, 0) == 2


def test_zoo_coders_meet_the_budget_and_report_honest_bits():
    rng = np.random.default_rng(1)
    mats = [rng.standard_normal((64, 96)).astype(np.float32), rng.standard_normal((10, 64)).astype(np.float32)]
    biases = [64 * 32, 10 * 32]
    weights = sum(m.size for m in mats)
    pvq = ex.zoo_pvq(mats, biases, 8, 3.0)
    expected = sum(m.shape[0] * (math.ceil(m.shape[1] / 8) * (pvq_bits(8, k) + 8) + ex.ROW_SCALE_BITS) + b
                   for m, b, k in zip(mats, biases, pvq["params"]))
    assert pvq["bits_per_weight"] == pytest.approx(expected / weights) and pvq["bits_per_weight"] <= 3.0
    assert [w.shape for w in pvq["weights"]] == [m.shape for m in mats] and pvq["over_budget_layers"] == []
    km = ex.zoo_kmeans(mats, biases, 4, 3.0, seed=0)
    assert km["bits_per_weight"] <= 3.0 and [w.shape for w in km["weights"]] == [m.shape for m in mats]
    # Each k-means layer holds at most k distinct sub-vectors (its int8 codebook).
    for w, k in zip(km["weights"], km["params"]):
        assert len(np.unique(w.reshape(-1, 4), axis=0)) <= k
    # The dry run plans the same parameters without coding.
    assert ex.zoo_pvq(mats, biases, 8, 3.0, dry=True)["params"] == pvq["params"]
    # A budget below PVQ's floor puts every layer over it, with K = 1.
    low = ex.zoo_pvq(mats, biases, 4, 1.0, dry=True)
    assert low["params"] == [1, 1] and low["over_budget_layers"] == [0, 1] and low["bits_per_weight"] > 1.0


def test_kmeans_fit_subsample_still_assigns_every_subvector(monkeypatch):
    monkeypatch.setattr(ex, "FIT_VECTORS_PER_CODEWORD", 2)
    rng = np.random.default_rng(2)
    w = rng.standard_normal((50, 16)).astype(np.float32)
    rec, found = ex.kmeans_code_matrix(w, 4, 8, seed=0)
    assert found == 8 and rec.shape == w.shape
    codebook = np.unique(rec.reshape(-1, 4), axis=0)
    # Every sub-vector takes its nearest stored codeword.
    d = ((w.reshape(-1, 4)[:, None, :] - codebook[None]) ** 2).sum(-1)
    assert np.allclose(((rec.reshape(-1, 4) - w.reshape(-1, 4)) ** 2).sum(-1), d.min(1), rtol=1e-5, atol=1e-6)


def test_zoo_markdown_table():
    nets = [{"network": "n", "metric_name": "acc", "float_metric": 0.9, "rows": [
        {"method": "kmeans", "dim": 4, "budget": 2.0, "skipped": False, "bits_per_weight": 1.9, "metric": 0.8},
        {"method": "pvq", "dim": 4, "budget": 2.0, "skipped": True, "bits_per_weight": 2.9},
        {"method": "pvq", "dim": 8, "budget": 2.0, "skipped": False, "bits_per_weight": 1.95, "metric": 0.7}]}]
    table = ex.zoo_markdown(nets)
    assert "| n (acc, fp32 0.9000) | 2 | 1.900 | 0.8000 | needs 2.90 | - | 1.950 | 0.7000 |" in table
    assert table.splitlines()[0].count("|") == 9


def test_zoo_cli_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        ex.main(["--zoo", "out.json", "--networks", "nope"])
    assert "unknown network" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ex.main(["--zoo", "out.json", "--pvq-lanes", "1"])
    with pytest.raises(SystemExit):
        ex.main(["--zoo", "out.json", "--zoo-budgets", "2,x"])


def test_merge_zoo_replaces_same_rows_and_keeps_the_rest():
    def row(method, dim, budget, metric):
        return {"method": method, "dim": dim, "budget": budget, "skipped": False, "bits_per_weight": budget - 0.1,
                "metric": metric}

    consts = {"kmeans_d": 4, "fit_vectors_per_codeword": 32, "row_scale_bits": 32, "bias_bits": 32, "seed": 0}
    old = dict(consts, budgets=[2.0], pvq_lanes=[8], total_seconds=10.0, networks=[
        {"network": "minilm", "metric_name": "c", "float_metric": 1.0, "rows": [row("kmeans", 4, 2.0, 0.5)]},
        {"network": "rnet", "metric_name": "f", "float_metric": 1.0, "rows": [row("pvq", 8, 2.0, 0.2)]}])
    new = dict(consts, budgets=[2.0, 4.0], pvq_lanes=[4], total_seconds=5.0, networks=[
        {"network": "rnet", "metric_name": "f", "float_metric": 1.0, "seconds": 5.0,
         "rows": [row("pvq", 8, 2.0, 0.3), row("kmeans", 4, 4.0, 0.9)]}])
    merged = ex.merge_zoo(old, new)
    assert [n["network"] for n in merged["networks"]] == ["rnet", "minilm"]  # zoo order
    rnet = merged["networks"][0]["rows"]
    assert [(r["method"], r["budget"], r["metric"]) for r in rnet] == [("pvq", 2.0, 0.3), ("kmeans", 4.0, 0.9)]
    assert merged["budgets"] == [2.0, 4.0] and merged["pvq_lanes"] == [4, 8] and merged["total_seconds"] == 15.0
    assert "| minilm (c, fp32 1.0000) | 2 |" in merged["table_markdown"]
    with pytest.raises(ValueError, match="cannot merge: kmeans_d"):
        ex.merge_zoo(old, dict(new, kmeans_d=8))


def test_zoo_markdown_shows_the_secondary_metric():
    row = {"method": "kmeans", "dim": 4, "budget": 3.0, "skipped": False, "bits_per_weight": 2.6, "metric": 0.58,
           "metrics": {"fidelity_1px": 0.58, "face_agreement": 0.96}}
    table = ex.zoo_markdown([{"network": "rnet", "metric_name": "fidelity_1px", "float_metric": 1.0, "rows": [row]}])
    assert "| rnet (fidelity_1px (face_agreement), fp32 1.0000) | 3 | 2.600 | 0.5800 (0.9600) |" in table
