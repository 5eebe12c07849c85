"""VQ Engine's public Python API (:mod:`sim.api`): ``vqe.compress``, ``vqe.run``, ``vqe.report``.

The one package whose ``__init__`` imports: it is the API's facade, and may import ``model``, ``hw`` and ``sim``.
"""
from __future__ import annotations

from model.program.file import Program
from sim.api import compress, report, run

__all__ = ["Program", "compress", "report", "run"]
