"""Knowledge distillation from a float network: data, loss, and a generic Adam loop.

The student is the float network called with some of its parameters replaced
(:func:`torch.func.functional_call`), so any architecture works.  Inputs may
be an array/tensor or a tuple/list/dict of them sharing a leading batch
dimension; outputs are a tensor or anything holding one (first element of a
tuple, ``last_hidden_state``/``logits`` attribute).

Loss
====
* ``kind="logits"`` (classifiers): cross-entropy on the labels when there are
  any, plus ``KD_WEIGHT *`` KL(teacher || student) of the softmax at
  temperature :data:`KD_TEMPERATURE` (times ``T^2``, Hinton et al.).
* ``kind="regression"`` (any outputs, e.g. sigmoid activations or several
  heads): the sum over output tensors of the mean squared error normalized
  by the teacher output's mean square.
* ``kind="embedding"``: as ``regression`` plus ``1 - cosine`` over the last
  dimension.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from model.nets.training import TORCH_THREADS, TorchThreads, drawn_batches, optimize

KINDS = ("logits", "regression", "embedding")
KD_TEMPERATURE = 2.0
KD_WEIGHT = 1.0
#: Batch for teacher pre-computation and evaluation passes.
TEACHER_BATCH = 1024
#: Threads of the training loop (the OpenMP barrier of a second thread costs more than it saves
#: for these small tensors, and much more on a busy machine).
THREADS = 1


@dataclass
class DistillSet:
    """Training inputs for distillation.

    Attributes
    ----------
    inputs : array, tensor, or tuple/list/dict of them (leading batch dimension)
    labels : numpy.ndarray, optional
        Class labels, for ``kind="logits"``.
    kind : {"logits", "regression", "embedding"}
    """
    inputs: Any
    labels: np.ndarray | None = None
    kind: str = "logits"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def __len__(self) -> int:
        return batch_size(self.inputs)


def _as_tensor(a):
    if isinstance(a, torch.Tensor):
        return a
    a = np.asarray(a)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32 if a.dtype.kind == "f" else None))


def batch_size(inputs) -> int:
    if isinstance(inputs, dict):
        return batch_size(next(iter(inputs.values())))
    if isinstance(inputs, (tuple, list)):
        return batch_size(inputs[0])
    return int(inputs.shape[0])


def take(inputs, idx):
    """Rows ``idx`` of inputs of any of the supported forms, as tensors.

    A dict holding an ``attention_mask`` (tokenized text) is trimmed to the
    longest sequence in the batch: padding columns beyond it change nothing
    but cost time.
    """
    if isinstance(inputs, dict):
        out = {k: take(v, idx) for k, v in inputs.items()}
        mask = out.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[0]:
            length = max(1, int(mask.sum(1).max()))
            full = mask.shape[1]
            out = {k: (v[:, :length] if isinstance(v, torch.Tensor) and v.dim() == 2 and v.shape[1] == full else v)
                   for k, v in out.items()}
        return out
    if isinstance(inputs, (tuple, list)):
        return tuple(take(v, idx) for v in inputs)
    return _as_tensor(inputs)[idx]


def call(model: nn.Module, inputs, params: dict | None = None) -> list[torch.Tensor]:
    """``model(inputs)`` (with parameter overrides when given), as a list of output tensors."""
    if isinstance(inputs, dict):
        args, kwargs = (), inputs
    elif isinstance(inputs, tuple):
        args, kwargs = inputs, {}
    else:
        args, kwargs = (inputs,), {}
    if params:
        out = torch.func.functional_call(model, params, args, kwargs, strict=False)
    else:
        out = model(*args, **kwargs)
    return output_tensors(out)


def output_tensors(out) -> list[torch.Tensor]:
    """The output tensors of a model's result: itself, a tuple's elements, or a dict's
    ``sentence_embedding`` (sentence-transformers) / attribute ``logits`` / ``last_hidden_state``."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        if "sentence_embedding" in out:
            return [out["sentence_embedding"]]
        return [t for v in out.values() for t in output_tensors(v)]
    for attr in ("logits", "last_hidden_state"):
        if hasattr(out, attr):
            return [getattr(out, attr)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in output_tensors(v)]
    raise TypeError(f"cannot find an output tensor in a {type(out).__name__}")


@torch.no_grad()
def outputs(model: nn.Module, inputs, batch: int = TEACHER_BATCH, params: dict | None = None) -> list[torch.Tensor]:
    """The model's output tensors on all of ``inputs``, in batches, concatenated."""
    model.eval()
    n = batch_size(inputs)
    with TorchThreads(TORCH_THREADS):
        parts = [call(model, take(inputs, torch.arange(i, min(i + batch, n))), params) for i in range(0, n, batch)]
    return [torch.cat(ts) for ts in zip(*parts)]


def distill_loss(out: list[torch.Tensor], teacher: list[torch.Tensor], labels: torch.Tensor | None,
                 kind: str) -> torch.Tensor:
    if kind == "logits":
        t = KD_TEMPERATURE
        o, te = out[0], teacher[0]
        kl = nn.functional.kl_div(nn.functional.log_softmax(o / t, dim=-1), nn.functional.log_softmax(te / t, dim=-1),
                                  reduction="batchmean", log_target=True) * (t * t)
        loss = KD_WEIGHT * kl
        if labels is not None:
            loss = loss + nn.functional.cross_entropy(o, labels)
        return loss
    loss = 0.0
    for o, te in zip(out, teacher):
        loss = loss + ((o - te) ** 2).mean() / (te ** 2).mean().clamp_min(1e-12)
        if kind == "embedding":
            d = o.shape[-1]
            loss = loss + (1 - nn.functional.cosine_similarity(o.reshape(-1, d), te.reshape(-1, d), dim=-1)).mean()
    return loss


def train(model: nn.Module, data: DistillSet, teacher: list[torch.Tensor], params_fn: Callable[[], dict],
          param_groups: list[dict], *, steps: int, batch: int, seed: int,
          on_step: Callable[[int], None] | None = None, progress: bool = True, desc: str = "distill",
          threads: int | None = None) -> list[float]:
    """Adam on ``param_groups`` for ``steps`` minibatches of distillation loss.

    ``params_fn()`` returns the parameter overrides (qualified name -> tensor)
    the student runs with; it is called every step, after ``on_step(step)``
    (used for schedules).  Minibatches are drawn from a seeded permutation,
    reshuffled each pass; ``threads`` torch threads (default :data:`THREADS`).
    Returns the loss of every step.
    """
    labels = None if data.labels is None else torch.as_tensor(np.asarray(data.labels), dtype=torch.int64)
    opt = torch.optim.Adam(param_groups)
    model.eval()  # dropout off: the student must match the deterministic teacher

    def step(idx):
        out = call(model, take(data.inputs, idx), params_fn())
        loss = distill_loss(out, [t[idx] for t in teacher], None if labels is None else labels[idx], data.kind)
        loss.backward()
        return loss
    return optimize(drawn_batches(len(data), batch, steps, seed), steps, step, opt, threads=threads or THREADS,
                    progress=progress, desc=desc, postfix_every=20,
                    before_step=None if on_step is None else lambda k, _total: on_step(k))
