"""Where the report's inputs and caches live in the repository.

The programs it reports on by default (``make compress`` writes them), the
codebooks and synthesis results of the area sweep (both committed), and the
tables the experiment drivers in ``scripts/experiments`` write.
"""
from __future__ import annotations

from pathlib import Path

#: The repository's root.
REPO = Path(__file__).resolve().parents[2]

DEFAULT_PROGRAM = REPO / "build" / "lenet300.vqz"
#: Reported beside the default when present (``make`` compresses it): the PVQ scenario.
PVQ_PROGRAM = REPO / "build" / "lenet300-pvq.vqz"
#: Also reported when present: PVQ at the k-means program's bits per weight (8 lanes, K = 2/1/1),
#: for energy at equal bits.  ``vqe compress --network lenet300 --method pvq --lanes 8
#: --bits-per-weight 2 -o build/lenet300-pvq-2b.vqz``
PVQ_EQUAL_BITS_PROGRAM = REPO / "build" / "lenet300-pvq-2b.vqz"
#: Also reported when present (``make`` compresses them): Deep Compression, and the two
#: networks on the universal ROM.
DEEPCOMP_PROGRAM = REPO / "build" / "lenet300-deepcomp.vqz"
UNIVERSAL_PROGRAMS = (REPO / "build" / "lenet300-universal.vqz", REPO / "build" / "lenet5-universal.vqz")
#: Also reported when present (``make reports`` compresses them): the convolutional networks, whole on the
#: engine, with k-means and with the universal codebook (LeNet-5's universal program is in `UNIVERSAL_PROGRAMS`).
CONV_PROGRAMS = tuple(REPO / "build" / f"{name}.vqz" for name in (
    "lenet5-kmeans", "rnet-kmeans", "rnet-universal", "onet-kmeans", "onet-universal", "crepe-tiny-kmeans",
    "crepe-tiny-universal"))
#: Programs reported by default, those after the first only if they exist.
DEFAULT_PROGRAMS = (DEFAULT_PROGRAM, PVQ_PROGRAM, PVQ_EQUAL_BITS_PROGRAM, DEEPCOMP_PROGRAM, *UNIVERSAL_PROGRAMS,
                    *CONV_PROGRAMS)

#: Codebooks the area sweep elaborates the engine with (one per lanes x depth).
SWEEP_ROMS = REPO / "reports" / "area-roms.npz"
#: Synthesis results, keyed by Verilog text and tool versions; committed.
AREA_CACHE = REPO / "reports" / "area-cache"

#: Accuracy of PVQ against k-means VQ at equal bits (python -m scripts.experiments.pvq).
PVQ_TABLE = REPO / "reports" / "pvq_table.json"
#: The same on every zoo network, model level (python -m scripts.experiments.pvq --zoo).
PVQ_ZOO = REPO / "reports" / "pvq_zoo.json"
#: The model-level comparison table (``python -m scripts.experiments.universal``), linked from the report.
UNIVERSAL_TABLE_MD = REPO / "reports" / "universal_table.md"
