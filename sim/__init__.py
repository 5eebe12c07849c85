"""Running programs on the engine and reporting on them.

``backends`` (Amaranth simulator, cocotb with Icarus or Verilator), ``run`` (one run, its JSON
summary), ``report`` (energy, area, plots, the document) and ``cli`` (the ``vqe`` command).

May import: ``model`` and ``hw``.
"""
