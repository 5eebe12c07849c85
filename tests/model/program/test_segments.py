"""Partitioned programs: engine segments (one job each) and host segments, in one checked file.

A tiny network of our own (Linear, LayerNorm and GELU on the host, Linear) is partitioned, coded against the
universal codebook, and run with the host in torch and the engine segments on the golden model and on the
Amaranth RTL under DRAM stalls; the file's partition checks refuse every inconsistency in one line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.compress.partitioned import compress_universal_partitioned, with_engine_segments
from model.compress.universal.codebook import load_codebook
from model.contract.errors import ProgramError
from model.contract.layout import vector_words
from model.program.file import Program
from model.program.segments import boundary_words, partition_lines
from sim.partitioned import run_segments, segments_summary
from user_models import FeedForward

TOKENS = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(1))
STAGED = Path(__file__).resolve().parents[3] / "model" / "codebooks" / "universal-d4-k256x2-staged-v1.npz"


Tiny = FeedForward


HOST = {"up": ([], ["residual add"]), "down": (["LayerNorm", "GELU"], ["residual add"])}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("VQE_CACHE", str(tmp_path_factory.mktemp("cache")))
    model = Tiny().eval()
    calib = torch.randn(64, 5, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        program = compress_universal_partitioned("tiny", model, ["up", "down"], lambda m: m(calib), HOST.__getitem__,
                                                 codebook=load_codebook(), lanes=4, weight_sram_words=1024,
                                                 progress=False)
    mp.undo()
    return model, program


def test_the_file_records_the_partition_and_reads_back(tiny):
    _, program = tiny
    again = Program.from_bytes(program.to_bytes())
    assert [s["kind"] for s in again.meta["segments"]] == ["engine", "host", "engine", "host"]
    lines = partition_lines(again)
    assert len(lines) == 4 and "LayerNorm; GELU" in lines[1] and "Linear 16->8" in lines[2]
    assert [job.meta["input_features"] for _, job in again.engine_segments()] == [8, 16]
    # Each job is alone in DRAM (its header at word 0) and is resident in the weight SRAM.
    assert all(job.image[0] == program.image[seg["words"][0]] for seg, job in again.engine_segments())
    assert all(job.meta["layers"][0]["placement"]["resident"] for _, job in again.engine_segments())
    assert boundary_words(again, 10) == {"host_writes_words": 10 * (vector_words(8, 4) + vector_words(16, 4)),
                                         "host_reads_words": 10 * (vector_words(16, 4) + vector_words(8, 4))}


def test_golden_segments_follow_the_float_network(tiny):
    model, program = tiny
    with torch.no_grad():
        ref = model(TOKENS).numpy().reshape(-1, 8)
        out = with_engine_segments(model, program)(TOKENS).numpy().reshape(-1, 8)
    cos = np.sum(out * ref, axis=1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.mean() > 0.9, cos


def test_rtl_segments_are_bit_exact_under_stalls(tiny):
    model, program = tiny
    with torch.no_grad():
        golden, _ = run_segments(program, "golden", model, lambda host: host(TOKENS))
        rtl, records = run_segments(program, "amaranth", model, lambda host: host(TOKENS), latency=5, stall=60,
                                    seed=3)
    assert torch.equal(golden, rtl)
    assert [r["vectors"] for r in records] == [15, 15]
    summary = segments_summary(program, "amaranth", records, {}, 3, 5, 0.0)
    assert summary["bit_exact"] is True and summary["jobs"] == 2
    assert summary["boundary"]["host_writes_words"] == boundary_words(program, 15)["host_writes_words"]
    assert summary["cycles"] == sum(s["cycles"] for s in summary["segments"] if s["kind"] == "engine") > 0
    assert summary["host_ops"] == ["GELU", "LayerNorm", "residual add"]


def _with_meta(program: Program, edit) -> bytes:
    meta = __import__("copy").deepcopy(program.meta)
    edit(meta)
    return Program(meta, program.image).to_bytes()


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m["segments"][2].update(words=[m["segments"][2]["words"][0] + 1, m["segments"][2]["words"][1]]),
     "not the next ones"),
    (lambda m: m["segments"][1].update(kind="gpu"), "segment kind"),
    (lambda m: m["segments"].pop(2), "belong to no engine segment"),
    (lambda m: [m["segments"].pop(i) for i in (2, 0)], "without an engine segment"),
])
def test_an_inconsistent_partition_is_one_line(tiny, edit, needle):
    _, program = tiny
    with pytest.raises(ProgramError, match=needle) as e:
        Program.from_bytes(_with_meta(program, edit), "p.vqz")
    assert "\n" not in str(e.value)


def test_a_corrupted_job_names_its_segment(tiny):
    _, program = tiny
    seg = program.meta["segments"][2]
    image = program.image.copy()
    image[seg["words"][0]] = 0   # the second job's header magic
    with pytest.raises(ProgramError, match=r"engine segment 1 \(down\).*BAD_JOB"):
        Program(program.meta, image).validate("p.vqz")


def test_the_cli_prints_the_partition_and_refuses_what_it_cannot_run(tiny, cli, tmp_path):
    from cli_helpers import assert_user_error
    _, program = tiny
    path = tmp_path / "tiny.vqz"
    program.save(path)
    res = cli("inspect", path)
    assert res.returncode == 0
    assert "segment   1 host: before down: LayerNorm; GELU" in res.stdout
    assert "engine job, 1 layer(s), 16 -> 8 values" in res.stdout
    assert_user_error(cli("run", path, "--backend", "golden"), "host network 'tiny'")
    assert_user_error(cli("run", path, "--backend", "golden", "--inputs", "e.npz"), "leave out --inputs")
    assert_user_error(cli("compress", "--network", "lenet300", "--method", "kmeans", "--partition", "-o",
                          tmp_path / "x.vqz"), "--partition takes")
    assert_user_error(cli("compress", "--network", "lenet300", "--method", "universal", "--partition", "-o",
                          tmp_path / "x.vqz"), "--partition runs minilm")
    # A fit needs a staged ROM, and a partition.
    assert_user_error(cli("compress", "--network", "minilm", "--method", "universal", "--partition", "--fit", "-o",
                          tmp_path / "x.vqz"), "--fit fits the layers to a staged ROM")
    assert_user_error(cli("compress", "--network", "lenet300", "--method", "universal", "--codebook", STAGED, "--fit",
                          "-o", tmp_path / "x.vqz"), "--fit goes with --partition")
    assert not (tmp_path / "x.vqz").exists()


def test_the_energy_lists_the_boundary_and_the_host_apart(tiny):
    from sim.report.energy.table import load_energy_table
    model, program = tiny
    with torch.no_grad():
        _, records = run_segments(program, "golden", model, lambda host: host(TOKENS))
    energy = segments_summary(program, "golden", records, {}, 3, 10, 0.0)["energy"]
    words = sum(boundary_words(program, 15).values()) / 3
    assert energy["boundary_host_dram_words_per_input"] == words
    assert energy["boundary_host_dram_pj_per_input"] == pytest.approx(words * load_energy_table().pj("dram_32b"))
    assert energy["total_pj_per_input"] == pytest.approx(energy["engine_pj_per_input"]
                                                         + energy["boundary_host_dram_pj_per_input"])
    assert energy["engine_by_component"]["dram"] > 0 and energy["host_ops_not_priced"] == ["GELU", "LayerNorm",
                                                                                          "residual add"]


def test_smoothing_moves_an_outlier_channel_into_the_weights():
    from model.compress.partitioned import smoothing_factors
    x = np.ones((10, 3))
    x[:, 1] = 100.0          # an outlier input channel
    w = np.ones((4, 3))
    c = smoothing_factors(x, w, 0.5)
    assert np.allclose(c, [1.0, 10.0, 1.0])
    assert np.allclose(smoothing_factors(x, w, 0.0), 1.0)
    # A column of zero weights, or an input channel that is always zero, is left alone.
    w[:, 2] = 0
    x[:, 0] = 0
    assert np.allclose(smoothing_factors(x, w, 0.5), [1.0, 10.0, 1.0])


def test_staged_rom_codes_sums_of_one_codeword_per_section():
    from model.compress.universal.codebook import load_codebook
    from model.compress.universal.staged import code_staged, stage_shape
    cb = load_codebook(STAGED)
    stages, section = stage_shape(cb)
    assert (stages, section, cb.k) == (2, 256, 512)
    w = np.random.default_rng(3).normal(size=(6, 10)).astype(np.float32)
    idx, scale, rec = code_staged(w, cb)
    assert idx.shape == (6, 3, 2) and idx.min() >= 0 and idx.max() < section
    v = cb.values()
    subs = v[idx[..., 0]] + v[section + idx[..., 1]]               # (6, 3, 4): one codeword per section
    assert np.allclose(rec, subs.reshape(6, 12)[:, :10] * scale[:, None], atol=1e-5)
    # Greedy: in one round (rows at their RMS) each stage picks the nearest codeword to what the earlier left.
    one, _, _ = code_staged(w, cb, rounds=1)
    sub = w[:, :8].reshape(6, 2, 4) / np.sqrt(np.mean(w.astype(np.float64) ** 2, axis=1))[:, None, None]
    for s in range(stages):
        book = v[s * section:(s + 1) * section]
        pick = ((sub[..., None, :] - book[None, None]) ** 2).sum(-1).argmin(-1)
        assert np.array_equal(one[:, :2, s], pick)
        sub = sub - book[pick]
    assert np.mean((rec - w) ** 2) < 0.1 * np.mean(w ** 2)


def test_a_staged_rom_program_runs_rvq_jobs_bit_exact(tmp_path, monkeypatch):
    from model.compress.universal.codebook import load_codebook
    monkeypatch.setenv("VQE_CACHE", str(tmp_path))
    model = Tiny().eval()
    calib = torch.randn(64, 5, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        program = compress_universal_partitioned("tiny", model, ["up", "down"], lambda m: m(calib),
                                                 HOST.__getitem__, codebook=load_codebook(STAGED), lanes=4,
                                                 weight_sram_words=1024, progress=False)
        golden, _ = run_segments(program, "golden", model, lambda host: host(TOKENS))
        rtl, records = run_segments(program, "amaranth", model, lambda host: host(TOKENS), stall=50)
    assert program.config.rvq_stages_max == 2 and len(program.meta["rom"]) == 512
    assert [job.meta["layers"][0]["mode"] for _, job in program.engine_segments()] == ["rvq", "rvq"]
    assert torch.equal(golden, rtl)
    assert all(np.array_equal(r["outputs"], r["golden_outputs"]) for r in records)


def test_a_staged_rom_program_of_a_zoo_network(tmp_path):
    """``vqe compress --network lenet300 --method universal --codebook <staged>``: RVQ layers on the shared ROM."""
    from model.compress.pipeline import compress
    program = compress("lenet300", "universal", codebook=str(STAGED), calibration=200, progress=False)
    assert [layer["mode"] for layer in program.meta["layers"]] == ["rvq"] * 3
    assert program.meta["rom_shared"] and len(program.meta["rom"]) == 512
    assert program.meta["info"]["int8_accuracy"] > 0.85
