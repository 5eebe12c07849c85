"""Error-feedback assignment (model.compress.universal.error_feedback) and its use as the universal fit's start."""
import numpy as np
import pytest
import torch
from torch import nn

from model.compress.kmeans.network import join_subvectors, split_subvectors
from model.compress.universal.codebook import load_codebook
from model.compress.universal.error_feedback import error_feedback_assign, layer_hessians
from model.compress.universal.fit import assign_nearest, error_feedback_init, fit_universal, nearest_codewords
from model.nets.distill import DistillSet


@pytest.fixture(scope="module")
def book():
    return load_codebook(k=1024).values()


def _weights(rng, out=48, cols=70):  # 70 columns: the last sub-vector is padded
    return rng.standard_normal((out, cols)) * 0.05


def test_isotropic_inputs_give_the_nearest_codewords(book):
    rng = np.random.default_rng(1)
    w = _weights(rng)
    s = np.sqrt(np.mean(w ** 2, axis=1))
    idx, _, cand, d2 = error_feedback_assign(w, s, book, torch.eye(w.shape[1], dtype=torch.float64), top_n=3)
    near = nearest_codewords(split_subvectors(w, 4) / s[:, None, None], 70 - 68, book, 3)[0]
    np.testing.assert_array_equal(idx, near[..., 0])
    np.testing.assert_array_equal(cand[..., 0], idx)
    assert np.all(np.diff(d2, axis=2) >= 0)  # candidates nearest first


def test_correlated_inputs_cut_the_output_error_on_held_out_inputs(book):
    rng = np.random.default_rng(2)
    w = _weights(rng)
    cols = w.shape[1]
    x = rng.standard_normal((4000, 6)) @ rng.standard_normal((6, cols)) + 0.2 * rng.standard_normal((4000, cols))
    fit, held = x[:2000], x[2000:]
    h = torch.as_tensor(fit.T @ fit / len(fit))
    near_idx = nearest_codewords(split_subvectors(w, 4) / np.sqrt(np.mean(w ** 2, 1))[:, None, None],
                                 cols - 68, book, 1)[0][..., 0]
    ls = lambda q: (w * q).sum(1) / (q * q).sum(1)  # noqa: E731
    qn = join_subvectors(book[near_idx].astype(np.float64), cols)
    qn = qn * ls(qn)[:, None]
    idx, scale, _, _ = error_feedback_assign(w, np.sqrt(np.mean(w ** 2, 1)), book, h)
    qe = join_subvectors(book[idx].astype(np.float64), cols) * scale[:, None]
    err = lambda q: np.sum((held @ (w - q).T) ** 2) / np.sum((held @ w.T) ** 2)  # noqa: E731
    assert err(qe) < err(qn) / 4
    assert np.all(scale > 0)


class _Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(12, 16), nn.Linear(16, 5)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_layer_hessians_are_the_unit_norm_input_second_moments():
    torch.manual_seed(0)
    m = _Mlp().eval()
    x = torch.randn(40, 12)
    h = layer_hessians(m, x, ["a", "b"], n=40, batch=7)
    xa = x.double() / x.double().norm(dim=1, keepdim=True)
    torch.testing.assert_close(h["a"], xa.T @ xa / 40)
    with torch.no_grad():
        hb = torch.relu(m.a(x)).double()
    hb = hb / hb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    torch.testing.assert_close(h["b"], hb.T @ hb / 40)


def test_error_feedback_init_keeps_a_layer_only_where_it_lowers_the_loss():
    torch.manual_seed(0)
    m = _Mlp().eval()
    cb = load_codebook(k=1024)
    x = torch.randn(300, 12) @ torch.randn(12, 12)  # correlated inputs
    data = DistillSet(x.numpy(), kind="regression")
    init = assign_nearest(m, cb, ["a", "b"], "mlp")
    net, cands, facts = error_feedback_init(m, init, data, top_n=2, progress=False)
    losses = facts["error_feedback_losses"]
    best = losses["start"]
    for layer, old in zip(net.layers, init.layers):
        # Greedy in layer order: a switch is kept only if it lowers the whole coded network's loss.
        kept = losses[layer.name] < best
        assert (layer.name in facts["error_feedback_layers"]) == kept == (layer.name in cands)
        if kept:
            best = losses[layer.name]
            np.testing.assert_array_equal(cands[layer.name][0][..., 0], layer.indices)
        else:
            assert layer is old
    assert facts["error_feedback_layers"]  # correlated inputs: error feedback helps at least one layer here
    fit = fit_universal(m, cb, data, name="mlp", soft_steps=5, hard_steps=2, batch=32, top_n=2, progress=False,
                        error_feedback=True, evaluate=lambda mod: 0.0)
    assert fit.info["error_feedback"] and "quality_error_feedback" in fit.info
