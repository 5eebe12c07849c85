"""The report's sections, one module each, as lists of Markdown lines.

``energy`` (the energy figures and one section per network, and the engines
side by side), ``method`` (how counters become energy, the scenarios, the
energy table, the assumptions), ``area`` (area and fmax of the sweep),
``pvq`` (PVQ against k-means VQ), ``deepcomp`` (Deep Compression),
``universal`` (the universal codebook) and ``resident`` (weights resident on
chip: energy by weight-SRAM capacity and job size, and the weight SRAM's area).  A section only formats what it is
given: the driver (`sim.report.build`) runs the tools and reads the files.

May import: ``model``, ``sim.report`` (not ``sim.cli``).
"""
