"""Simulation backends: the engine with its DRAM model (``top``, ``dram_model``), the Amaranth
simulator (``amaranth``), and cocotb on Icarus or Verilator (``simulators`` finds and sets up the
simulators, ``cocotb_build`` builds the simulation top once per design, ``cocotb`` runs it;
``cocotb_top`` is the cocotb test).

May import: ``model``, ``hw``.
"""
