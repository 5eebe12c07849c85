"""``vqe compress --model`` and ``vqe run --inputs`` end to end: a small MLP and a small CNN, defined in the tests
and exported both ways, compressed with kmeans and universal and run bit-exactly on Verilator; the two formats
give the same program; every bad input is one line and exit 1."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model.contract.errors import VqeError
from model.program.file import Program

from cli_helpers import assert_user_error, vqe
from user_models import N_EVAL, SHAPE, build, data, export


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Each test model as .pt2 and .onnx, with its calibration inputs and evaluation set."""
    out = {}
    for name in ("mlp", "cnn", "rescnn"):
        folder = tmp_path_factory.mktemp(name)
        model = build(name)
        calib, ev = data(model, folder)
        out[name] = {"pt2": export(model, folder / f"{name}.pt2"), "onnx": export(model, folder / f"{name}.onnx"),
                     "calib": calib, "eval": ev, "dir": folder}
    return out


@pytest.mark.parametrize("method", ["kmeans", "universal"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "rescnn"])
def test_compress_both_formats_and_run_bit_exact_on_verilator(cli, files, name, method):
    """The done-when of issue 14 for the residual CNN ("rescnn": a basic block, its add on the engine)."""
    f = files[name]
    programs = {}
    for fmt in ("pt2", "onnx"):
        out = f["dir"] / f"{name}-{fmt}-{method}.vqz"
        res = cli("compress", "--model", f[fmt], "--calibration", f["calib"], "--eval", f["eval"], "--method", method,
                  "-o", out, "--force", "-q")
        assert res.returncode == 0, res.stderr
        assert "max abs diff" in res.stderr and "int8 golden accuracy" in res.stderr
        programs[fmt] = Program.load(out)
    pt2, onnx = programs["pt2"], programs["onnx"]
    # The same network through either format: the same program, bit for bit.
    np.testing.assert_array_equal(pt2.image, onnx.image)
    meta = onnx.meta
    assert meta["dataset"] == "user" and meta["source"]["file"] == f"{name}.onnx"
    assert meta["source"]["format"] == "onnx" and len(meta["source"]["sha256"]) == 64
    assert meta["source"]["input_shape"] == list(SHAPE) and meta["input_shape"] == list(SHAPE)
    assert meta["info"]["metric"] == "accuracy" and meta["info"]["float_quality"] == 1.0
    assert meta["info"]["int8_quality"] >= 0.75
    inspect = cli("inspect", f["dir"] / f"{name}-onnx-{method}.vqz")
    assert '"dataset": "user"' in inspect.stdout and f"{name}.onnx" in inspect.stdout
    res = cli("run", f["dir"] / f"{name}-onnx-{method}.vqz", "--backend", "verilator", "--inputs", f["eval"],
              "--json", "-q")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["bit_exact"] is True and r["images"] == N_EVAL
    assert r["accuracy"] == r["golden_accuracy"] == r["quality"]["value"] >= 0.75
    assert r["reference_accuracy"] == 1.0 and r["quality"]["float"] == {"accuracy": 1.0}
    assert r["quality"]["measured_on"] == "verilator"
    if name == "rescnn":   # the residual block: the stem's output saved, the add on the engine
        kinds = [layer["kind"] for layer in meta["layers"]]
        assert kinds == ["conv", "conv", "conv", "add", "maxpool", "fc"] and meta["layers"][0]["save"]
        assert onnx.config.residual


def test_reference_outputs_score_cosine(cli, files, tmp_path):
    """A float y is the reference outputs: quality is the mean cosine and the top-1 agreement."""
    import torch
    f = files["mlp"]
    x = np.load(f["eval"])["x"]
    with torch.no_grad():
        y = build("mlp")(torch.from_numpy(x)).numpy()
    np.savez(tmp_path / "ref.npz", x=x, y=y)
    out = tmp_path / "m.vqz"
    assert cli("compress", "--model", f["onnx"], "--calibration", f["calib"], "--eval", tmp_path / "ref.npz",
               "--method", "kmeans", "-o", out, "-q").returncode == 0
    info = Program.load(out).meta["info"]
    assert info["metric"] == "cosine" and info["float_quality"] == pytest.approx(1.0)
    assert 0.95 < info["int8_quality"] <= 1.0 and "top1_agreement" in info["int8_metrics"]
    r = json.loads(cli("run", out, "--backend", "golden", "--inputs", tmp_path / "ref.npz", "--json", "-q").stdout)
    assert r["quality"]["metric"] == "cosine" and r["quality"]["value"] == pytest.approx(info["int8_quality"])
    assert r["accuracy"] is None


def test_bad_inputs_are_one_line(cli, files, tmp_path):
    f = files["cnn"]
    (tmp_path / "broken.onnx").write_bytes(f["onnx"].read_bytes()[:100])
    (tmp_path / "broken.pt2").write_bytes(f["pt2"].read_bytes()[:200])
    dyn = export(build("cnn"), tmp_path / "dyn.onnx", dynamic=True)
    # A skip from the network's input no longer is a refusal (the host adds it); an operator nothing runs is.
    nowhere = export(build("cumsum"), tmp_path / "cumsum.onnx")
    np.save(tmp_path / "shape.npy", np.zeros((4, 64), np.float32))
    np.save(tmp_path / "ints.npy", np.zeros((4, *SHAPE), np.int32))
    np.savez(tmp_path / "eval-shape.npz", x=np.zeros((4, 64), np.float32), y=np.zeros(4, np.int64))
    np.savez(tmp_path / "eval-y.npz", x=np.zeros((4, *SHAPE), np.float32), y=np.array(["a"] * 4))
    np.savez(tmp_path / "eval-label.npz", x=np.zeros((4, *SHAPE), np.float32), y=np.full(4, 12))
    compress = ("compress", "--method", "kmeans", "-o", tmp_path / "out.vqz", "-q")
    cases = [
        (("--model", tmp_path / "broken.onnx", "--calibration", f["calib"]), ("broken.onnx", "not a readable ONNX")),
        (("--model", tmp_path / "broken.pt2", "--calibration", f["calib"]), ("broken.pt2", "not a readable torch")),
        (("--model", dyn, "--calibration", f["calib"]), ("dynamic", "--input-shape")),
        (("--model", nowhere, "--calibration", f["calib"]), ("operator CumSum", "ONNX node", "nor on the host")),
        (("--model", f["onnx"], "--calibration", tmp_path / "shape.npy"), ("shape.npy", "do not match")),
        (("--model", f["onnx"], "--calibration", tmp_path / "ints.npy"), ("ints.npy", "float array")),
        (("--model", f["onnx"], "--calibration", f["calib"], "--eval", tmp_path / "eval-shape.npz"),
         ("eval-shape.npz", "do not match")),
        (("--model", f["onnx"], "--calibration", f["calib"], "--eval", tmp_path / "eval-y.npz"),
         ("eval-y.npz", "integer labels")),
        (("--model", f["onnx"], "--calibration", f["calib"], "--eval", tmp_path / "eval-label.npz"),
         ("labels must be 0..9",)),
        (("--model", f["onnx"]), ("--calibration FILE.npy",)),
        (("--model", f["onnx"], "--calibration", f["calib"], "--method", "deepcomp"), ("lenet300 only",)),
        (("--network", "lenet300", "--eval", f["eval"]), ("--eval applies to --model only",)),
    ]
    for args, needles in cases:
        assert_user_error(cli(*compress, *args), *needles)
    assert not (tmp_path / "out.vqz").exists()
    ok = tmp_path / "ok.vqz"
    assert cli("compress", "--model", dyn, "--input-shape", "1,8,8", "--calibration", f["calib"], "--method", "kmeans",
               "-o", ok, "-q").returncode == 0
    assert_user_error(cli("run", ok, "--backend", "golden", "--inputs", tmp_path / "eval-shape.npz"),
                      "eval-shape.npz", "x must be float inputs")
    assert_user_error(cli("run", ok, "--backend", "golden", "--inputs", tmp_path / "shape.npy"), "shape.npy")
    # As a user runs it: torch logs nothing more than the one line about a corrupted archive.
    assert_user_error(vqe("compress", "--model", tmp_path / "broken.pt2", "--calibration", f["calib"], "--method",
                          "kmeans", "-o", tmp_path / "out.vqz", cwd=tmp_path), "broken.pt2")


def test_python_api(files):
    """``import vqe``: compress a torch module and a file, run with arrays, as the README shows."""
    import vqe
    f = files["mlp"]
    calib = np.load(f["calib"])
    ev = np.load(f["eval"])
    from_module = vqe.compress(build("mlp"), method="kmeans", calibration=calib, input_shape=SHAPE)
    from_file = vqe.compress(str(f["onnx"]), method="kmeans", calibration=f["calib"], evaluation=f["eval"])
    assert isinstance(from_file, vqe.Program) and from_file.meta["source"]["file"] == "mlp.onnx"
    assert from_module.meta["source"]["file"] == "TinyMLP.pt2" and from_module.meta["info"]["metric"] == "cosine"
    np.testing.assert_array_equal(from_module.image, from_file.image)
    r = vqe.run(from_file, backend="golden", inputs=(ev["x"], ev["y"]))
    assert r["images"] == N_EVAL and r["accuracy"] == r["quality"]["value"] >= 0.75 and r["bit_exact"] is None
    with pytest.raises(VqeError, match="needs calibration"):
        vqe.compress(str(f["onnx"]), method="kmeans")
