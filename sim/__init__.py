"""Running programs on the engine and reporting on them.

``backends`` (Amaranth simulator, cocotb with Icarus or Verilator, the compiled Verilator harness),
``simulate`` (one engine run on an RTL backend), ``run`` (one run, its JSON summary), ``shards``
(a run's images as jobs on a Dask cluster), ``verify`` (the verification campaign), ``bench``
(``make bench``), ``report`` (energy, area, plots, the document), ``cli`` (the ``vqe`` command)
and ``errors`` (what a command raises for a user's mistake, and its exit statuses).

May import: ``model`` and ``hw``.
"""
