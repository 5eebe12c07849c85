"""The universal codebook (VQ4ALL, arXiv 2412.06875): KDE extraction, the nested ROM, differentiable fitting.
"""
