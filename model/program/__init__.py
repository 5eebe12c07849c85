"""The program file: read, write and validate a compressed network's DRAM image and metadata.

May import: ``model.contract``, ``model.codecs``, and ``model.golden`` for random-program tools only
(``program.synthetic``); the file itself is validated through the contract and the codecs.
"""
