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
from typing import Callable, Iterable, Iterator

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


def epoch_batches(n: int, batch: int, epochs: int, seed: int) -> Iterator[torch.Tensor]:
    """Minibatch indices for ``epochs`` passes over ``n`` examples, a new seeded order each pass
    (the last batch of a pass may be short)."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            yield perm[i:i + batch]


def drawn_batches(n: int, batch: int, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """``steps`` full minibatches drawn from a seeded order of ``n`` examples, reshuffled whenever
    fewer than ``batch`` remain (the distillation fits count steps, not epochs)."""
    gen = torch.Generator().manual_seed(seed)
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        yield perm[pos:pos + batch]
        pos += batch


def optimize(batches: Iterable[torch.Tensor], total: int, step: Callable[[torch.Tensor], torch.Tensor],
             opt: torch.optim.Optimizer, *, threads: int = TORCH_THREADS, progress: bool = True,
             desc: str = "train", before_step: Callable[[int, int], None] | None = None,
             after_step: Callable[[], None] | None = None, postfix_every: int = 0) -> list[float]:
    """The one training loop: for each minibatch, zero the gradients, ``step``, step the optimizer.

    Parameters
    ----------
    batches : iterable of torch.Tensor
        Example indices of each minibatch (:func:`epoch_batches`, :func:`drawn_batches`).
    total : int
        Minibatches ``batches`` yields (for the progress bar and schedules).
    step : callable
        ``step(idx) -> loss``: the forward pass on examples ``idx`` and ``loss.backward()``
        (plus any gradient surgery).
    opt : torch.optim.Optimizer
    threads : int
        torch threads while training (pinned: the trained weights must not depend on the machine's cores).
    progress : bool
        Show a tqdm bar (only on a tty).
    desc : str
        Label of the progress bar.
    before_step : callable, optional
        ``before_step(k, total)`` before minibatch ``k`` (schedules).
    after_step : callable, optional
        After every optimizer step (a scheduler's step, re-applying masks).
    postfix_every : int
        Show the loss every this many steps (0: at the end only).

    Returns
    -------
    list of float
        The loss of every step.
    """
    losses = []
    with TorchThreads(threads), tqdm(total=total, desc=desc, disable=progress_disabled(progress),
                                     file=sys.stderr, leave=False) as bar:
        for k, idx in enumerate(batches):
            if before_step is not None:
                before_step(k, total)
            opt.zero_grad(set_to_none=True)
            loss = step(idx)
            opt.step()
            if after_step is not None:
                after_step()
            losses.append(float(loss.item()))
            bar.update(1)
            if (postfix_every and k % postfix_every == 0) or k == total - 1:
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses


def train_epochs(n: int, step: Callable[[torch.Tensor], torch.Tensor], opt: torch.optim.Optimizer, *,
                 epochs: int, batch: int, seed: int, threads: int = TORCH_THREADS, progress: bool = True,
                 desc: str = "train", lr: Callable[[int, int], float] | None = None,
                 after_step: Callable[[], None] | None = None) -> list[float]:
    """:func:`optimize` over ``epochs`` seeded passes of ``batch``-sized minibatches of ``n`` examples.

    ``lr(k, steps)``, if given, sets the step size of step ``k`` (a schedule);
    the other arguments are :func:`optimize`'s.
    """
    if batch < 1 or n < 1:
        raise ValueError(f"need a batch size >= 1 and at least one example, got batch {batch}, {n} examples")

    def set_lr(k: int, total: int) -> None:
        for group in opt.param_groups:
            group["lr"] = lr(k, total)
    return optimize(epoch_batches(n, batch, epochs, seed), epochs * -(-n // batch), step, opt, threads=threads,
                    progress=progress, desc=desc, before_step=set_lr if lr is not None else None,
                    after_step=after_step)
