"""Developer scripts and long experiments; no product module imports them.
"""
