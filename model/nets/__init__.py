"""Networks and their data: datasets, the network registry, the zoo, host front ends, training.

May import: ``model.contract`` (fixed point), ``model.codecs``.
"""
