"""The energy table: picojoules per event, each with its source, read from TOML and validated.

The project's table is ``sim/report/energy_table.toml``; a user may pass their
own (``vqe report --energy-table``), which must define every entry in
`REQUIRED_ENTRIES`.  An entry either gives ``pj`` or derives from another
with ``same_as`` (times ``scale``).  The SRAM entries of `SRAM_CAPACITY_ANCHORS`
give on-chip memory energy by capacity (`CAPACITY_RULE`, an assumption; priced
by `sim.report.energy.events.memory_access_energy`).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from model.contract.errors import VqeError

#: The energy table shipped with the project.
DEFAULT_TABLE = Path(__file__).parent.parent / "energy_table.toml"

#: Bytes in one KiB.  The table's memory sizes (8 KB, 32 KB, 1 MB) are binary, as cache sizes are.
KIB = 1024
#: SRAM reads of one width at several capacities: (entry, capacity in bytes), smallest first.  They
#: give on-chip memory energy by capacity (`CAPACITY_RULE`); the smallest is the 8 KB point.
SRAM_CAPACITY_ANCHORS = (("sram_8kb_64b", 8 * KIB), ("sram_32kb_64b", 32 * KIB), ("sram_1mb_64b", KIB * KIB))
#: How per-access energy follows from capacity and width: an assumption, printed in the report.
CAPACITY_RULE = (
    "On-chip SRAM and ROM energy by capacity (assumption: the table gives reads of three SRAM sizes only). "
    "An access `w` bits wide to a memory of `C` bytes costs the memory's 8 KB 32-bit entry (`sram_8kb_32b`; "
    "`rom_32b` for the codebook ROM) x `f(C)` x `w`/32, where `f(C)` is the 64-bit reads "
    + ", ".join(f"`{name}`" for name, _ in SRAM_CAPACITY_ANCHORS)
    + " interpolated linearly in log2(`C`) and divided by the first: 1 at or below 8 KB (smaller memories "
    "are priced as 8 KB), the extension of the last segment above the largest anchor. With the shipped "
    "table (`sram_8kb_64b` = 2 x `sram_8kb_32b`) this is the 64-bit anchors x `w`/64 exactly, and 8 KB at "
    "32 bits is the flat `sram_8kb_32b`. A memory whose capacity the data do not give is priced as 8 KB.")

#: Entries the energy model reads; a user's table must define all of them.
REQUIRED_ENTRIES = ("dram_32b", "sram_8kb_32b", "rom_32b", "int8_mult", "int32_add", "zero_test",
                    "fp32_mult", "fp32_add", "control_per_cycle", *(name for name, _ in SRAM_CAPACITY_ANCHORS))

#: Keys an entry may have.
ENTRY_KEYS = frozenset({"pj", "same_as", "scale", "source", "description", "assumption"})


class EnergyTableError(VqeError):
    """The energy table is missing or invalid; the message is one line."""


@dataclass(frozen=True)
class EnergyEntry:
    """One energy value and where it comes from.

    Parameters
    ----------
    name : str
        Key in the table.
    pj : float
        Energy per event, picojoules (already resolved if derived).
    source : str
        Citation, or the reasoning behind an assumption.
    description : str
        What the event is.
    assumption : bool
        True if no published figure backs the value.
    same_as : str or None
        Entry this one is derived from, if any.
    scale : float
        Factor applied to ``same_as``.
    """
    name: str
    pj: float
    source: str
    description: str = ""
    assumption: bool = False
    same_as: str | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class EnergyTable:
    """A validated energy table.

    Parameters
    ----------
    entries : dict of str to EnergyEntry
        All entries, derived values resolved.
    path : str
        File it was read from.
    name : str
        The table's ``meta.name``, or the file name.
    """
    entries: Mapping[str, EnergyEntry]
    path: str
    name: str

    def pj(self, name: str) -> float:
        """Energy per event of entry ``name``, picojoules."""
        return self.entries[name].pj

    @property
    def assumptions(self) -> list[EnergyEntry]:
        """The entries no published figure backs, in table order."""
        return [e for e in self.entries.values() if e.assumption]


def _number(value, what: str, where: str) -> float:
    """``value`` as a finite, non-negative float, or `EnergyTableError` naming ``what`` at ``where``."""
    # bool is an int subclass in Python; "true" is not an energy.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EnergyTableError(f"{where}: {what} must be a number, got {value!r}")
    if value < 0:
        raise EnergyTableError(f"{where}: {what} must not be negative, got {value!r}")
    return float(value)


def _check_entry(key: str, body, raw: Mapping, path: Path) -> None:
    """Refuse entry ``key`` of the table at ``path`` unless it is well formed (`load_energy_table`)."""
    where = f"energy table {path}: entry '{key}'"
    if not isinstance(body, dict):
        raise EnergyTableError(f"{where}: must be a table with 'pj' and 'source'")
    unknown = set(body) - ENTRY_KEYS
    if unknown:
        raise EnergyTableError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if ("pj" in body) == ("same_as" in body):
        raise EnergyTableError(f"{where}: needs exactly one of 'pj' or 'same_as'")
    if "pj" in body:
        _number(body["pj"], "'pj'", where)
    elif body["same_as"] not in raw:
        raise EnergyTableError(f"{where}: 'same_as' names unknown entry {body['same_as']!r}")
    if "scale" in body:
        _number(body["scale"], "'scale'", where)
    source = body.get("source")
    if not isinstance(source, str) or not source.strip():
        raise EnergyTableError(f"{where}: missing 'source' (every value must say where it comes from)")
    if not isinstance(body.get("assumption", False), bool):
        raise EnergyTableError(f"{where}: 'assumption' must be true or false")


def _resolved_values(raw: Mapping, path: Path) -> dict[str, float]:
    """Picojoules of every entry, ``same_as`` chains followed; `EnergyTableError` on a cycle."""
    resolved: dict[str, float] = {}

    def resolve(key: str, chain: tuple) -> float:
        if key in resolved:
            return resolved[key]
        if key in chain:
            raise EnergyTableError(f"energy table {path}: 'same_as' cycle {' -> '.join(chain + (key,))}")
        body = raw[key]
        value = (float(body["pj"]) if "pj" in body
                 else resolve(body["same_as"], chain + (key,)) * float(body.get("scale", 1.0)))
        resolved[key] = value
        return value

    for key in raw:
        resolve(key, ())
    return resolved


def _check_capacity_anchors(pj: Mapping[str, float], path: Path) -> None:
    """Refuse capacity anchors that are zero or fall with capacity: the rule divides by the smallest
    and must not price a larger memory below a smaller one (`CAPACITY_RULE`)."""
    values = [pj[name] for name, _ in SRAM_CAPACITY_ANCHORS]
    if values[0] <= 0 or any(b < a for a, b in zip(values, values[1:])):
        listed = ", ".join(f"{name} = {pj[name]:g}" for name, _ in SRAM_CAPACITY_ANCHORS)
        raise EnergyTableError(f"energy table {path}: the SRAM capacity anchors must be positive and must not "
                               f"fall with capacity, got {listed}")


def load_energy_table(path: str | Path | None = None) -> EnergyTable:
    """Read and validate an energy table (TOML).

    Parameters
    ----------
    path : str or Path, optional
        Table file; the project's default table if omitted.

    Returns
    -------
    EnergyTable

    Raises
    ------
    EnergyTableError
        If the file is missing or unreadable, is not valid TOML, or an entry
        is missing, has a negative or non-numeric value, has no source, or
        derives from an unknown entry or in a cycle, or the SRAM capacity
        anchors are zero or fall with capacity.
    """
    path = Path(path) if path is not None else DEFAULT_TABLE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnergyTableError(f"energy table {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnergyTableError(f"energy table {path}: cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnergyTableError(f"energy table {path}: invalid TOML: {exc}") from None
    raw = doc.get("entries")
    if not isinstance(raw, dict) or not raw:
        raise EnergyTableError(f"energy table {path}: no [entries.NAME] tables")
    meta = doc.get("meta", {})
    name = meta.get("name", path.name) if isinstance(meta, dict) else path.name

    for key, body in raw.items():
        _check_entry(key, body, raw, path)
    pj = _resolved_values(raw, path)
    entries = {key: EnergyEntry(name=key, pj=pj[key], source=body["source"].strip(),
                                description=body.get("description", ""), assumption=body.get("assumption", False),
                                same_as=body.get("same_as"), scale=float(body.get("scale", 1.0)))
               for key, body in raw.items()}
    missing = [k for k in REQUIRED_ENTRIES if k not in entries]
    if missing:
        raise EnergyTableError(f"energy table {path}: missing entry(ies) {', '.join(missing)}")
    _check_capacity_anchors(pj, path)
    return EnergyTable(entries=entries, path=str(path), name=str(name))
