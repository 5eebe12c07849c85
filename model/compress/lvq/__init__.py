"""LVQ classifiers on the engine (``--method lvq1|glvq|gmlvq``): the nearest-prototype rule as FC layers.

``method`` (the lowering of a trained :class:`model.lvq.prototypes.LVQModel` onto the engine's layers, and
the three registrations).

May import: what ``model.compress`` may, and ``model.lvq``.
"""
