"""The scenario registry: what a scenario is, `register_scenario`, and which scenarios price which layers.

A scenario is a way of running the network whose energy the report
compares.  Each is one decorated function::

    @register_scenario("key", "title", "derivation (Markdown)",
                       when=lambda net: net.method == "universal")  # optional
    def _key(net, layer_index, table) -> LayerCost: ...

Which layer kinds a scenario prices comes from the layer codecs
(``model.codecs.layers.registry``): a kind's scenarios are the dense
baselines (`DENSE_BASELINES`, from the layer shapes alone, so every kind has
them) followed by those its codec names in ``scenarios`` (`layer_scenarios`).
A network gets every scenario that prices all its layers (`scenarios_for`).
A scenario no codec names (an extension) says which kinds it prices with
``modes``; without, it prices codebook VQ layers.

``reference=True`` marks a scenario that prices the counters as measured (the
report's "x engine" column divides by it).

A layer without rows (pooling, the residual add) has no mode and no weights: every scenario
applies to it and prices it with its ``rowless_cost`` (default: its counters
as measured, `engine_rowless_cost`), as it prices the job-level part with its
``io_cost``.

The built-in scenarios live in `sim.report.energy.baselines`, ``codebook``,
``pvq`` and ``sparse``.  Only `sim.report.energy.pricing` imports those
modules, in report order (registration order is report order), so the
scenarios are registered, in that order, before anything is priced.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from model.codecs.layers.registry import codec_named
from sim.report.energy.events import LayerCost
from sim.report.energy.measured import engine_io_cost, engine_rowless_cost
from sim.report.energy.network import LAYER_MODES, VQ, NetworkData
from sim.report.energy.table import EnergyTable

#: Scenarios that price every layer kind: the dense baselines, from the layer shapes alone.
DENSE_BASELINES = ("fp32", "int8")


def layer_scenarios(mode: str) -> tuple[str, ...]:
    """Keys of the scenarios that price a layer of kind ``mode``: the dense baselines, then its codec's."""
    return DENSE_BASELINES + tuple(codec_named(mode).scenarios)


@dataclass(frozen=True)
class Scenario:
    """A way of running the network whose energy the report compares.

    Parameters
    ----------
    key : str
        Short name used in energy.json.
    title : str
        Name in tables and plots.
    derivation : str
        How its events follow from the counters and shapes (Markdown).
    cost : callable
        ``cost(net, layer_index, table) -> LayerCost``.
    io_cost : callable
        ``io_cost(net, table) -> LayerCost`` for the job-level counters.
    rowless_cost : callable
        ``rowless_cost(net, layer_index, table) -> LayerCost`` for a layer without rows (pooling, the residual add).
    modes : frozenset of str or None
        Layer kinds (`LAYER_MODES`) the scenario prices, if it says so itself
        (an extension no codec names); None: the kinds whose `layer_scenarios` name ``key``.
    reference : bool
        The scenario prices the counters as measured: the engine itself, which
        the report compares the others against.
    when : callable or None
        ``when(net) -> bool``, a further condition (e.g. on ``net.method``); None: none.
    """
    key: str
    title: str
    derivation: str
    cost: Callable[[NetworkData, int, EnergyTable], LayerCost]
    io_cost: Callable[[NetworkData, EnergyTable], LayerCost]
    modes: frozenset | None = None
    reference: bool = False
    when: Callable[[NetworkData], bool] | None = None
    rowless_cost: Callable[[NetworkData, int, EnergyTable], LayerCost] = engine_rowless_cost

    def prices(self, mode: str) -> bool:
        """True if the scenario can price a layer of kind ``mode``."""
        return mode in self.modes if self.modes is not None else self.key in layer_scenarios(mode)

    @property
    def layer_modes(self) -> tuple[str, ...]:
        """The layer kinds the scenario prices, in `LAYER_MODES` order."""
        return tuple(mode for mode in LAYER_MODES if self.prices(mode))

    def applies(self, net: NetworkData) -> bool:
        """True if the scenario prices every layer of ``net`` with rows (and ``when`` allows it); a layer
        without rows is priced by every scenario (``rowless_cost``)."""
        return all(self.prices(layer.mode) for layer in net.layers if layer.has_rows) and \
            (self.when is None or self.when(net))

    def layer_cost(self, net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
        """Layer ``i`` priced by this scenario: ``cost``, or ``rowless_cost`` for a layer without rows."""
        return (self.cost if net.layers[i].has_rows else self.rowless_cost)(net, i, table)


#: Registered scenarios, in report order.  Add one with `register_scenario`.
SCENARIOS: dict[str, Scenario] = {}


def register_scenario(key: str, title: str, derivation: str,
                      io_cost: Callable[[NetworkData, EnergyTable], LayerCost] = engine_io_cost,
                      modes: Sequence[str] | None = None, reference: bool = False,
                      when: Callable[[NetworkData], bool] | None = None,
                      rowless_cost: Callable[[NetworkData, int, EnergyTable], LayerCost] = engine_rowless_cost):
    """Decorator adding ``cost(net, layer_index, table) -> LayerCost`` to `SCENARIOS`.

    Parameters
    ----------
    key : str
        Short name (energy.json's ``scenario``).
    title : str
        Display name.
    derivation : str
        One paragraph for the report on how the events are obtained.
    io_cost : callable
        ``io_cost(net, table) -> LayerCost`` for the job-level counters; the
        engine's own pricing unless the scenario changes the I/O.
    modes : sequence of str, optional
        Layer kinds the scenario prices, for a scenario no layer codec names
        (default: codebook VQ layers only, so a scenario that assumes a
        codebook is never applied to PVQ layers).  A scenario a codec names,
        or a dense baseline, prices the kinds `layer_scenarios` gives.
    reference : bool
        The scenario is the engine as measured (one per layer kind).
    when : callable, optional
        ``when(net) -> bool``: apply only to such networks, e.g.
        ``when=lambda net: net.method == "universal"``.
    rowless_cost : callable
        ``rowless_cost(net, layer_index, table) -> LayerCost`` for a layer without rows (max
        pooling); the engine's pricing of its counters unless the scenario changes them.

    Raises
    ------
    ValueError
        If ``modes`` is empty or names an unknown kind, or (when applied) ``key`` is taken.
    """
    if modes is not None and (not modes or set(modes) - set(LAYER_MODES)):
        raise ValueError(f"scenario {key!r}: modes must be a non-empty subset of {', '.join(LAYER_MODES)}")
    if modes is None and not any(key in layer_scenarios(mode) for mode in LAYER_MODES):
        modes = (VQ,)

    def wrap(fn):
        if key in SCENARIOS:
            raise ValueError(f"scenario {key!r} registered twice")
        SCENARIOS[key] = Scenario(key, title, derivation, fn, io_cost,
                                  None if modes is None else frozenset(modes), reference, when, rowless_cost)
        return fn
    return wrap


def scenario_named(key: str) -> Scenario:
    """The registered scenario ``key``.

    Raises
    ------
    ValueError
        If no scenario of that key is registered.
    """
    if key not in SCENARIOS:
        raise ValueError(f"unknown scenario {key!r}; registered: {', '.join(SCENARIOS)}")
    return SCENARIOS[key]


def scenarios_for(net: NetworkData) -> list[str]:
    """Keys of the registered scenarios that apply to ``net``, in registry order."""
    return [key for key, sc in SCENARIOS.items() if sc.applies(net)]
