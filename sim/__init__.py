"""VQ Engine simulation: backends, the simulation top, cocotb testbenches, energy and area."""
