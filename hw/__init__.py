"""VQ Engine hardware: Amaranth 0.5 components, one ``wiring.Component`` per block (see ``hw.engine.Engine``).

Interfaces are the ``Signature`` classes of ``hw.layouts``; ``hw.datapaths`` has one datapath per layer mode.

May import: ``model.contract`` and ``model.codecs`` only (checked by tests/test_architecture.py).
"""
