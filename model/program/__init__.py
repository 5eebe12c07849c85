"""The program file: read, write and validate a compressed network's DRAM image and metadata.

May import: ``model.contract`` and ``model.codecs`` only: a program is written and
validated through the contract and the layer codecs, never through the golden model.
"""
