"""Networks and their data: datasets, the network registry, the zoo, the lowering onto the engine, training.

May import: ``model.contract``, ``model.codecs``. (The zoo's package file holds its registry of
metrics and loaders, so it is the one package file here with imports.)
"""
