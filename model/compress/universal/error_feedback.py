"""Error-feedback assignment to a fixed codebook: sub-vectors chosen for the layer's *outputs*.

Nearest-codeword assignment minimizes each weight sub-vector's own error.
What matters is the layer's output ``X W^T`` on real inputs, and there the
errors of columns fed by large or correlated activations count more, and an
error in one column can be partly cancelled by moving later columns.  This is
the optimal-brain-surgeon update as GPTQ applies it (Frantar et al. 2022,
arXiv 2210.17323), with the joint choice of a whole sub-vector from a
codebook as in GPTVQ (van Baalen et al. 2024, arXiv 2402.15319); here the
codebook is the fixed universal ROM and each row keeps its scale.

For one layer with inputs ``X`` (rows are samples, each scaled to unit norm,
:data:`NORMALIZE_ROWS`) and ``H = X^T X`` (damped by :data:`DAMP` times its
mean diagonal), let ``U`` be the upper Cholesky factor
of ``H^-1``.  Sub-vector positions (groups of ``dim`` columns) are coded left
to right; at group ``g`` with block ``B`` of ``U`` and the rows' current
(already compensated, scale-normalized) targets ``T``:

* the cost of a codeword ``c`` is ``|(T - c) B^-1|^2``: the increase of the
  output error when the later columns are re-optimized, so the choice is a
  nearest-neighbour search after transforming targets and codebook by
  ``B^-1``;
* the error ``E = (T - Q) B^-1`` is fed forward: the later columns' targets
  move by ``-E U[g, later]``.

Afterwards each row's scale is re-fitted by least squares in the ``H``
metric.  The search also returns each sub-vector's ``top_n`` candidates in
that metric (the chosen one first) for the differentiable assignment of
:mod:`model.compress.universal.fit`.

Why unit-norm rows: in a transformer every token is renormalized (LayerNorm)
after each block, so a token's *relative* error is what propagates, while
the raw ``X^T X`` is dominated by the few tokens with huge activations.  On
MiniLM (1024-codeword prefix, only the six FFN output layers coded) raw rows
gave an embedding cosine of 0.514, unit-norm rows 0.727, nearest codewords
0.878; on the value and intermediate layers error feedback beats nearest
either way (0.98 vs 0.92, 0.96 vs 0.93).  So it is applied layer by layer
only where it helps (:func:`model.compress.universal.fit.error_feedback_init`).  On
the whole of MiniLM it is not a reliable win and is off by default: with the
16384-codeword prefix the nearest start scores 0.941, error-feedback starts
0.956 (each layer judged alone) or 0.929 (greedy, the current rule: a
128-sentence check set is a noisy judge), and after the distilled fit the
plain start does best (see ``reports/universal_table.md``).

Only ``nn.Linear`` layers get a Hessian (:func:`layer_hessians`); other
layers are left to plain nearest-codeword assignment.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model.nets.distill import batch_size, call, take
from model.nets.training import TORCH_THREADS, TorchThreads
from model.nets.weightmat import get_module

#: Scale every input row (token) to unit norm before it enters ``H``.
NORMALIZE_ROWS = True
#: Damping of ``H``, as a fraction of its mean diagonal (GPTQ's default).
DAMP = 0.01
#: Calibration samples (inputs of the distillation set) used for the Hessians.
CALIB_SAMPLES = 256
#: Samples per forward pass while collecting them.
CALIB_BATCH = 32
#: Rows of the codeword distance matrix computed at a time.
_ROWS = 4096


@torch.no_grad()
def layer_hessians(model: nn.Module, inputs, names: list[str], n: int = CALIB_SAMPLES,
                   batch: int = CALIB_BATCH) -> dict[str, torch.Tensor]:
    """``X^T X / rows`` (float64) of the inputs of each named ``nn.Linear`` over the first ``n`` samples.

    Every leading position (batch, token) of a layer's input is one row.
    Layers that are not ``nn.Linear`` are not in the result.
    """
    mods = {nm: get_module(model, nm) for nm in names}
    mods = {nm: m for nm, m in mods.items() if isinstance(m, nn.Linear)}
    acc = {nm: torch.zeros((m.in_features, m.in_features), dtype=torch.float64) for nm, m in mods.items()}
    rows = dict.fromkeys(mods, 0)

    mask: dict = {}

    def hook(nm):
        def f(_mod, args):
            x = args[0].detach()
            m = mask.get("m")
            if m is not None and x.shape[:-1] == m.shape:
                x = x[m]  # token inputs: padded positions are not inputs the layer serves
            x = x.reshape(-1, x.shape[-1]).to(torch.float64)
            if NORMALIZE_ROWS:
                x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
            acc[nm].addmm_(x.T, x)
            rows[nm] += len(x)
        return f

    handles = [m.register_forward_pre_hook(hook(nm)) for nm, m in mods.items()]
    model.eval()
    try:
        total = min(int(n), batch_size(inputs))
        with TorchThreads(TORCH_THREADS):
            for i in range(0, total, batch):
                part = take(inputs, torch.arange(i, min(i + batch, total)))
                feats = part[0] if isinstance(part, tuple) and len(part) == 1 else part
                am = feats.get("attention_mask") if isinstance(feats, dict) else None
                mask["m"] = None if am is None else am.bool()
                call(model, part)
    finally:
        for h in handles:
            h.remove()
    return {nm: acc[nm] / max(1, rows[nm]) for nm in mods}


def _inverse_cholesky(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Upper Cholesky factor of the damped ``H^-1``; columns no input ever drives are zeroed in ``w``."""
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += DAMP * float(torch.diag(h).mean()) * torch.eye(len(h), dtype=h.dtype)
    hinv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(hinv, upper=True)


def error_feedback_assign(w2d: np.ndarray, row_scale: np.ndarray, cb: np.ndarray, hessian: torch.Tensor,
                          top_n: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Code one layer against ``cb`` with error feedback (see the module docstring).

    Parameters
    ----------
    w2d : numpy.ndarray, shape (out, cols)
    row_scale : numpy.ndarray, shape (out,)
        Positive scales the rows are coded at (``W[r] ~ s_r * codewords``).
    cb : numpy.ndarray, shape (K, dim)
        Codebook values.
    hessian : torch.Tensor, shape (cols, cols)
        ``X^T X / rows`` of the layer's inputs (:func:`layer_hessians`).
    top_n : int
        Candidates to return per sub-vector.

    Returns
    -------
    indices : numpy.ndarray of int64, shape (out, S)
        The chosen codewords (``S = ceil(cols / dim)``).
    row_scale : numpy.ndarray of float32, shape (out,)
        Re-fitted by least squares in the ``H`` metric (kept where that is not positive).
    candidates : numpy.ndarray of int64, shape (out, S, top_n)
        Nearest first in the transformed metric; ``candidates[..., 0] == indices``.
    sq_dist : numpy.ndarray of float32, shape (out, S, top_n)
        Their transformed squared distances.
    """
    out, cols = w2d.shape
    k, dim = cb.shape
    s_groups = -(-cols // dim)
    n = min(int(top_n), k)
    s0 = torch.as_tensor(np.asarray(row_scale, dtype=np.float64))
    w = torch.as_tensor(np.asarray(w2d, dtype=np.float64)) / s0[:, None]
    u = _inverse_cholesky(hessian.to(torch.float64), w)
    c = torch.as_tensor(np.asarray(cb, dtype=np.float64))
    cand = torch.empty((out, s_groups, n), dtype=torch.int64)
    dist = torch.empty((out, s_groups, n), dtype=torch.float64)
    q = torch.empty_like(w)
    for g in range(s_groups):
        j0, j1 = g * dim, min(cols, (g + 1) * dim)
        a = torch.linalg.inv(u[j0:j1, j0:j1])  # block B^-1 (upper triangular)
        t = w[:, j0:j1] @ a
        cp = c[:, :j1 - j0] @ a
        cp_sq = (cp * cp).sum(1)
        for r in range(0, out, _ROWS):
            d = torch.addmm(cp_sq[None, :], t[r:r + _ROWS], cp.T, beta=1.0, alpha=-2.0)
            v, j = (d.min(dim=1, keepdim=True) if n == 1 else torch.topk(d, n, dim=1, largest=False, sorted=True))
            cand[r:r + _ROWS, g], dist[r:r + _ROWS, g] = j, (v + (t[r:r + _ROWS] ** 2).sum(1, keepdim=True)).clamp_min(0)
        q[:, j0:j1] = c[cand[:, g, 0], :j1 - j0]
        err = (w[:, j0:j1] - q[:, j0:j1]) @ a
        if j1 < cols:
            w[:, j1:] -= err @ u[j0:j1, j1:]
    # Least-squares row scales in the H metric for the chosen codewords (original weights).
    w_orig = torch.as_tensor(np.asarray(w2d, dtype=np.float64))
    hq = q @ hessian.to(torch.float64)
    num, den = (w_orig * hq).sum(1), (q * hq).sum(1)
    ls = num / den.clamp_min(1e-300)
    ok = (den > 0) & (ls > 0) & torch.isfinite(ls)
    scale = torch.where(ok, ls, s0)
    return (cand[..., 0].numpy().copy(), scale.numpy().astype(np.float32), cand.numpy(),
            dist.numpy().astype(np.float32))
