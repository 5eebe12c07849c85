"""Pyramid VQ (Fischer 1986; Liguori, arXiv 1603.09037).

``pyramid`` (projection onto the pyramid), ``budget`` (K for a bit budget), ``layers`` (coded layers
and their torch form), ``lower`` (int8 lowering), ``network`` (the flow and ``--method pvq``).

May import: what ``model.compress`` may.
"""
