"""Fitting layers to a staged universal ROM: the beam search over stage sums, the stage sums as the engine
reads them, training through the engine's int8 steps, and a fitted partitioned program bit-exact on the RTL."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.codecs.layers.rvq import rvq_weights
from model.compress.universal.codebook import load_codebook
from model.compress.universal.staged import StagedSums, staged_assignment, staged_candidates
from user_models import FeedForward

CODEBOOKS = Path(__file__).resolve().parents[3] / "model" / "codebooks"
K128X2 = CODEBOOKS / "universal-d4-k128x2-staged-v1.npz"


@pytest.fixture(scope="module")
def sums():
    return StagedSums(load_codebook(K128X2))


def test_the_shipped_staged_roms_have_the_sections_they_claim():
    for name, shape in (("universal-d4-k128x2-staged-v1.npz", (2, 128)), ("universal-d4-k256x2-staged-v1.npz", (2, 256))):
        s = StagedSums(load_codebook(CODEBOOKS / name))
        assert (s.stages, s.section, s.k, s.values().shape) == (*shape, shape[1] ** 2, (shape[1] ** 2, 4))


def test_stage_sums_are_what_the_engine_adds(sums):
    """Sum index ``v`` split into stage indices is the engine's RVQ entry: the same integer sub-vector."""
    v = np.random.default_rng(0).integers(0, sums.k, size=(5, 7))
    stages = sums.split(v)
    assert stages.shape == (5, 7, 2) and stages.max() < sums.section
    ints = rvq_weights(sums.rom.codewords, 0, sums.section, stages)
    assert np.allclose(ints * sums.rom.scale, sums.values()[v], atol=1e-5)


def test_a_wide_beam_finds_the_best_sum_and_a_narrow_one_is_greedy(sums):
    x = np.random.default_rng(1).normal(scale=0.5, size=(400, 4)).astype(np.float32)
    full = ((x[:, None, :] - sums.values()[None]) ** 2).sum(-1)
    idx, d2 = staged_candidates(x, sums, 5, beam=sums.section)
    assert np.array_equal(idx[:, 0], full.argmin(1))
    assert np.allclose(d2, np.take_along_axis(full, idx, 1), atol=1e-4)
    assert np.all(np.diff(d2, axis=1) >= -1e-6)                       # best first
    one, _ = staged_candidates(x, sums, 1, beam=1)                    # greedy: stage by stage
    b0, b1 = sums.books
    first = ((x[:, None, :] - b0[None]) ** 2).sum(-1).argmin(1)
    second = ((x - b0[first])[:, None, :] - b1[None]) ** 2
    assert np.array_equal(sums.split(one[:, 0]), np.stack([first, second.sum(-1).argmin(1)], 1))
    beam8, _ = staged_candidates(x, sums, 1)
    err = lambda i: np.take_along_axis(full, i, 1).mean()
    assert err(idx[:, :1]) <= err(beam8) < err(one)


def test_staged_assignment_codes_the_smoothed_columns(sums):
    rng = np.random.default_rng(2)
    w = rng.normal(size=(6, 12))
    c = rng.uniform(0.5, 3.0, size=12)
    idx, scale, (cand, d2) = staged_assignment(w, sums, col_scale=c, top_n=4)
    assert idx.shape == (6, 3) and cand.shape == (6, 3, 4) and np.array_equal(cand[..., 0], idx)
    rec = sums.values()[idx].reshape(6, 12) * scale[:, None]
    err = np.mean((rec - w * c) ** 2) / np.mean((w * c) ** 2)
    assert err < 0.15, err


def test_training_sees_the_engines_int8_steps():
    from model.compress.universal.fit import EngineActivations, engine_int8
    lin = nn.Linear(4, 3)
    model = nn.Sequential(lin)
    c = np.array([1.0, 2.0, 1.0, 4.0], np.float32)
    acts = {"0": EngineActivations(0.05, c, np.array([0.1, 0.2, 0.3], np.float32))}
    x = torch.randn(10, 4, requires_grad=True)
    with engine_int8(model, acts):
        y = model(x)
        y.sum().backward()
    steps = y.detach().numpy() / np.array([0.1, 0.2, 0.3])
    assert np.allclose(steps, np.round(steps), atol=1e-4) and np.abs(steps).max() <= 127 + 1e-4
    xq = torch.clamp(torch.round(x.detach() / torch.from_numpy(c) / 0.05), -127, 127) * 0.05 * torch.from_numpy(c)
    ref = torch.clamp(torch.round(lin(xq).detach() / torch.tensor([0.1, 0.2, 0.3])), -127, 127)
    assert np.array_equal(np.round(steps), ref.numpy())
    assert x.grad is not None and x.grad.abs().sum() > 0                 # straight through
    assert not lin._forward_hooks and not lin._forward_pre_hooks        # the hooks are gone


def test_a_fitted_staged_program_is_bit_exact_and_cached(tmp_path, monkeypatch):
    from model.compress.partitioned import compress_universal_partitioned, fit_staged
    from model.compress.universal.recipes import Task
    from model.nets.distill import DistillSet
    from sim.partitioned import run_segments
    monkeypatch.setenv("VQE_CACHE", str(tmp_path))
    model = FeedForward().eval()
    gen = torch.Generator().manual_seed(2)
    calib, train_x, tokens = (torch.randn(n, 5, 8, generator=gen) for n in (64, 256, 3))

    def cosine(m):
        with torch.no_grad():
            a, b = m(tokens).reshape(-1, 8), model(tokens).reshape(-1, 8)
        return {"cosine": float(F.cosine_similarity(a, b, dim=-1).mean())}
    task = Task("ffn", model, ["up", "down"], "cosine", cosine, DistillSet((train_x,), kind="regression"))
    host = {"up": ([], []), "down": (["LayerNorm", "GELU"], [])}
    nets = []

    def fit(smoothing, acts):
        nets.append(fit_staged(task, load_codebook(K128X2), ["up", "down"], smoothing, acts, progress=False,
                               budget={"soft_steps": 40, "hard_steps": 10, "batch": 32}))
        return nets[-1]

    def build():
        with torch.no_grad():
            return compress_universal_partitioned("ffn", model, ["up", "down"], lambda m: m(calib), host.__getitem__,
                                                  codebook=load_codebook(K128X2), lanes=4, weight_sram_words=1024,
                                                  progress=False, fit=fit)
    program = build()
    info = nets[0].info
    assert info["engine_int8_modules"] == 2 and info["soft_loss_first_last"][1] < info["soft_loss_first_last"][0]
    assert all(layer.col_scale is not None for layer in nets[0].layers)
    assert program.meta["info"]["fit"]["quality"] == info["quality"]
    assert [job.meta["layers"][0]["mode"] for _, job in program.engine_segments()] == ["rvq", "rvq"]
    with torch.no_grad():
        golden, _ = run_segments(program, "golden", model, lambda h: h(tokens))
        rtl, records = run_segments(program, "amaranth", model, lambda h: h(tokens), stall=50)
    assert torch.equal(golden, rtl) and all(np.array_equal(r["outputs"], r["golden_outputs"]) for r in records)
    assert F.cosine_similarity(golden.reshape(-1, 8), model(tokens).detach().reshape(-1, 8), dim=-1).mean() > 0.9
    # The second time the fit comes from the cache: the same codes, and no training.
    again = build()
    assert np.array_equal(again.image, program.image) and nets[1].info["fit_seconds"] == info["fit_seconds"]
    for a, b in zip(nets[0].layers, nets[1].layers):
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.col_scale, b.col_scale)


def test_a_rom_with_too_many_stage_sums_is_refused_in_one_line(tmp_path):
    from model.compress.partitioned import compress_partitioned
    from model.compress.registry import CompressError
    from model.compress.universal.codebook import UniversalCodebook, save_codebook
    from model.compress.universal.staged import MAX_SUMS
    words = np.random.default_rng(4).integers(-127, 128, size=(4 * 128, 4)).astype(np.int8)
    rom = UniversalCodebook(words, 0.01, ("onet",), {"staged": {"stages": 4, "section": 128}})
    with pytest.raises(ValueError, match="268,435,456 stage sums"):
        StagedSums(rom)
    path = tmp_path / "big.npz"
    save_codebook(rom, path)
    with pytest.raises(CompressError, match=f"more than the fit tabulates \\({MAX_SUMS:,}\\)"):
        compress_partitioned("minilm", lanes=4, weight_sram_words=1024, codebook=str(path), fit=True, progress=False)
