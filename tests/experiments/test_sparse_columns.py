"""The column-wise sparse mode's cycle model (scripts/experiments/sparse_columns.py): hand-traced cases and bounds."""
from __future__ import annotations

import numpy as np
import pytest

from scripts.experiments.sparse_columns import (Point, column_work, layer_cycles, measure, output_cycles,
                                                slot_of_rows)

# Row 0 holds columns 0 and 1, row 1 columns 1, 2 and 3.
MASK = np.array([[1, 1, 0, 0], [0, 1, 1, 1]], dtype=bool)
X = np.array([5, -2, 0, 7])   # column 2's activation is zero


def cycles_of(mask, x, point, lanes):
    return layer_cycles(column_work(mask, point), x, point, lanes)


def test_interleaved_trace():
    """Two slots, two lanes.  Cycle 1 scans lane-word 0 and forwards column 0 (slot 0 multiplies; slot 1 holds no
    entry of it); cycle 2 forwards column 1 (both multiply); cycle 3 scans lane-word 1 and forwards column 3 (slot 1
    multiplies).  Three cycles, though the four MACs would take two: the scanner forwards one column a cycle."""
    slot = slot_of_rows(MASK, 2, "interleaved")
    assert slot.tolist() == [0, 1]
    assert cycles_of(MASK, X, Point("interleaved", 2, 16), lanes=2) == 3


def test_a_column_with_no_entry_costs_a_cycle_without_a_pointer_stage_ahead():
    """Rows 0 and 2 (slot 0) hold columns 0 and 3, row 1 (slot 1) columns 1 and 2; one lane-word.  Slot 0 multiplies
    column 0 in cycles 1-2 and column 3 in cycles 4-5, when it is forwarded: 5 cycles.  Charging a cycle for each
    column a slot holds nothing of, slot 0 spends cycles 3 and 4 on columns 1 and 2 and column 3 takes 5-6."""
    mask = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 0, 1]], dtype=bool)
    x = np.ones(4)
    assert cycles_of(mask, x, Point("interleaved", 2, 16), lanes=4) == 5
    assert cycles_of(mask, x, Point("interleaved", 2, 16, empty_cost=1), lanes=4) == 6


def test_dispatch_trace():
    """Column dispatch: slot 0 takes column 0 (1 entry, cycle 1) then column 1 (2 entries, cycles 2-3); slot 1 takes
    column 3 as it is forwarded in cycle 3."""
    assert cycles_of(MASK, X, Point("dispatch", 2, 16), lanes=2) == 3


def test_no_activation_costs_the_scan():
    mask = np.ones((3, 10), dtype=bool)
    for design in ("interleaved", "balanced", "dispatch"):
        assert cycles_of(mask, np.zeros(10), Point(design, 2, 4), lanes=4) == 3   # three lane-words


def test_balanced_rows_level_the_stored_weights():
    mask = np.zeros((4, 8), dtype=bool)
    for r, n in enumerate((8, 1, 7, 2)):
        mask[r, :n] = True
    assert slot_of_rows(mask, 2, "interleaved").tolist() == [0, 1, 0, 1]   # 15 against 3 weights
    slot = slot_of_rows(mask, 2, "balanced")
    assert sorted(int(mask[slot == s].sum()) for s in range(2)) == [9, 9]


@pytest.mark.parametrize("design", ["interleaved", "balanced", "dispatch"])
@pytest.mark.parametrize("queue", [1, 3, 16])
def test_random_layers_respect_the_bounds(design, queue):
    """No design beats its slots' busiest work, the MACs over the slots, or the scan; the queue only slows it."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        out, n_in, slots, lanes = rng.integers(1, 12), rng.integers(1, 30), rng.integers(1, 5), rng.choice([2, 4])
        mask = rng.random((out, n_in)) < 0.4
        x = np.where(rng.random(n_in) < 0.5, rng.integers(-5, 6, n_in), 0)
        slot = slot_of_rows(mask, slots, design)
        cycles = cycles_of(mask, x, Point(design, slots, queue), lanes)
        active = x != 0
        macs = int(mask[:, active].sum())
        words = -(-n_in // lanes)
        assert cycles >= max(words, -(-macs // slots))
        if design != "dispatch":
            assert cycles >= max(int(mask[slot == s][:, active].sum()) for s in range(slots))
        assert cycles <= cycles_of(mask, x, Point(design, slots, 1), lanes)
        assert cycles >= cycles_of(mask, x, Point(design, slots, 1000), lanes)


def test_measure_counts_useful_macs_and_utilization():
    """Two images through one layer: MACs are the non-zero weights meeting non-zero activations; utilization is
    MACs / (cycles x slots), with the output phase (one row a cycle: two) and the control cycles added."""
    acts = [np.array([X, np.zeros(4)])]
    row = measure([MASK], acts, Point("interleaved", 2, 16), lanes=2, control_cycles=10)
    assert row["macs_per_image"] == 2.0   # image 0: 4 MACs, image 1: none
    # Image 0: 3 cycles; image 1: the 2 lane-words scanned.
    assert row["compute_cycles_per_layer"] == [2.5]
    assert row["utilization_rows"] == pytest.approx(2.0 / ((2.5 + 2) * 2), abs=1e-4)
    assert row["utilization_lane-words"] == pytest.approx(2.0 / ((2.5 + 1) * 2), abs=1e-4)
    assert row["utilization_overlapped_with_control"] == pytest.approx(2.0 / ((2.5 + 1 + 10) * 2), abs=1e-4)


def test_output_phases():
    assert output_cycles(300, 4, "rows", last=False) == 300
    assert output_cycles(300, 4, "lane-words", last=False) == 75
    assert output_cycles(300, 4, "overlapped", last=False) == 0
    assert output_cycles(10, 4, "overlapped", last=True) == 3


def test_the_report_section_takes_each_designs_best_point_and_todays_measurement():
    from sim.report.sections.experiments import sparse_columns_lines

    def row(design, queue, overlapped):
        return {"design": design, "slots": 4, "queue": queue, "scan_rate": 1, "utilization_overlapped": overlapped,
                "utilization_overlapped_with_control": overlapped / 2, "control_budget_overlapped": 100.0 * overlapped}
    data = {"network": "lenet300", "lanes": 4, "images": 3, "aim": 0.8, "control_cycles": 360,
            "rows": [row("interleaved", 16, 0.5), row("interleaved", 64, 0.6), row("dispatch", 16, 0.9)]}
    pes = {"rows": [{"network": "lenet300", "method": "deepcomp", "lanes": 4, "pes": 1, "cycles_per_inference": 1000,
                     "macs_per_inference": 200},
                    {"network": "lenet300", "method": "kmeans", "lanes": 4, "pes": 1, "cycles_per_inference": 10,
                     "macs_per_inference": 40}]}
    lines = sparse_columns_lines(data, pes)
    table = [line for line in lines if line.startswith("| 4 |")]
    assert table == ["| 4 | 0.050 | 0.600 / 0.300 [60] (queue 64, scan 1) | 0.900 / 0.450 [90] (queue 16, scan 1) |"]
    assert sparse_columns_lines(None)[-2].startswith("Not run")


def test_rtl_block_is_checked_and_counts_useful_macs():
    """The RTL block on small random layers: its sums pass both checks, and its MACs are the useful ones."""
    from scripts.experiments.sparse_columns import rtl_block
    rng = np.random.default_rng(4)
    weights = [rng.integers(-3, 4, size=(10, 16)) * (rng.random((10, 16)) < 0.4),
               rng.integers(-3, 4, size=(6, 10)) * (rng.random((6, 10)) < 0.6)]
    acts = [rng.integers(-5, 6, size=(3, 16)) * (rng.random((3, 16)) < 0.6),
            rng.integers(0, 6, size=(3, 12))]
    got = rtl_block(weights, acts, slots=2, lanes=4, queue=4, images=2)
    useful = sum(int(((w != 0) & (a[i, :w.shape[1]] != 0)).sum()) for i in range(2) for w, a in zip(weights, acts))
    assert got["macs_per_image"] == useful / 2
    assert got["utilization"] == round(useful / 2 / (got["cycles_per_image"] * 2), 4)
    assert 0 < got["utilization"] <= 1
    assert len(got["cycles_per_layer"]) == 2
