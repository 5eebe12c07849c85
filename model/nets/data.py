"""Fashion-MNIST loading from Debian's ``dataset-fashion-mnist`` package.

The package installs the four original IDX files, gzip-compressed, under
``/usr/share/datasets/fashion-mnist``.  Nothing is downloaded or cached: the
files are small enough (about 30 MB unpacked) to parse on every call.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from model.contract.errors import VqeError

#: Where Debian's ``dataset-fashion-mnist`` package puts the files.
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Environment variable overriding :data:`DEFAULT_DIR` (e.g. for a local copy).
DIR_ENV = "VQE_FASHION_MNIST"

INSTALL_HINT = "install it with `apt-get install dataset-fashion-mnist`"

#: File name prefix of each split, as in the original distribution.
SPLITS = {"train": "train", "test": "t10k"}
IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
N_CLASSES = 10
PIXEL_MAX = 255.0

#: IDX header: two zero bytes, a type code, the number of dimensions.
IDX_MAGIC_ZERO = b"\x00\x00"
IDX_TYPE_UBYTE = 0x08
IDX_IMAGE_DIMS = 3
IDX_LABEL_DIMS = 1


class DataError(VqeError):
    """The dataset files are missing or not valid IDX files."""


def data_dir() -> Path:
    """Directory holding the IDX files (``$VQE_FASHION_MNIST`` or the Debian path)."""
    return Path(os.environ.get(DIR_ENV, DEFAULT_DIR))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX file holding unsigned bytes.

    Parameters
    ----------
    raw : bytes
        The whole file.
    name : str
        Used in error messages.

    Returns
    -------
    numpy.ndarray of uint8
        Array with the shape the header declares.

    Raises
    ------
    DataError
        If the magic, type code or length is wrong.
    """
    if len(raw) < 4 or raw[:2] != IDX_MAGIC_ZERO:
        raise DataError(f"{name}: not an IDX file (bad magic); {INSTALL_HINT}")
    type_code, ndim = raw[2], raw[3]
    if type_code != IDX_TYPE_UBYTE:
        raise DataError(f"{name}: IDX type 0x{type_code:02x} is not unsigned byte; {INSTALL_HINT}")
    header_len = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_len:
        raise DataError(f"{name}: truncated IDX header; {INSTALL_HINT}")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) != header_len + count:
        raise DataError(
            f"{name}: IDX header declares {dims} ({count} bytes) but {len(raw) - header_len} follow; "
            f"{INSTALL_HINT}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def _read_idx_gz(path: Path, ndim: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"Fashion-MNIST file {path} is missing; {INSTALL_HINT}")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot decompress ({e}); {INSTALL_HINT}") from e
    arr = parse_idx(raw, str(path))
    if arr.ndim != ndim:
        raise DataError(f"{path}: expected {ndim} dimensions, found shape {arr.shape}; {INSTALL_HINT}")
    return arr


def load_fashion_mnist(split: str, directory: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of Fashion-MNIST.

    Parameters
    ----------
    split : {"train", "test"}
        60 000 training or 10 000 test images.
    directory : path, optional
        Where the ``*-ubyte.gz`` files are; defaults to :func:`data_dir`.

    Returns
    -------
    x : numpy.ndarray of float32, shape (n, 784)
        Pixels scaled to [0, 1], images flattened row-major.
    y : numpy.ndarray of int64, shape (n,)
        Class labels 0..9.

    Raises
    ------
    ValueError
        If ``split`` is unknown.
    DataError
        If a file is missing or malformed.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    d = Path(directory) if directory is not None else data_dir()
    prefix = SPLITS[split]
    images = _read_idx_gz(d / f"{prefix}-images-idx3-ubyte.gz", IDX_IMAGE_DIMS)
    labels = _read_idx_gz(d / f"{prefix}-labels-idx1-ubyte.gz", IDX_LABEL_DIMS)
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{d}: images are {images.shape[1:]}, expected {IMAGE_SIDE}x{IMAGE_SIDE}; {INSTALL_HINT}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{d}: {images.shape[0]} images but {labels.shape[0]} labels; {INSTALL_HINT}")
    if labels.size and labels.max() >= N_CLASSES:
        raise DataError(f"{d}: label {labels.max()} out of range 0..{N_CLASSES - 1}; {INSTALL_HINT}")
    x = images.reshape(-1, N_PIXELS).astype(np.float32) / np.float32(PIXEL_MAX)
    y = labels.astype(np.int64)
    return x, y
