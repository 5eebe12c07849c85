"""Pyramid VQ (Fischer 1986; Liguori, arXiv 1603.09037): projection onto the pyramid and the PVQ network.
"""
