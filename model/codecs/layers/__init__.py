"""Layer codecs: one per layer mode, registered in :mod:`model.codecs.layers.registry`.

A codec knows everything mode-specific about a layer: how the program writer
lays its rows out (:meth:`~model.codecs.layers.base.LayerCodec.write`), how the
engine checks its descriptor and reads its stream
(:meth:`~model.codecs.layers.base.LayerCodec.check`,
:meth:`~model.codecs.layers.base.LayerCodec.decode`; the golden model and program
validation both use these), which counters it moves, and which energy
scenarios price it.  Adding a layer kind means adding one module here and
registering its codec.

May import: ``model.contract`` and the other codecs.
"""
