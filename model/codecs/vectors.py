"""int8 vectors (inputs, outputs) in DRAM: four to a word, little-endian, zero-padded."""
from __future__ import annotations

import numpy as np

from model.contract.layout import WORD_BYTES, vector_words


def pack_vectors(x: np.ndarray, lanes: int) -> np.ndarray:
    """int8 vectors (n, features) -> DRAM words (n, vector_words)."""
    n, f = x.shape
    padded = np.zeros((n, vector_words(f, lanes) * WORD_BYTES), dtype=np.uint8)
    padded[:, :f] = x.astype(np.int8).view(np.uint8)
    return padded.view("<u4")


def unpack_vectors(words: np.ndarray, features: int) -> np.ndarray:
    return np.ascontiguousarray(words.astype("<u4")).view(np.int8)[:, :features]
