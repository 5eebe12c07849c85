"""Simulation backends: the engine with its DRAM model (``top``), the Amaranth simulator, and cocotb
on Icarus or Verilator (``cocotb`` builds and runs; ``cocotb_top`` is the cocotb test).

May import: ``model``, ``hw``.
"""
