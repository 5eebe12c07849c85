"""Random integer networks, for testing the engine against the golden model.

They exercise what real networks may not: shapes that do not divide by the
lane count, small and odd codebooks, extreme requantization parameters, biases
that make accumulators wrap.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .fixedpoint import ACT_MAX, ACT_MIN, MULT_BITS, SHIFT_MAX
from .layout import ceil_div


def random_lowered(rng: np.random.Generator, lanes: int, shapes: list[int], codebook_depth: int,
                   codebook_sizes: list[int] | None = None, name: str = "random"):
    """A random lowered network with layer widths ``shapes`` (input first).

    Duck-types :class:`model.lowering.LoweredNetwork`.
    """
    layers = []
    for i, (n_in, n_out) in enumerate(zip(shapes[:-1], shapes[1:])):
        k = codebook_sizes[i] if codebook_sizes else int(rng.integers(1, codebook_depth + 1))
        s = ceil_div(n_in, lanes)
        # Shifts around the "useful" range keep outputs from saturating every time.
        shift = rng.integers(max(0, 12), min(SHIFT_MAX, 24) + 1, size=n_out)
        layers.append(SimpleNamespace(
            in_features=n_in, out_features=n_out,
            codebook=rng.integers(ACT_MIN, ACT_MAX + 1, size=(k, lanes), dtype=np.int64),
            indices=rng.integers(0, k, size=(n_out, s)),
            bias=rng.integers(-(1 << 20), 1 << 20, size=n_out),
            mult=rng.integers(0, 1 << MULT_BITS, size=n_out),
            shift=shift,
            relu=bool(rng.integers(0, 2)) if i < len(shapes) - 2 else False,
        ))
    return SimpleNamespace(name=name, method="random", lanes=lanes, input_scale=1 / 127,
                           output_scale=1.0, layers=layers, info={})


def random_inputs(rng: np.random.Generator, n: int, features: int) -> np.ndarray:
    return rng.integers(ACT_MIN, ACT_MAX + 1, size=(n, features)).astype(np.int8)
