"""Users' models: .pt2 and .onnx files lowered onto the engine compute what the source computes; the ONNX
export of a zoo network lowers exactly as its torch graph; every bad input is refused in one line."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.nets.graph.trace import lower_graph
from model.nets.user import UserModelError, load_calibration, load_eval, load_model, user_task

from user_models import MODELS, SHAPE, build, data, export

FORMATS = (".pt2", ".onnx")


def _x(n: int = 9, shape=SHAPE, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype(np.float32)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_user_models_lower_to_what_they_compute(tmp_path, name, suffix):
    model = build(name)
    user = load_model(export(model, tmp_path / f"{name}{suffix}"))
    assert user.input_shape == SHAPE and user.format == suffix[1:]
    net = user.lower(4)
    x = _x()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        out = net.source_outputs(net(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_allclose(user.reference(x), ref, atol=1e-5)      # onnxruntime / the exported module
    assert [type(m).__name__ for m in net][1:] == {
        "mlp": ["EngineLinear", "EngineActivation", "EngineLinear"],
        "cnn": ["EngineConv", "ReLU", "EngineMaxPool", "EngineLinear"],
        # The basic block: the stem's output saved, the add of the block's output and it, its ReLU.
        "rescnn": ["EngineConv", "ReLU", "EngineSave", "EngineConv", "ReLU", "EngineConv", "EngineAdd", "ReLU",
                   "EngineMaxPool", "EngineLinear"]}[name]


class _Everything(nn.Module):
    """Every supported operator kind once: batch norm (folded), PReLU, average and adaptive pooling, a zero
    pad, leaky ReLU, dropout, a view and a final softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.prelu = nn.PReLU(4)
        self.avg = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x):
        x = self.avg(self.prelu(self.bn(self.conv1(x))))
        x = F.leaky_relu(self.conv2(F.pad(x, (1, 1, 1, 1))), 0.25)
        x = self.drop(self.gap(x))
        return torch.softmax(self.fc(x.view(x.shape[0], -1)), dim=1)


@pytest.mark.parametrize("how", ["pt2", "pt2-decomposed", "onnx"])
def test_every_supported_operator_kind(tmp_path, how):
    torch.manual_seed(3)
    model = _Everything().eval()
    shape = (2, 10, 10)
    if how == "onnx":
        path = export(model, tmp_path / "every.onnx", shape)
    else:
        ep = torch.export.export(model, (torch.zeros((1, *shape)),))
        if how == "pt2-decomposed":     # the inference IR: aten.convolution, aten.addmm, native batch norm
            ep = ep.run_decompositions()
        path = tmp_path / "every.pt2"
        torch.export.save(ep, str(path))
    user = load_model(path)
    if how == "pt2-decomposed":
        # PReLU decomposes into a comparison and a select, which the engine cannot run: refused, named.
        with pytest.raises(UserModelError, match=r"operator gt\.Scalar \(node 'gt'\) does not run on the engine"):
            user.lower(4)
        return
    net = user.lower(4)
    x = _x(5, shape)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        out = net.source_outputs(net(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert net.outputs[0]["activation"] == "softmax"


def test_decomposed_linear_and_pooling(tmp_path):
    """The inference IR of a plain CNN (aten.convolution, max_pool2d_with_indices, addmm) lowers too."""
    model = build("cnn")
    ep = torch.export.export(model, (torch.zeros((1, *SHAPE)),)).run_decompositions()
    torch.export.save(ep, str(tmp_path / "cnn.pt2"))
    net = load_model(tmp_path / "cnn.pt2").lower(4)
    x = _x()
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), model(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_onnx_export_of_lenet5_lowers_exactly_as_its_torch_graph(tmp_path):
    """LeNet-5 (the zoo's architecture, seeded weights) from its ONNX export and from its torch graph: the same
    engine network, weight for weight, and the same program bits from the same k-means lowering."""
    from model.compress.kmeans.network import vq_compress
    from model.compress.lowering import codebook_depth_for, lower_vq
    from model.nets.zoo.lenet5 import LeNet5
    from model.program.writer import build_program
    torch.manual_seed(0)
    model = LeNet5().eval()
    shape = (784,)
    torch_net = lower_graph(model, shape, 4)
    onnx_net = load_model(export(model, tmp_path / "lenet5.onnx", shape)).lower(4)
    assert [type(m) for m in onnx_net] == [type(m) for m in torch_net]
    np.testing.assert_array_equal(onnx_net.input_index, torch_net.input_index)
    assert onnx_net.outputs == torch_net.outputs
    for a, b in zip(torch_net.state_dict().items(), onnx_net.state_dict().items()):
        assert torch.equal(a[1], b[1]), a[0]
    calib = np.random.default_rng(0).uniform(0, 1, (64, 784)).astype(np.float32)
    images = []
    for net in (torch_net, onnx_net):
        lowered = lower_vq(vq_compress(net, dim=4, k=16, finetune_epochs=0, progress=False), calib, 4)
        lowered.name, lowered.method = "lenet5", "kmeans"
        images.append(build_program(lowered, codebook_depth=codebook_depth_for(16)).image)
    np.testing.assert_array_equal(images[0], images[1])


def test_user_task_measures_against_the_float_model(tmp_path):
    model = build("cnn")
    calib, ev = data(model, tmp_path)
    user = load_model(export(model, tmp_path / "cnn.onnx"))
    x = load_calibration(calib, SHAPE)
    ut = user_task(user, 4, x, load_eval(ev, SHAPE))
    assert ut.data.metric == "accuracy" and ut.data.dataset == "user"
    assert ut.checks["onnx_max_abs_diff"] < 1e-4 and ut.checks["lowered_max_abs_diff"] < 1e-4
    assert ut.data.quality(ut.task.full)["accuracy"] == 1.0        # labels are the float model's arg-max
    no_eval = user_task(user, 4, x)
    assert no_eval.data.metric == "cosine"
    assert no_eval.data.quality(ut.task.full) == {"cosine": pytest.approx(1.0), "top1_agreement": 1.0}


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_input_skip_and_gelu_are_refused_naming_the_operator(tmp_path, suffix):
    with pytest.raises(UserModelError, match=r"operator (add\.Tensor|add) \(.*node '[^']+'\): a residual connection "
                                             r"whose skip is the network's input"):
        user = load_model(export(build("residual"), tmp_path / f"residual{suffix}"))
        user.lower(4)
    with pytest.raises(UserModelError, match=r"operator (gelu|Gelu|Erf|Div)\b.*(node '[^']+'|ONNX node).*supported"):
        load_model(export(build("gelu"), tmp_path / f"gelu{suffix}")).lower(4)


def test_bad_files_and_shapes_are_refused(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    (tmp_path / "bad.pt2").write_bytes(b"PK\x03\x04 not a zip either")
    for name, pattern in (("bad.onnx", "not a readable ONNX model"), ("bad.pt2", "not a readable torch.export"),
                          ("none.onnx", "no such file"), ("model.h5", "unknown model format")):
        with pytest.raises(UserModelError, match=pattern):
            load_model(tmp_path / name)
    dyn = export(build("cnn"), tmp_path / "dyn.onnx", dynamic=True)
    with pytest.raises(UserModelError, match=r"input dimension 2 is dynamic \('h'\); give --input-shape"):
        load_model(dyn)
    assert load_model(dyn, "1,8,8").input_shape == SHAPE
    with pytest.raises(UserModelError, match="does not match the model's input"):
        load_model(export(build("cnn"), tmp_path / "fixed.onnx"), (1, 9, 9))


def test_bad_data_is_refused(tmp_path):
    np.save(tmp_path / "ints.npy", np.zeros((4, *SHAPE), np.int64))
    np.save(tmp_path / "flat.npy", np.zeros((4, 64), np.float32))
    np.savez(tmp_path / "noy.npz", x=np.zeros((4, *SHAPE), np.float32))
    np.savez(tmp_path / "y2d.npz", x=np.zeros((4, *SHAPE), np.float32), y=np.zeros((4, 2), np.int64))
    for f, pattern in (("ints.npy", "must be a float array"), ("flat.npy", r"do not match the model's input")):
        with pytest.raises(UserModelError, match=pattern):
            load_calibration(tmp_path / f, SHAPE)
    for f, pattern in (("noy.npz", "no array 'y'"), ("y2d.npz", "y must be integer labels")):
        with pytest.raises(UserModelError, match=pattern):
            load_eval(tmp_path / f, SHAPE)


def _damage_npy_header(path):
    """Break the first .npy header's dict literal (NumPy tokenizes it: a TokenError, not a ValueError)."""
    raw = path.read_bytes()
    at = raw.index(b"{'descr'")
    path.write_bytes(raw[:at] + b"(" + raw[at + 1:])


def test_damaged_array_headers_are_one_line_errors(tmp_path):
    from model.nets.inputs import InputError, load_user_inputs
    np.save(tmp_path / "calib.npy", np.zeros((4, *SHAPE), np.float32))
    np.savez(tmp_path / "eval.npz", x=np.zeros((4, *SHAPE), np.float32), y=np.zeros(4, np.int64))
    for f in ("calib.npy", "eval.npz"):
        _damage_npy_header(tmp_path / f)
    with pytest.raises(UserModelError, match="calib.npy: not a readable .npy array"):
        load_calibration(tmp_path / "calib.npy", SHAPE)
    with pytest.raises(UserModelError, match="eval.npz: not a readable .npz archive"):
        load_eval(tmp_path / "eval.npz", SHAPE)
    with pytest.raises(InputError, match="eval.npz: not a readable .npz archive"):
        load_user_inputs({"input_shape": list(SHAPE), "input_scale": 1.0}, tmp_path / "eval.npz", None, 0)
