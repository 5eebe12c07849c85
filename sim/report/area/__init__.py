"""Area and fmax of Verilog designs: yosys and nextpnr-ice40, with a result cache.

``tools`` (finding and running yosys and nextpnr), ``flow`` (the scripts and
the flow for one design), ``wrapper`` (the port-registering wrapper
place-and-route runs on), ``netlist`` (reading what the tools write: cell
counts, memories, per-module breakdown, fmax), ``synthesis`` (one design,
cached by Verilog text and tool versions) and ``sweep`` (a design over lanes x
codebook depth).

May import: ``model``.
"""
