"""The ``vqe`` command: the parser (``main``) and one module per subcommand.

May import: everything in the product.
"""
