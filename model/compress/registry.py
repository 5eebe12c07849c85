"""The compression-method registry: ``vqe compress --method NAME`` finds its method here.

A method registers itself in its own module with :func:`register_method`, once
per kind of result it gives:

* ``kind="engine"``: ``fn(job: EngineJob) -> Program``, an engine program for a
  network the engine runs (:func:`model.nets.registry.engine_networks`);
* ``kind="model"``: ``fn(network: str, options: CompressOptions) -> dict``, a
  model-level result (JSON) for any zoo network.

Every method module is imported by :mod:`model.compress.catalog`, so adding a
method means adding its module, registering it there, and listing the module
in the catalog.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np

from model.contract.config import DEFAULT_WEIGHT_SRAM_KIB
from model.contract.errors import VqeError

#: Kinds of result a method can register.
KINDS = ("engine", "model")


class CompressError(VqeError):
    """Compression options that cannot work."""


@dataclass(frozen=True)
class CompressOptions:
    """Everything ``vqe compress`` can be told besides the network and the method.

    ``None`` means "the method's default".  The common options (lanes,
    calibration, seed, progress) apply to every method; the others only to the
    methods that name them in ``register_method(options=...)``.
    """
    lanes: int = 4
    codebook_size: int | None = None
    finetune_epochs: int | None = None
    calibration: int = 2000
    seed: int = 0
    progress: bool = True
    bits_per_weight: float | None = None
    codebook: object = None
    stages: int | None = None
    rank: int | None = None
    quick: bool = False
    weight_sram_kib: int = DEFAULT_WEIGHT_SRAM_KIB
    #: Processing elements the program is laid out for: the methods whose layers are all dense take it, and
    #: deepcomp (its sparse streams written for them); PVQ and nearest-prototype layers run on one PE.
    pes: int = 1
    #: How deepcomp writes its sparse layers: Huffman-coded rows, or column-wise for the column unit
    #: (:data:`model.program.writer.SPARSE_FORMATS`).
    sparse_format: str = "huffman"


#: Options every method takes (the weight SRAM is placed after the method, for engine programs).
COMMON_OPTIONS = frozenset({"lanes", "calibration", "seed", "progress", "weight_sram_kib"})
#: The command-line spelling of each option, for error messages.
FLAGS = {f.name: "--" + f.name.replace("_", "-") for f in fields(CompressOptions)}
FLAGS["quick"] = "--quick-eval"
FLAGS["weight_sram_kib"] = "--weight-sram"


@dataclass
class EngineJob:
    """A network ready for an engine method: lowered onto the engine's layers, its data and calibration.

    Members
    -------
    network : str
    options : CompressOptions
    task : model.nets.tasks.EngineTask
        The float network and its lowered form (``task.net``, which takes the raw inputs).
    data : model.nets.tasks.EngineData
        Training data (``data.train``, a distillation set, labelled for a classifier) and the quality metric.
    calib : numpy.ndarray
        Calibration inputs.
    info : dict
        Facts every program records (metric, float quality, seed, image counts).
    """
    network: str
    options: CompressOptions
    task: object
    data: object
    calib: np.ndarray
    info: dict

    def quality(self, model) -> float:
        """The headline metric of a module giving the source network's outputs."""
        return float(self.data.quality(model)[self.data.metric])

    def coded_quality(self, net) -> float:
        """The headline metric of a network in the engine's layout (its outputs split as the source's)."""
        from model.nets.tasks import SourceOutputs
        return self.quality(SourceOutputs(net, self.task.net.outputs))


@dataclass
class Method:
    """A registered method: its summary and, per kind, its function and the options it takes."""
    name: str
    summary: str
    fns: dict[str, Callable] = field(default_factory=dict)
    options: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Per kind: the networks it has a recipe for (None: all of that kind's networks).
    networks: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    #: Per kind: the method's own option check, run before any data is loaded.
    checks: dict[str, Callable | None] = field(default_factory=dict)
    #: Model-level results: how the CLI names a result's configuration.
    describe: Callable[[dict], str] = lambda result: f" {result['config']}"

    def takes(self, kind: str, option: str) -> bool:
        return option in COMMON_OPTIONS or option in self.options.get(kind, ())


#: Registered methods, in registration order.
METHODS: dict[str, Method] = {}


def register_method(name: str, summary: str, *, kind: str = "engine", options=(), networks=None,
                    check: Callable[[CompressOptions], None] | None = None,
                    describe: Callable[[dict], str] | None = None):
    """Decorator adding ``fn`` to :data:`METHODS` as the ``kind`` result of method ``name``.

    Parameters
    ----------
    name : str
        The ``--method`` name.
    summary : str
        One line for ``--help`` and error messages.
    kind : {"engine", "model"}
        What ``fn`` returns: an engine program, or a model-level result.
    options : iterable of str
        :class:`CompressOptions` fields beyond the common ones that ``fn`` uses.
    networks : tuple of str, optional
        The only networks ``fn`` has a recipe for (checked before any data is loaded).
    check : callable, optional
        ``check(options)`` raises :class:`CompressError` for options ``fn`` cannot use, before any data is loaded.
    describe : callable, optional
        ``kind="model"``: ``describe(result)`` names the configuration in the CLI's summary line
        (default: the result's ``config``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    unknown = set(options) - set(FLAGS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}")

    def add(fn):
        method = METHODS.setdefault(name, Method(name, summary))
        if kind in method.fns:
            raise ValueError(f"method {name!r} already has its {kind} function")
        method.fns[kind] = fn
        method.options[kind] = frozenset(options)
        method.networks[kind] = None if networks is None else tuple(networks)
        method.checks[kind] = check
        if describe is not None:
            method.describe = describe
        return fn
    return add


def method_names(kind: str | None = None) -> list[str]:
    """Registered methods (of one kind, or all): those that write engine programs first, each group
    in alphabetical order (registration order depends on import order)."""
    names = [n for n, m in METHODS.items() if kind is None or kind in m.fns]
    return sorted(names, key=lambda n: ("engine" not in METHODS[n].fns, n))


def get_method(name: str) -> Method:
    """The registered method ``name``; :class:`CompressError` naming the choices otherwise."""
    if name not in METHODS:
        raise CompressError(f"unknown method {name!r}; choose one of {', '.join(method_names())}")
    return METHODS[name]


def check_options(method: Method, kind: str, options: CompressOptions) -> None:
    """Refuse options the method's ``kind`` function does not take (set to something but their default),
    then run the method's own check."""
    default = CompressOptions()
    for f in fields(CompressOptions):
        if getattr(options, f.name) != getattr(default, f.name) and not method.takes(kind, f.name):
            takers = [n for n in method_names() if any(METHODS[n].takes(k, f.name) for k in METHODS[n].fns)]
            raise CompressError(f"{FLAGS[f.name]} applies to --method {', '.join(takers)} only"
                                + ("" if kind == "engine" else " (here a model-level fit)"))
    if method.checks.get(kind) is not None:
        method.checks[kind](options)


def check_network(method: Method, kind: str, network: str) -> None:
    """Refuse a network the method's ``kind`` function has no recipe for."""
    allowed = method.networks.get(kind)
    if allowed is not None and network not in allowed:
        raise CompressError(f"--method {method.name} has a recipe for {', '.join(allowed)} only, not {network!r}")
