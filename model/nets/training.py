"""The one minibatch training loop every trainer in the project runs, and what it needs.

A seeded shuffle per epoch, one optimizer step per minibatch (the last one of
an epoch may be short), a progress bar, and a pinned torch thread count (so
the floating-point reduction order, hence the trained weights, does not
depend on the machine).  What differs between trainers (the loss, gradient
surgery such as pruning masks or centroid gathering, a step-size schedule,
what to do after a step) is passed in.
"""
from __future__ import annotations

import math
import sys
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

#: Threads of every evaluation and of trainers that do not pin their own.
TORCH_THREADS = 2


def progress_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable``: off when asked, else only when not writing to a tty (tqdm's ``None``)."""
    return True if not progress else None


class TorchThreads:
    """Context manager pinning torch's intra-op thread count, restoring it afterwards."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def cosine_lr(lr: float, step: int, steps: int) -> float:
    """Step size of a cosine decay from ``lr`` (step 0) towards 0 (after the last of ``steps`` steps)."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * step / steps))


def as_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 inputs and int64 labels as tensors, checked to be non-empty and of one length."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    if len(xt) == 0 or len(yt) != len(xt):
        raise ValueError(f"need matching non-empty inputs and labels, got {len(xt)} inputs, {len(yt)} labels")
    return xt, yt


def train_epochs(n: int, step: Callable[[torch.Tensor], torch.Tensor], opt: torch.optim.Optimizer, *,
                 epochs: int, batch: int, seed: int, threads: int = TORCH_THREADS, progress: bool = True,
                 desc: str = "train", lr: Callable[[int, int], float] | None = None,
                 after_step: Callable[[], None] | None = None) -> None:
    """Run ``epochs`` passes of minibatches over ``n`` examples.

    Parameters
    ----------
    n : int
        Examples; each epoch visits them in a new order from a generator seeded with ``seed``.
    step : callable
        ``step(idx) -> loss``: the forward pass on the examples ``idx`` and ``loss.backward()``
        (plus any gradient surgery); the optimizer's gradients are zeroed before it.
    opt : torch.optim.Optimizer
        Stepped after every ``step``.
    epochs, batch : int
        Passes and minibatch size.
    seed : int
        Seeds the minibatch order (the caller seeds initialisation).
    threads : int
        torch threads while training.
    progress : bool
        Show a tqdm bar (only on a tty).
    desc : str
        Label of the progress bar.
    lr : callable, optional
        ``lr(step, steps)``: the step size of each step (a schedule), set before it.
    after_step : callable, optional
        Called after every optimizer step (e.g. a scheduler step, or re-applying masks).
    """
    if batch < 1 or n < 1:
        raise ValueError(f"need a batch size >= 1 and at least one example, got batch {batch}, {n} examples")
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * -(-n // batch)
    done = 0
    with TorchThreads(threads), tqdm(total=steps, desc=desc, disable=progress_disabled(progress),
                                     file=sys.stderr, leave=False) as bar:
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch):
                if lr is not None:
                    for group in opt.param_groups:
                        group["lr"] = lr(done, steps)
                done += 1
                opt.zero_grad(set_to_none=True)
                loss = step(perm[i:i + batch])
                opt.step()
                if after_step is not None:
                    after_step()
                bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
