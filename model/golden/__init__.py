"""The golden model: one module per hardware block, named like its twin in ``hw/``, with the same counters.

May import: ``model.contract``, ``model.codecs``.
"""
