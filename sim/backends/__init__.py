"""Simulation backends: the engine with its DRAM model (``top``, ``dram_model``), the Amaranth
simulator (``amaranth``), cocotb on Icarus or Verilator (``simulators`` finds and sets up the
simulators, ``cocotb_build`` builds the simulation top once per design, ``cocotb`` runs it;
``cocotb_top`` is the cocotb test), and the compiled Verilator harness (``verilator``; its C++
in ``harness/``, the run-time-loaded DRAM storage in ``verilog/``; ``readmem`` writes the files
the compiled designs load at run time).

May import: ``model``, ``hw``.
"""
