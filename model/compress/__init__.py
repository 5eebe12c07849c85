"""Compression methods, each registered with :func:`model.compress.registry.register_method`,
and the int8 lowering they share.

May import: ``model.contract``, ``model.codecs``, ``model.golden``, ``model.program``, ``model.nets``.
"""
