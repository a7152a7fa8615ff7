"""A split box top (box_left + box_right) is one box for the analysis, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.acquisition.rig import split_box_rig
from steplab.calibration.apply import calibrated_forces
from steplab.calibration.arrays import nominal_calibration
from steplab.calibration.geometry import merge_plates


def _point_load_counts(rig, plate_name, x_mm, y_mm, fz_n):
    """Counts of a rigid plate under a point load (bilinear split over its four corner cells)."""
    plate = rig.plate(plate_name)
    counts = np.zeros((1, rig.channels), np.int32)
    xs = np.array([c.x_mm for c in plate.cells])
    ys = np.array([c.y_mm for c in plate.cells])
    hx, hy = xs.max(), ys.max()
    for c, x, y in zip(plate.cells, xs, ys):
        share = (0.5 + 0.5 * np.sign(x) * x_mm / hx) * (0.5 + 0.5 * np.sign(y) * y_mm / hy)
        counts[0, c.channel] = int(round(fz_n * share * c.nominal_counts_per_n))
    return counts


@pytest.mark.parametrize("part, x_mm, y_mm", [("box_left", 30.0, -50.0), ("box_right", -80.0, 120.0)])
def test_merged_box_force_and_cop_are_those_of_the_load(part, x_mm, y_mm):
    rig = split_box_rig()
    cal = nominal_calibration(rig)
    merged = merge_plates(cal, rig)
    assert merged.plate_roles == ("box", "floor_left", "floor_right")
    assert merged.calibration_hash == cal.calibration_hash  # the same calibration, laid out differently
    counts = _point_load_counts(rig, part, x_mm, y_mm, 700.0)
    f = calibrated_forces(counts, merged)["box"]
    assert f.fz_n[0] == pytest.approx(700.0, abs=0.01)
    # the load's position relative to the merged box centre (the parts' common centre)
    centre = np.mean([rig.plate(p).centre_mm[:2] for p in ("box_left", "box_right")], axis=0)
    px, py = np.array(rig.plate(part).centre_mm[:2]) + [x_mm, y_mm] - centre
    cop_x = -1000.0 * f.my_nm[0] / f.fz_n[0]
    cop_y = 1000.0 * f.mx_nm[0] / f.fz_n[0]
    assert cop_x == pytest.approx(px, abs=0.05) and cop_y == pytest.approx(py, abs=0.05)


def test_both_halves_loaded_sum_and_floor_plates_are_untouched():
    rig = split_box_rig()
    cal = nominal_calibration(rig)
    merged = merge_plates(cal, rig)
    counts = _point_load_counts(rig, "box_left", 0, 0, 300.0) + _point_load_counts(rig, "box_right", 0, 0, 400.0) \
        + _point_load_counts(rig, "floor_left", 10, 20, 250.0)
    parts = calibrated_forces(counts, cal)
    whole = calibrated_forces(counts, merged)
    assert whole["box"].fz_n[0] == pytest.approx(parts["box_left"].fz_n[0] + parts["box_right"].fz_n[0])
    for p in ("floor_left", "floor_right"):
        np.testing.assert_allclose(whole[p].fz_n, parts[p].fz_n)
        np.testing.assert_allclose(whole[p].mx_nm, parts[p].mx_nm)


def test_a_split_box_force_file_is_analysed_as_one_box(tmp_path):
    from steplab.records.importers import ForceImportError, load_forces

    t = np.arange(2000) / 1000.0
    data = np.column_stack([t, np.full(2000, 300.0), np.full(2000, 386.0), np.zeros(2000), np.zeros(2000)])
    f = tmp_path / "split.csv"
    np.savetxt(f, data, delimiter=",", header="time,bl,br,fl,fr", comments="")
    loaded = load_forces(f, plates="box_left,box_right,floor_left,floor_right")
    assert list(loaded.plates) == ["box", "floor_left", "floor_right"]
    np.testing.assert_allclose(loaded.plates["box"].fz_n, 686.0)
    assert loaded.provenance_extra["merged_plates"] == {"box": ["box_left", "box_right"]}
    with pytest.raises(ForceImportError, match="both box_left and box_right"):
        load_forces(f, plates="box_left,box,floor_left,floor_right")
