"""MTCNN R-Net and O-Net (Zhang et al. 2016) with the weights shipped in PyPI ``facenet-pytorch``.

Only the weight files ``facenet_pytorch/data/{rnet,onet}.pt`` are used (loaded
with plain ``torch.load``); the module definitions are written here, layer
for layer as in facenet-pytorch, so that package's ``__init__`` (which needs
torchvision) is never imported.

The metric is a FIDELITY metric, not a face-detection accuracy: no face
dataset is available offline.  The evaluation set is :data:`N_CROPS` fixed
crops cut from the one real photograph available in the installed packages
(matplotlib's ``grace_hopper.jpg`` portrait) and from non-face images:

* face crops: the face box with random scale (0.8-1.25x), shift (+-15 %),
  rotation (+-12 deg), mirror, brightness/contrast jitter and pixel noise;
* partial-face crops: the face box shifted by 25-60 % (the hard cases the
  cascade's last stage must reject or regress);
* non-face crops: other regions of the portrait (uniform, flag, medals,
  clothing), matplotlib's other sample images and synthetic textures.

Each crop is resampled to 48x48 with area interpolation (R-Net's 24x24
inputs are 2x2 averages of those) and normalised as MTCNN does
(``(pixel - 127.5) / 128``).

* ``fidelity_1px`` (headline): the fraction of crops on which the given
  model reproduces the fp32 network's output: the same face / non-face
  decision at MTCNN's threshold for the stage (p_face > 0.7) and, on crops
  the fp32 network calls faces, every bounding-box regression value and
  (O-Net) every landmark within one input pixel (1/48 resp. 1/24 of the crop
  side) of fp32's.  1.0 means "indistinguishable from fp32 at pixel level".
* ``face_agreement``: decision agreement alone (a blunt measure: most crops
  are far from the threshold, so it stays near 1 under moderate damage).
* ``prob_mae``: mean |p_face - p_face_fp32|; ``bbox_err``: mean absolute
  error of the box regression; ``landmark_err`` (O-Net): mean Euclidean
  landmark error; both in units of the crop side, over fp32-face crops.
* ``face_recall`` / ``nonface_reject``: using the labels the crops were built
  with, face crops called faces and non-face crops rejected (the fp32 O-Net
  and R-Net score 1.0 / 1.0; the partial-face crops are left out of both).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.nets.zoo import ZooNetwork, package_path

#: MTCNN's default decision threshold of the R-Net and O-Net stages (facenet-pytorch: [0.6, 0.7, 0.7]).
THRESHOLD = 0.7
#: Evaluation crops: face, partial-face, non-face.
N_FACE, N_PARTIAL, N_NONFACE = 120, 60, 120
N_CROPS = N_FACE + N_PARTIAL + N_NONFACE
#: ``quick=True`` uses every QUICK_STRIDE-th crop.
QUICK_STRIDE = 5
EVAL_SEED = 7_500_101
DISTILL_SEED_OFFSET = 3_000_017
#: Face box (x1, y1, x2, y2) in grace_hopper.jpg (512x600), found by a dense
#: O-Net search (windows of side 150-270 px, p_face ~ 1.0), refined with its
#: box regression and made square as MTCNN does (p_face 0.998 on this box).
FACE_BOX = (140.0, 101.0, 384.0, 345.0)


#: Face crops are cut from the portrait reduced (box filter) by this factor.
FACE_REDUCE = 2.5


class RNet(nn.Module):
    """MTCNN R-Net: (n, 3, 24, 24) -> (bbox regression (n, 4), face probability pair (n, 2))."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The Caffe-trained weights expect (w, h)-transposed feature maps.
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        a = torch.softmax(self.dense5_1(x), dim=1)
        return self.dense5_2(x), a


class ONet(nn.Module):
    """MTCNN O-Net: (n, 3, 48, 48) -> (bbox regression (n, 4), landmarks (n, 10), face probability pair (n, 2))."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        a = torch.softmax(self.dense6_1(x), dim=1)
        return self.dense6_2(x), self.dense6_3(x), a


NETS = {"rnet": (RNet, 24, ["conv1", "conv2", "conv3", "dense4", "dense5_1", "dense5_2"]),
        "onet": (ONet, 48, ["conv1", "conv2", "conv3", "conv4", "dense5", "dense6_1", "dense6_2", "dense6_3"])}


def weights_path(name: str) -> Path:
    """``facenet_pytorch/data/{name}.pt`` in the installed wheel (found without importing the package)."""
    return Path(package_path("facenet_pytorch")) / "data" / f"{name}.pt"


def load_mtcnn_net(name: str) -> nn.Module:
    cls = NETS[name][0]
    model = cls()
    model.load_state_dict(torch.load(weights_path(name), map_location="cpu", weights_only=True))
    return model.eval()


# ---------------------------------------------------------------------------
# Images and crops


def _sample_dir() -> Path:
    return Path(package_path("matplotlib")) / "mpl-data" / "sample_data"


_IMAGES: dict = {}


def images():
    """PIL RGB images: ``"portrait"`` (grace_hopper.jpg), ``"portrait_reduced"`` (it, FACE_REDUCE times
    smaller) and a list ``"other"`` of non-face images."""
    if not _IMAGES:
        from PIL import Image
        d = _sample_dir()
        portrait = Image.open(d / "grace_hopper.jpg").convert("RGB")
        _IMAGES["portrait"] = portrait
        _IMAGES["portrait_reduced"] = portrait.resize(
            (round(portrait.width / FACE_REDUCE), round(portrait.height / FACE_REDUCE)), Image.BOX)
        others = []
        for f in ("Minduka_Present_Blue_Pack.png", "logo2.png"):
            im = Image.open(d / f).convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            others.append(Image.alpha_composite(bg, im).convert("RGB"))
        _IMAGES["other"] = others
    return _IMAGES


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """MTCNN's input scaling of 0..255 pixels."""
    return (pixels - 127.5) * 0.0078125


def _resample(img, box, size: int) -> torch.Tensor:
    """Crop ``box`` (x1, y1, x2, y2; zero outside the image) and area-resample to (3, size, size), 0..255."""
    crop = img.crop(tuple(int(round(v)) for v in box))
    t = torch.from_numpy(np.asarray(crop, dtype=np.float32).copy()).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(size, size), mode="area")[0]


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _face_crop(rng, size, shift_lo, shift_hi):
    from PIL import Image, ImageEnhance

    # Work on the portrait reduced FACE_REDUCE times (the face is then ~100 px, still twice the
    # crop size), in a window around the face (zero outside the photo) big enough for any crop below.
    x1, y1, x2, y2 = (v / FACE_REDUCE for v in FACE_BOX)
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
    half = int(np.ceil(side * (1.25 / 2 + shift_hi) * 1.5))
    img = images()["portrait_reduced"].crop((int(cx) - half, int(cy) - half, int(cx) + half, int(cy) + half))
    c = half + (cx - int(cx)), half + (cy - int(cy))
    img = img.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR, center=c)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
        c = (img.width - c[0], c[1])
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    s = side * rng.uniform(0.8, 1.25)
    r = rng.uniform(shift_lo, shift_hi)
    phi = rng.uniform(0, 2 * np.pi)
    ox, oy = r * side * np.cos(phi), r * side * np.sin(phi)
    box = (c[0] + ox - s / 2, c[1] + oy - s / 2, c[0] + ox + s / 2, c[1] + oy + s / 2)
    t = _resample(img, box, size)
    t = t + torch.from_numpy(rng.normal(0, rng.uniform(0, 6), size=t.shape).astype(np.float32))
    return t.clamp(0, 255)


def _nonface_crop(rng, size):
    ims = images()
    kind = rng.integers(0, 4)
    if kind <= 1:  # another region of the portrait
        img = ims["portrait"]
        while True:
            s = rng.uniform(40, 260)
            x = rng.uniform(0, img.width - s)
            y = rng.uniform(0, img.height - s)
            box = (x, y, x + s, y + s)
            if _iou(box, FACE_BOX) < 0.05:
                break
        return _resample(img, box, size)
    if kind == 2:  # another sample image
        img = ims["other"][int(rng.integers(0, len(ims["other"])))]
        s = rng.uniform(0.3, 1.0) * min(img.size)
        x = rng.uniform(0, img.width - s)
        y = rng.uniform(0, img.height - s)
        return _resample(img, (x, y, x + s, y + s), size)
    # synthetic texture: smooth random field plus noise
    base = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, 4, 4)).astype(np.float32))
    t = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)[0]
    t = t + torch.from_numpy(rng.normal(0, rng.uniform(0, 40), size=t.shape).astype(np.float32))
    return t.clamp(0, 255)


def make_crops(seed: int, size: int, n_face: int, n_partial: int, n_nonface: int) -> tuple[torch.Tensor, np.ndarray]:
    """Normalised crops (n, 3, size, size) and construction labels (1 face, 0.5 partial, 0 non-face)."""
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for _ in range(n_face):
        crops.append(_face_crop(rng, size, 0.0, 0.15)); labels.append(1.0)
    for _ in range(n_partial):
        crops.append(_face_crop(rng, size, 0.25, 0.6)); labels.append(0.5)
    for _ in range(n_nonface):
        crops.append(_nonface_crop(rng, size)); labels.append(0.0)
    # Interleave the three kinds deterministically so a strided subset has all of them.
    order = np.random.default_rng(seed + 1).permutation(len(crops))
    x = normalize(torch.stack(crops))[order]
    return x.contiguous(), np.asarray(labels)[order]


_CROPS: dict = {}
#: Crops are cut at this resolution; R-Net's 24x24 ones are its 2x2 area averages.
CROP_SIZE = 48


def eval_crops(size: int, quick: bool) -> tuple[torch.Tensor, np.ndarray]:
    """The fixed evaluation crops at ``size`` (48 or 24), normalised, and their construction labels."""
    if CROP_SIZE not in _CROPS:
        _CROPS[CROP_SIZE] = make_crops(EVAL_SEED, CROP_SIZE, N_FACE, N_PARTIAL, N_NONFACE)
    if size not in _CROPS:
        x, y = _CROPS[CROP_SIZE]
        _CROPS[size] = (F.interpolate(x, size=(size, size), mode="area").contiguous(), y)
    x, y = _CROPS[size]
    return (x[::QUICK_STRIDE], y[::QUICK_STRIDE]) if quick else (x, y)


def eval_inputs_rnet() -> np.ndarray:
    """R-Net's evaluation crops (n, 3, 24, 24), normalised: what ``vqe run`` feeds an R-Net program."""
    return eval_crops(24, False)[0].numpy()


def eval_inputs_onet() -> np.ndarray:
    """O-Net's evaluation crops (n, 3, 48, 48), normalised."""
    return eval_crops(48, False)[0].numpy()


def _outputs(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    out = model(x)
    res = {"bbox": out[0].numpy(), "prob": out[-1][:, 1].numpy()}
    if len(out) == 3:
        res["landmarks"] = out[1].numpy()
    return res


def evaluate_fidelity(net: ZooNetwork, model: nn.Module, quick: bool) -> dict[str, float]:
    x, label = eval_crops(net.info["input_size"], quick)
    out = _outputs(model, x)
    ref = net.reference(f"out-{quick}", lambda m: _outputs(m, x))
    face, ref_face = out["prob"] > THRESHOLD, ref["prob"] > THRESHOLD
    res = {
        "face_agreement": float(np.mean(face == ref_face)),
        "prob_mae": float(np.mean(np.abs(out["prob"] - ref["prob"]))),
        "face_recall": float(np.mean(face[label == 1.0])),
        "nonface_reject": float(np.mean(~face[label == 0.0])),
        "fp32_face_fraction": float(np.mean(ref_face)),
        "n_crops": float(len(label)),
    }
    sel = ref_face
    tol = 1.0 / net.info["input_size"]
    bbox_dev = np.abs(out["bbox"] - ref["bbox"])
    ok = bbox_dev.max(axis=1) <= tol
    res["bbox_err"] = float(np.mean(bbox_dev[sel])) if sel.any() else 0.0
    if "landmarks" in out:
        d = out["landmarks"] - ref["landmarks"]
        lm_dev = np.hypot(d[:, :5], d[:, 5:])
        ok &= lm_dev.max(axis=1) <= tol
        res["landmark_err"] = float(np.mean(lm_dev[sel])) if sel.any() else 0.0
    res["fidelity_1px"] = float(np.mean((face == ref_face) & (~ref_face | ok)))
    return res


def _distill(size: int):
    def distill(n: int, seed: int) -> torch.Tensor:
        """``n`` crops (n, 3, size, size): 40 % face, 20 % partial, 40 % non-face, not the evaluation crops."""
        n_face, n_partial = int(0.4 * n), int(0.2 * n)
        x, _ = make_crops(DISTILL_SEED_OFFSET + seed, size, n_face, n_partial, n - n_face - n_partial)
        return x
    return distill


def _load(name: str) -> ZooNetwork:
    _, size, layers = NETS[name]
    return ZooNetwork(
        name=name, model=load_mtcnn_net(name), weight_layers=list(layers), metric_name="fidelity_1px",
        _evaluate=evaluate_fidelity, _distill=_distill(size),
        description=f"MTCNN {name} (facenet-pytorch weights); FIDELITY metric (not detection accuracy): "
                    f"fraction of {N_CROPS} fixed {size}x{size} crops where the face decision (p > {THRESHOLD}) "
                    "matches fp32 and, on fp32 faces, box regression and landmarks are within 1 input pixel",
        info={"input_size": size})


def load_onet(progress: bool = True, cache_dir=None) -> ZooNetwork:
    return _load("onet")


def load_rnet(progress: bool = True, cache_dir=None) -> ZooNetwork:
    return _load("rnet")
