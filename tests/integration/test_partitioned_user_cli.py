"""A user's graph with operators the engine cannot run between layers it runs, end to end: partitioned between
engine and host by ``vqe compress --model``, printed by ``vqe inspect``, run bit-exactly on Verilator by
``vqe run --inputs`` with the host's part rebuilt from the model file; refusals in one line."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from model.program.file import Program

from cli_helpers import assert_user_error
from user_models import N_EVAL, SHAPE, build, data, export

#: (model, method, format) compressed once per module: kmeans in both formats, universal in one each.
CASES = [("normmlp", "kmeans", "pt2"), ("normmlp", "kmeans", "onnx"), ("normmlp", "universal", "pt2"),
         ("gatedcnn", "kmeans", "pt2"), ("gatedcnn", "kmeans", "onnx"), ("gatedcnn", "universal", "onnx")]
#: The partition of each model: segment kinds, and the host's operators by format.
PARTITIONS = {
    "normmlp": (["engine", "host", "engine"], {"pt2": ["layer_norm.default"], "onnx": ["LayerNormalization"]}),
    "gatedcnn": (["engine", "host", "engine", "host", "engine"],
                 {"pt2": ["sigmoid.default", "mul.Tensor", "gelu.default"], "onnx": ["Sigmoid", "Mul", "Gelu"]}),
}


def _main(*args) -> int:
    from sim.cli.main import main
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each model's files and data, and the program of each case."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VQE_CACHE", str(tmp_path_factory.mktemp("cache")))
    files, programs = {}, {}
    for name in PARTITIONS:
        folder = tmp_path_factory.mktemp(name)
        model = build(name)
        calib, ev = data(model, folder)
        files[name] = {"pt2": export(model, folder / f"{name}.pt2"), "onnx": export(model, folder / f"{name}.onnx"),
                       "calib": calib, "eval": ev, "dir": folder}
    for name, method, fmt in CASES:
        f = files[name]
        out = f["dir"] / f"{name}-{fmt}-{method}.vqz"
        assert _main("compress", "--model", f[fmt], "--calibration", f["calib"], "--eval", f["eval"],
                     "--method", method, "-o", out, "-q") == 0
        programs[name, method, fmt] = out
    mp.undo()
    return files, programs


@pytest.mark.parametrize("case", CASES[1:3] + CASES[3:4] + CASES[5:], ids="-".join)
def test_partitioned_program_runs_bit_exact_on_verilator(cli, built, case):
    files, programs = built
    name, method, fmt = case
    path = programs[case]
    program = Program.load(path)
    meta = program.meta
    kinds, ops = PARTITIONS[name]
    assert program.segmented and [s["kind"] for s in meta["segments"]] == kinds
    host_ops = [op.split(" ")[0] for s in meta["segments"] if s["kind"] == "host" for op in s["ops"]]
    assert host_ops == ops[fmt]
    assert meta["host"] == {"kind": "user-graph", "network": name, "source": meta["source"]}
    assert meta["source"]["file"] == f"{name}.{fmt}" and len(meta["source"]["sha256"]) == 64
    assert meta["dataset"] == "user" and meta["input_shape"] == list(SHAPE)
    info = meta["info"]
    assert info["metric"] == "accuracy" and info["float_quality"] == 1.0 and info["int8_quality"] >= 0.75
    assert info["source_checks"]["partitioned_max_abs_diff"] < 1e-4
    inspect = cli("inspect", path)
    lines = [line for line in inspect.stdout.splitlines() if line.startswith("segment")]
    assert len(lines) == len(kinds) and all(("engine job" in line) == (k == "engine") for line, k in zip(lines, kinds))
    assert ops[fmt][0] in "\n".join(lines) and "node '" in "\n".join(lines)
    res = cli("run", path, "--backend", "verilator", "--inputs", files[name]["eval"], "--json", "-q")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["bit_exact"] is True and r["images"] == N_EVAL and r["jobs"] == kinds.count("engine")
    # Bit-exact: the RTL's outputs are the golden model's, so the quality is the one compress measured.
    assert r["accuracy"] == r["quality"]["value"] == pytest.approx(info["int8_quality"])
    assert r["reference_accuracy"] == 1.0 and r["quality"]["float"] == {"accuracy": 1.0}
    assert r["cycles"] > 0 and r["boundary"]["host_writes_words"] > 0 and r["boundary"]["host_reads_words"] > 0
    assert r["energy"]["boundary_host_dram_pj_per_input"] > 0 and r["host_ops"]
    engine = [s for s in r["segments"] if s["kind"] == "engine"]
    assert len(engine) == kinds.count("engine") and all(s["bit_exact"] and s["vectors"] == N_EVAL for s in engine)


@pytest.mark.parametrize("name", PARTITIONS)
def test_both_formats_give_the_same_kmeans_program(built, name):
    _, programs = built
    pt2, onnx = (Program.load(programs[name, "kmeans", fmt]) for fmt in ("pt2", "onnx"))
    np.testing.assert_array_equal(pt2.image, onnx.image)
    assert pt2.meta["rom"] == onnx.meta["rom"] and pt2.meta["info"]["int8_quality"] == onnx.meta["info"]["int8_quality"]


def test_the_host_needs_its_model_file(cli, built, tmp_path):
    """The host's part comes from the model file: missing, or changed, it is one line and exit 1."""
    files, programs = built
    path = programs["normmlp", "kmeans", "pt2"]
    ev = files["normmlp"]["eval"]
    alone = tmp_path / "alone.vqz"
    shutil.copy(path, alone)
    assert_user_error(cli("run", alone, "--backend", "golden", "--inputs", ev), "normmlp.pt2", "not in")
    (tmp_path / "normmlp.pt2").write_bytes(files["normmlp"]["pt2"].read_bytes() + b"\0")
    assert_user_error(cli("run", alone, "--backend", "golden", "--inputs", ev), "normmlp.pt2", "SHA-256 differs")
    assert_user_error(cli("run", path, "--backend", "golden"), "--inputs")
    # Next to the program, as written: it runs (the golden model, every input of the file).
    r = json.loads(cli("run", path, "--backend", "golden", "--inputs", ev, "--json", "-q").stdout)
    assert r["images"] == N_EVAL and r["bit_exact"] is None


def test_an_all_engine_graph_stays_one_job(built, tmp_path):
    """A graph the engine runs whole gives the one-job program of before, not a partitioned one."""
    from model.compress.pipeline import CompressOptions, compress_model
    model = build("mlp")
    calib, _ = data(model, tmp_path)
    program = compress_model(export(model, tmp_path / "mlp.pt2"), "kmeans", calib,
                             options=CompressOptions(progress=False))
    assert not program.segmented and "segments" not in program.meta and program.meta["n_layers"] == 2


class _Cond(nn.Module):
    """Data-dependent control flow after a Linear: neither the engine nor the host runs it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        y = self.fc(torch.flatten(x, 1))
        return torch.cond(y.sum() > 0, lambda t: t * 2, lambda t: t - 1, (y,))


def test_an_operator_that_runs_nowhere_is_one_line(cli, built, tmp_path):
    files, _ = built
    calib = files["normmlp"]["calib"]
    cond = export(_Cond().eval(), tmp_path / "cond.pt2")
    cumsum = export(build("cumsum"), tmp_path / "cumsum.onnx")
    out = tmp_path / "out.vqz"
    assert_user_error(cli("compress", "--model", cond, "--calibration", calib, "--method", "kmeans", "-o", out),
                      "operator cond (node 'cond')", "control flow", "the host runs")
    assert_user_error(cli("compress", "--model", cumsum, "--calibration", calib, "--method", "kmeans", "-o", out),
                      "operator CumSum (ONNX node", "neither on the engine nor on the host", "supported ONNX")
    assert not out.exists()


def test_python_api(built):
    """``vqe.compress`` partitions a model file, ``vqe.run`` runs it with arrays and the model file named."""
    import vqe
    files, _ = built
    f = files["normmlp"]
    program = vqe.compress(str(f["onnx"]), method="kmeans", calibration=f["calib"], evaluation=f["eval"])
    assert program.segmented and program.meta["host"]["kind"] == "user-graph"
    ev = np.load(f["eval"])
    r = vqe.run(program, backend="golden", inputs=(ev["x"], ev["y"]), model=f["onnx"])
    assert r["images"] == N_EVAL and r["quality"]["value"] == pytest.approx(program.meta["info"]["int8_quality"])
    x = ev["x"][:4]
    with torch.no_grad():
        y = build("normmlp")(torch.from_numpy(x)).numpy()
    r = vqe.run(program, backend="golden", inputs=(x, y), model=f["onnx"])
    assert r["quality"]["metric"] == "cosine" and r["quality"]["value"] > 0.9 and r["accuracy"] is None
