"""Every compression method, imported so that each registers itself (:mod:`model.compress.registry`).

Add a new method's module here.
"""
from __future__ import annotations

import model.compress.baselines  # noqa: F401  pq, rq, lr2vq (model level)
import model.compress.deepcomp.recipe  # noqa: F401  deepcomp
import model.compress.kmeans.method  # noqa: F401  kmeans
import model.compress.lattice  # noqa: F401  lattice (E8P)
import model.compress.lr2vq  # noqa: F401  lr2vq (engine programs)
import model.compress.lvq.method  # noqa: F401  lvq1, glvq, gmlvq
import model.compress.multicodebook  # noqa: F401  rq, pq (engine programs)
import model.compress.pvq.network  # noqa: F401  pvq
import model.compress.universal.method  # noqa: F401  universal
