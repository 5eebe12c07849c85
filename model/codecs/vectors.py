"""int8 vectors (inputs, outputs) in DRAM: four to a word, little-endian, zero-padded."""
from __future__ import annotations

import numpy as np

from model.contract.fixedpoint import ACT_MAX, ACT_MIN
from model.contract.layout import WORD_BYTES, vector_words


def pack_vectors(x: np.ndarray, lanes: int) -> np.ndarray:
    """int8 vectors (n, features) -> DRAM words (n, vector_words)."""
    n, f = x.shape
    padded = np.zeros((n, vector_words(f, lanes) * WORD_BYTES), dtype=np.uint8)
    padded[:, :f] = x.astype(np.int8).view(np.uint8)
    return padded.view("<u4")


def unpack_vectors(words: np.ndarray, features: int) -> np.ndarray:
    return np.ascontiguousarray(words.astype("<u4")).view(np.int8)[:, :features]


def random_vectors(rng: np.random.Generator, n: int, features: int) -> np.ndarray:
    """``n`` random int8 vectors of ``features`` values, uniform over the engine's activation range
    (the inputs of synthetic programs)."""
    return rng.integers(ACT_MIN, ACT_MAX + 1, size=(n, features)).astype(np.int8)
