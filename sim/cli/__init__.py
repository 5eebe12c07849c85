"""The ``vqe`` command: the parser and ``main`` (``main``), the options several subcommands share
(``options``), and one module per subcommand (``compress``, ``codebook``, ``run``, ``verilog``,
``inspect``, ``report``), each with its ``add_parser`` and its command.

May import: everything in the product.
"""
