"""The energy and area report: energy from the exact counters, area and fmax from yosys and nextpnr,
plots, and the document with one module per section.

``energy`` (the energy model), ``area`` (the synthesis flow and its cache), ``sections`` (the
document, one module per section), ``plots``, ``formatting``, ``files`` (what the report writes),
``paths`` (where its inputs live), ``document`` (writing the report safely), ``engines`` (the engines
it synthesizes), ``block_ram`` (the FPGA blocks a memory takes, by rule), ``programs`` (the programs it
covers and their counters), ``progress`` (what it tells the user) and ``build`` (the ``vqe report`` driver).

May import: ``model``, ``hw``, ``sim.backends``, ``sim.run``, ``sim.errors`` (never ``sim.cli``).
"""
