"""One engine, one ROM, several networks: the universal codebook on the hardware, and its CLI.

Programs here are small random networks coded against the shipped universal
codebook (nothing is trained); the real networks' runs are in the README's
commands and the report.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.compress.pipeline import CompressError, compress
from model.compress.universal.codebook import load_codebook
from model.contract.fixedpoint import MULT_BITS
from model.contract.ints import ceil_div
from model.program.file import ProgramError
from model.program.writer import build_program
from sim.backends.top import engine_verilog

from cli_helpers import assert_user_error
from engine_cases import assert_bit_exact, run_both

LANES = 4


def universal_lowered(rng, shapes, codebook, name):
    """A random network whose every layer indexes the shared universal ROM."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(shapes[:-1], shapes[1:])):
        layers.append(SimpleNamespace(
            mode="vq", in_features=n_in, out_features=n_out, codebook=codebook.codewords.astype(np.int64),
            indices=rng.integers(0, codebook.k, size=(n_out, ceil_div(n_in, LANES))),
            bias=rng.integers(-(1 << 16), 1 << 16, size=n_out), mult=rng.integers(1, 1 << MULT_BITS, size=n_out),
            shift=rng.integers(14, 22, size=n_out), relu=i < len(shapes) - 2))
    return SimpleNamespace(name=name, method="universal", lanes=LANES, input_scale=1 / 127, output_scale=1.0,
                           layers=layers, info={})


def universal_program(seed, shapes, name):
    cb = load_codebook()
    lowered = universal_lowered(np.random.default_rng(seed), shapes, cb, name)
    return build_program(lowered, codebook_depth=cb.k, config_max_features=64, shared_rom=cb.codewords)


def test_two_networks_share_one_engine():
    """Different shapes and depths, the same ROM: the same config, hence byte-identical Verilog."""
    a = universal_program(1, [37, 20, 9], "net-a")
    b = universal_program(2, [23, 31, 12, 5], "net-b")
    assert a.config == b.config
    assert a.meta["rom_id"] == b.meta["rom_id"]
    assert engine_verilog(a.config) == engine_verilog(b.config)
    # The shared ROM is not charged to either network.
    assert a.meta["compression"]["codebook_shared"] and b.meta["compression"]["codebook_shared"]


def test_universal_programs_run_on_the_universal_chip():
    """A universal program, compressed for its own smallest engine, runs on the chip `vqe verilog` writes;
    a k-means program does not fit it (its ROM differs), nor one whose weight SRAM differs."""
    from model.compress.universal.method import universal_engine_config
    from model.golden.engine import GoldenEngine
    from sim.run import RunError, on_engine
    a = universal_program(1, [37, 20, 9], "net-a")
    chip = universal_engine_config(0, all_networks=True)
    on_chip = on_engine(a, chip)
    assert on_chip.config == chip and on_chip.meta["rom_id"] == a.meta["rom_id"]
    x = random_vectors(np.random.default_rng(0), 3, 37)
    image = a.dram_image(x)[0]
    assert np.array_equal(GoldenEngine(on_chip.config).run(image).outputs, GoldenEngine(a.config).run(image).outputs)
    with pytest.raises(RunError, match="weight SRAM differ"):
        on_engine(a, universal_engine_config(64, all_networks=True))
    lowered = universal_lowered(np.random.default_rng(3), [37, 20, 9], load_codebook(), "own")
    own = build_program(lowered, codebook_depth=128, config_max_features=64)
    with pytest.raises(RunError, match="ROM"):
        on_engine(own, chip)


def test_per_layer_codebooks_change_the_engine():
    """The converse: per-layer k-means codebooks are baked into the ROM, so each network has its own."""
    a = universal_program(1, [37, 20, 9], "net-a")
    lowered = universal_lowered(np.random.default_rng(3), [37, 20, 9], load_codebook(), "own")
    for layer in lowered.layers:
        layer.codebook = layer.codebook[:64].copy()
        layer.codebook[0, 0] ^= 1
        layer.indices %= 64
    own = build_program(lowered, codebook_depth=128, config_max_features=64)
    assert own.config != a.config


def test_program_refuses_a_foreign_codebook():
    cb = load_codebook()
    lowered = universal_lowered(np.random.default_rng(4), [9, 5], cb, "x")
    lowered.layers[0].codebook = lowered.layers[0].codebook.copy()
    lowered.layers[0].codebook[5, 1] += 1
    with pytest.raises(ProgramError, match="not the shared ROM codebook"):
        build_program(lowered, codebook_depth=cb.k, config_max_features=64, shared_rom=cb.codewords)


@pytest.mark.parametrize("backend", ["icarus"])
def test_two_networks_bit_exact_on_one_engine(backend):
    for seed, shapes, name in ((11, [37, 20, 9], "net-a"), (12, [23, 31, 12, 5], "net-b")):
        program = universal_program(seed, shapes, name)
        x = random_vectors(np.random.default_rng(seed), 2, shapes[0])
        image, out_addr, out_words = program.dram_image(x)
        golden, rtl = run_both(program, image, out_addr, out_words * 2, backend, latency=9, stall=48, seed=seed)
        assert_bit_exact(golden, rtl, program.meta["output_features"])


# --- bad input: refused before any training ---------------------------------------------------
def test_compress_refuses_codebook_of_wrong_dimension():
    with pytest.raises(CompressError, match="dimension 4 but the engine has 8 lanes"):
        compress("lenet300", "universal", lanes=8)


def test_compress_refuses_corrupt_codebook(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CompressError):
        compress("lenet300", "universal", codebook=bad)


def test_codebook_only_for_universal(tmp_path):
    with pytest.raises(CompressError, match="--codebook applies to --method universal"):
        compress("lenet300", "kmeans", codebook=tmp_path / "x.npz")


def test_cli_compress_errors(cli, tmp_path):
    out = tmp_path / "u.vqz"
    bad = tmp_path / "truncated.npz"
    from model.compress.universal.codebook import DEFAULT_CODEBOOK
    bad.write_bytes(DEFAULT_CODEBOOK.read_bytes()[:200])
    assert_user_error(cli("compress", "--network", "lenet300", "--method", "universal", "--codebook", bad,
                          "-o", out), str(bad))
    assert_user_error(cli("compress", "--network", "lenet300", "--method", "universal", "--lanes", "2",
                          "-o", out), "dimension 4", "2 lanes")
    assert_user_error(cli("compress", "--network", "lenet300", "--method", "kmeans", "--stages", "3",
                          "-o", out), "--stages")
    assert not out.exists()


@pytest.mark.parametrize("args,needles", [
    (("--donors", ""), ("--donors is empty",)),
    (("--donors", "nosuch"), ("unknown donor", "nosuch", "minilm")),
    (("--donors", "onet,onet"), ("named twice",)),
    (("--donors", "onet", "--dim", "3"), ("--dim", "got 3")),
    (("--donors", "onet", "--size", "100"), ("--size", "power of two")),
    (("--donors", "onet", "--stages", "5"), ("--stages must be 2 to 4", "got 5")),
    (("--donors", "onet", "--stages", "1"), ("--stages must be 2 to 4", "got 1")),
], ids=["empty", "unknown", "twice", "dim", "size", "stages", "one-stage"])
def test_cli_codebook_build_errors(args, needles, cli, tmp_path):
    out = tmp_path / "cb.npz"
    assert_user_error(cli("codebook", "build", *args, "-o", out), *needles)
    assert not out.exists()


def test_cli_codebook_build_refuses_to_overwrite(cli, tmp_path):
    out = tmp_path / "cb.npz"
    out.write_bytes(b"precious")
    assert_user_error(cli("codebook", "build", "--donors", "onet", "-o", out), "exists", "--force")
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("args,needles", [
    (("--network", "nosuch", "--method", "pq"), ("unknown network 'nosuch'",)),
    (("--network", "rnet", "--method", "lr2vq", "--rank", "9"), ("--rank must be 1..", "got 9")),
], ids=["network", "rank"])
def test_cli_baseline_errors(args, needles, cli, tmp_path):
    out = tmp_path / "r.json"
    assert_user_error(cli("compress", *args, "-o", out), *needles)
    assert not out.exists()


def test_cli_baseline_writes_json(cli, tmp_path):
    """A model-level baseline on a network that needs no training: JSON with the metric and every bit."""
    import json
    out = tmp_path / "rq.json"
    res = cli("compress", "--network", "rnet", "--method", "rq", "--codebook-size", "16", "--stages", "2",
              "--quick-eval", "-q", "-o", out)
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    assert (r["network"], r["method"], r["config"]) == ("rnet", "rq", {"d": 4, "k": 16, "stages": 2})
    st = r["storage"]
    assert st["total_bits"] == st["indices"] + st["side"] + st["scales"] + st["biases"]
    # Two 4-bit stages per 4 weights: 2 bits/weight of indices (a little more where rows are padded).
    assert 2.0 <= st["indices"] / st["weights"] < 2.2
    assert 0.0 <= r["quality"] <= 1.0 and r["float_quality"] == 1.0
    assert "rnet / rq" in res.stderr


def test_cli_universal_model_level_writes_json(cli, tmp_path):
    """`--method universal` on a network the engine does not run: a model-level fit to a nested-ROM stage,
    written as JSON with the fit and its untrained start; a size that is not a stage is refused."""
    import json
    out = tmp_path / "u.json"
    res = cli("compress", "--network", "rnet", "--method", "universal", "--codebook-size", "1024", "--quick-eval",
              "-q", "-o", out)
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    assert (r["network"], r["method"], r["config"]["k"]) == ("rnet", "universal", 1024)
    assert [row["method"] for row in r["rows"]] == ["universal", "universal-nearest"]
    # 10-bit indices per 4 weights, plus row scales and biases.
    assert 2.5 < r["bits_per_weight"] < 4 and r["ratio_vs_fp32"] == pytest.approx(32 / r["bits_per_weight"], rel=0.01)
    assert 0.0 <= r["quality"] <= 1.0 and "rnet / universal, ROM prefix k=1024" in res.stderr
    bad = tmp_path / "bad.json"
    assert_user_error(cli("compress", "--network", "rnet", "--method", "universal", "--codebook-size", "100",
                          "-o", bad), "usable sizes are 128, 1024")
    assert not bad.exists()


def test_report_energy_rows_compare_rom_with_dram_codebooks():
    """The universal section prices the same index stream with the ROM and with per-layer loads."""
    from sim.report.energy.golden import golden_network_data
    from sim.report.energy.pricing import network_energy
    from sim.report.energy.table import load_energy_table
    from sim.report.sections.universal import energy_lines, universal_section
    program = universal_program(21, [37, 20, 9], "net-a")
    net = golden_network_data(program, random_vectors(np.random.default_rng(2), 2, 37))
    res = network_energy(net, load_energy_table())
    assert net.name == "net-a-universal" and {"engine", "vq_sram"} <= set(res)
    lines = energy_lines([(net, res)])
    row = next(line for line in lines if line.startswith("| net-a-universal |"))
    rom, dram = res["engine"].total(), res["vq_sram"].total()
    assert dram > rom   # loading the codebook from DRAM every inference costs more than the ROM
    assert f"{dram / rom:.3f}x" in row
    assert universal_section([(net, res)], None)[0].startswith("## Universal codebook")
    assert energy_lines([]) == [] and universal_section([], None) == []
