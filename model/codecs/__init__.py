"""Bit-exact coders shared by the program writer and the golden model: vector and index
packing, PVQ enumeration, canonical Huffman coding, sparse rows, and the layer codecs
(``codecs.layers``: one registered codec per layer mode).

May import: ``model.contract``.
"""
