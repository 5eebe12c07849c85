"""Running programs on the engine and reporting on them.

``backends`` (Amaranth simulator, cocotb with Icarus or Verilator), ``run`` (one run, its JSON
summary), ``report`` (energy, area, plots, the document), ``cli`` (the ``vqe`` command) and
``errors`` (what a command raises for a user's mistake, and its exit statuses).

May import: ``model`` and ``hw``.
"""
