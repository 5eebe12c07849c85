"""Cycles per layer, from the engine's ``phase`` output and its cycle counter."""
from __future__ import annotations


class PhaseCycles:
    """Adds up the cycles the engine spends in each layer, over every image of a job.

    A testbench calls :meth:`change` whenever the engine's ``phase`` output
    changes (``i + 1`` while layer ``i`` runs, 0 between layers), with the
    ``cycles`` counter read at the same moment: the cycles since the last
    change belong to the phase that just ended.

    Members
    -------
    layer_cycles : list of int
        Cycles of each layer so far (index ``i`` for layer ``i``).
    """

    def __init__(self):
        self.layer_cycles: list[int] = []
        self._phase, self._since = 0, 0

    def change(self, phase: int, cycles: int) -> None:
        """The engine's ``phase`` is now ``phase`` and its cycle counter reads ``cycles``."""
        if phase == self._phase:
            return
        if self._phase:
            layer = self._phase - 1
            self.layer_cycles.extend([0] * (layer + 1 - len(self.layer_cycles)))
            self.layer_cycles[layer] += cycles - self._since
        self._phase, self._since = phase, cycles
