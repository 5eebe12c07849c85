"""The energy and area report: energy from the exact counters, area and fmax from yosys and nextpnr,
plots, and the document with one module per section.

May import: ``model``, ``hw``, ``sim.backends``, ``sim.run``.
"""
