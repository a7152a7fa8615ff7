"""Importers: steplab trial files, C3D (real c3d.org sample10 files) and CSV/TSV of forces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import shared_real_data

from steplab.acquisition.rig import default_rig
from steplab.acquisition.trial_file import Trial, write_trial
from steplab.records.importers import (
    DEFAULT_ROLES,
    ForceImportError,
    load_forces,
    plate_cop_mm,
)


def real(*parts: str) -> Path:
    p = shared_real_data().joinpath(*parts)
    if not p.exists():
        pytest.fail(f"shared real data missing: {p} (the shared folder must sit beside the repository)")
    return p


# -- C3D -------------------------------------------------------------------------------

def test_c3d_type2_and_type4_give_nearly_the_same_forces():
    t2 = load_forces(real("c3d_sample10", "TYPE-2.C3D"))
    t4 = load_forces(real("c3d_sample10", "TYPE-4.C3D"))
    for t in (t2, t4):
        assert t.source_format == "c3d"
        assert t.rate_hz == pytest.approx(1200.0)
        assert list(t.plates) == ["floor_left"]  # one plate -> the documented default role
        assert t.n_samples == 3980
    a, b = t2.plates["floor_left"].fz_n, t4.plates["floor_left"].fz_n
    peak = a.max()
    assert 300.0 < peak < 500.0 and b.max() > 300.0  # a person's foot, positive under load
    # the full calibration matrix only adds cross-talk corrections: within a few % of the peak
    assert np.max(np.abs(a - b)) < 0.03 * peak
    assert np.sqrt(np.mean((a - b) ** 2)) < 0.01 * peak
    assert np.corrcoef(a, b)[0, 1] > 0.999
    assert t2.provenance_extra["c3d_plate_types"] == [2]
    assert t4.provenance_extra["c3d_plate_types"] == [4]


def _without_zero(src: Path, dst: Path) -> Path:
    """A copy of a C3D file whose FORCE_PLATFORM:ZERO names no frames (ezc3d applies no baseline)."""
    import ezc3d

    c = ezc3d.c3d(str(src))
    c["parameters"]["FORCE_PLATFORM"]["ZERO"]["value"] = np.array([0, 0])
    c.write(str(dst))
    return dst


def test_c3d_cop_nan_when_unloaded_and_inside_plate_when_loaded(tmp_path):
    import ezc3d

    path = _without_zero(real("c3d_sample10", "TYPE-4.C3D"), tmp_path / "type4_nozero.c3d")
    t = load_forces(path)
    assert "c3d_zero" not in t.provenance_extra
    pf = t.plates["floor_left"]
    cop = plate_cop_mm(pf, cop_min_force_n=20.0)
    unloaded = pf.fz_n < 20.0
    assert unloaded.sum() > 100 and (~unloaded).sum() > 100
    assert np.all(np.isnan(cop[unloaded]))
    assert np.all(np.isfinite(cop[~unloaded]))
    # ezc3d's own COP blows up on the unloaded plate; ours never does
    raw = ezc3d.c3d(str(path), extract_forceplat_data=True)["data"]["platform"][0]
    assert np.nanmax(np.abs(raw["center_of_pressure"])) > 1e4
    # loaded: inside the 464 x 508 mm plate, and equal to ezc3d's COP about the plate centre
    corners = raw["corners"]
    assert np.all(np.abs(cop[~unloaded, 0]) <= 464.0 / 2) and np.all(np.abs(cop[~unloaded, 1]) <= 508.0 / 2)
    centre = corners.mean(axis=1)
    ez = raw["center_of_pressure"][:2, ~unloaded].T - centre[:2]
    np.testing.assert_allclose(cop[~unloaded], ez, atol=0.1)  # the plate is tilted by ~0.2°


def test_cop_docstring_names_the_axes_the_values_are_in():
    """Defect 10 of issue 12: the COP of a C3D is in lab axes, never in the plate's own frame."""
    doc = " ".join((plate_cop_mm.__doc__ or "").split())
    assert "plate frame" not in doc
    assert "lab's horizontal axes" in doc and "lab_vertical_axis" in doc


def test_c3d_errors(tmp_path):
    bad = tmp_path / "broken.c3d"
    bad.write_bytes(b"\x02\x50" + b"\x00" * 300)
    with pytest.raises(ForceImportError, match="broken.c3d"):
        load_forces(bad)
    with pytest.raises(ForceImportError, match="contradicts"):
        load_forces(real("c3d_sample10", "TYPE-2.C3D"), rate_hz=1000.0)
    with pytest.raises(ForceImportError, match="names 2 plates"):
        load_forces(real("c3d_sample10", "TYPE-2.C3D"), plates="floor_left,floor_right")
    t = load_forces(real("c3d_sample10", "TYPE-2.C3D"), plates="floor_right", rate_hz=1200.0)
    assert list(t.plates) == ["floor_right"]


# -- CSV / TSV --------------------------------------------------------------------------

def test_real_dual_plate_tsv():
    path = real("dual_plate_jumps", "Dual-CMJ-Fz.txt")
    t = load_forces(path, rate_hz=1000.0)
    assert t.source_format == "csv" and t.rate_hz == 1000.0
    assert list(t.plates) == list(DEFAULT_ROLES[2])
    # independent parse of the file: header FP1 FP2, tab separated
    ref = np.loadtxt(path, skiprows=1, delimiter="\t")
    assert t.n_samples == ref.shape[0] == 5000
    np.testing.assert_array_equal(t.plates["floor_left"].fz_n, ref[:, 0])
    np.testing.assert_array_equal(t.plates["floor_right"].fz_n, ref[:, 1])
    assert t.plates["floor_left"].mx_nm is None
    with pytest.raises(ForceImportError, match="--rate"):
        load_forces(path)


def test_csv_time_column_cells_and_moments(tmp_path):
    n, rate = 50, 500.0
    t = np.arange(n) / rate
    f = np.linspace(100.0, 200.0, n)
    p = tmp_path / "cells.csv"
    cols = [t] + [f * (k + 1) for k in range(6)]
    np.savetxt(p, np.column_stack(cols), delimiter=",", header="time_s,a1,a2,a3,b1,b2,b3", comments="")
    lt = load_forces(p, plates="floor_left,floor_right")
    assert lt.rate_hz == pytest.approx(rate)
    np.testing.assert_allclose(lt.plates["floor_left"].fz_n, f * 6)      # 1 + 2 + 3
    np.testing.assert_allclose(lt.plates["floor_right"].fz_n, f * 15)    # 4 + 5 + 6
    with pytest.raises(ForceImportError, match="--plates"):
        load_forces(p)  # 6 columns: which plates?
    with pytest.raises(ForceImportError, match="contradicts"):
        load_forces(p, plates="floor_left,floor_right", rate_hz=1000.0)
    # one force column with its moments (N·mm) and a time in ms; COP = (-My/Fz, Mx/Fz)
    q = tmp_path / "plate.tsv"
    fz = np.full(n, 400.0)
    np.savetxt(q, np.column_stack([t * 1000.0, fz, fz * 0.05 * 1000.0, -fz * -0.02 * 1000.0]),
               delimiter="\t", header="time_ms\tFz\tMx_Nmm\tMy_Nmm", comments="")
    lq = load_forces(q)
    assert lq.rate_hz == pytest.approx(rate)
    cop = plate_cop_mm(lq.plates["floor_left"])
    np.testing.assert_allclose(cop, np.tile([-20.0, 50.0], (n, 1)))


def test_text_errors(tmp_path):
    def write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return p

    cases = [
        (write("empty.csv", ""), "empty"),
        (write("header_only.csv", "FP1,FP2\n"), "no data rows"),
        (write("one.csv", "FP1,FP2\n1.0,2.0\n"), "at least 2 samples"),
        (write("nan.csv", "FP1,FP2\n1.0,2.0\nnan,3.0\n"), "NaN or inf"),
        (write("inf.tsv", "1.0\t2.0\n3.0\tinf\n"), "NaN or inf"),
        (write("ragged.csv", "FP1,FP2\n1.0,2.0\n3.0\n"), "line 3 has 1 columns"),
        (write("words.csv", "FP1,FP2\n1.0,2.0\nabc,3.0\n"), "not a number"),
        (write("data.xyz", "1,2\n3,4\n"), "unknown file type"),
    ]
    for path, msg in cases:
        with pytest.raises(ForceImportError, match=msg) as exc:
            load_forces(path, rate_hz=1000.0)
        assert "\n" not in str(exc.value)
    ok = write("ok.csv", "1.0,2.0\n3.0,4.0\n")
    for bad_rate in (0.0, -5.0, float("nan"), "fast"):
        with pytest.raises(ForceImportError, match="--rate"):
            load_forces(ok, rate_hz=bad_rate)
    with pytest.raises(ForceImportError, match="no such file"):
        load_forces(tmp_path / "missing.csv")
    with pytest.raises(ForceImportError, match="unknown role"):
        load_forces(ok, rate_hz=100.0, plates="left,right")
    with pytest.raises(ForceImportError, match="not a steplab trial"):
        load_forces(write("fake.steplab", "hello"))


# -- steplab trial files --------------------------------------------------------------

def _trial_from_loads(rig, loads_n, sample_index, rate):
    counts = np.zeros((sample_index.shape[0], rig.channels), dtype=np.int32)
    for plate in rig.plates:
        for k, cell in enumerate(plate.cells):
            counts[:, cell.channel] = np.rint(loads_n[plate.role][:, k] * cell.nominal_counts_per_n).astype(np.int32)
    return Trial(counts=counts, sample_index=sample_index, sample_rate_hz=rate, rig=rig,
                 meta={"quality": {"lost_samples": 0, "crc_errors": 2, "gaps": []}, "calibration": None})


def test_trial_file_nominal_calibration(tmp_path):
    rig = default_rig()
    n = 400
    # floor_left: 600 N at (x, y) = (+50, -100) mm split over its corner cells by the lever rule
    fl = rig.plate("floor_left")
    xs = np.array([c.x_mm for c in fl.cells])
    ys = np.array([c.y_mm for c in fl.cells])
    x0, y0, f0 = 50.0, -100.0, 600.0
    wx = 0.5 + x0 * np.sign(xs) / (2 * np.abs(xs))
    wy = 0.5 + y0 * np.sign(ys) / (2 * np.abs(ys))
    share = wx * wy
    loads = {"box": np.full((n, 4), 100.0), "floor_left": np.tile(f0 * share, (n, 1)),
             "floor_right": np.zeros((n, 4))}
    trial = _trial_from_loads(rig, {k: np.asarray(v, dtype=float) for k, v in loads.items()},
                              np.arange(n, dtype=np.int64), 1000.0)
    path = write_trial(tmp_path / "t.steplab", trial)
    lt = load_forces(path)
    assert lt.source_format == "steplab-trial" and lt.rate_hz == 1000.0
    assert set(lt.plates) == {"box", "floor_left", "floor_right"}
    assert lt.calibration is not None and lt.calibration.calibration_id == "nominal"
    assert lt.counts.shape == (n, 12) and lt.counts.dtype == np.int32
    np.testing.assert_allclose(lt.plates["box"].fz_n, 400.0, atol=1e-3)
    np.testing.assert_allclose(lt.plates["floor_left"].fz_n, f0, atol=1e-3)
    cop = plate_cop_mm(lt.plates["floor_left"])
    np.testing.assert_allclose(cop, np.tile([x0, y0], (n, 1)), atol=0.01)
    assert np.all(np.isnan(plate_cop_mm(lt.plates["floor_right"])))
    assert lt.provenance_extra["crc_errors"] == 2
    assert lt.provenance_extra["rig_hash"] == rig.hash()
    with pytest.raises(ForceImportError, match="contradicts"):
        load_forces(path, rate_hz=500.0)


def test_trial_file_gaps_are_interpolated(tmp_path):
    rig = default_rig()
    n = 300
    ramp = np.linspace(0.0, 300.0, n)[:, None] * np.ones((1, 4))
    loads = {"box": ramp, "floor_left": np.zeros((n, 4)), "floor_right": np.zeros((n, 4))}
    keep = np.ones(n, dtype=bool)
    keep[100:110] = False  # 10 lost samples
    trial = _trial_from_loads(rig, loads, np.arange(n, dtype=np.int64), 1000.0)
    trial = Trial(trial.counts[keep], trial.sample_index[keep], 1000.0, rig,
                  {"quality": {"lost_samples": 10, "crc_errors": 0, "gaps": [{"at_sample": 100, "length": 10}]}})
    lt = load_forces(write_trial(tmp_path / "gaps.steplab", trial))
    assert lt.n_samples == n
    assert lt.provenance_extra["lost_samples"] == 10 and lt.provenance_extra["interpolated_samples"] == 10
    np.testing.assert_allclose(lt.plates["box"].fz_n, ramp.sum(axis=1), atol=1e-3)
