"""The engine's contract: DRAM layout, job header and descriptors (encode, decode, check),
error codes and :class:`~model.contract.errors.VqeError`, counters, :class:`EngineConfig`,
the fixed-point rules and small integer helpers.

May import: nothing else of the project (the standard library and NumPy only).
"""
