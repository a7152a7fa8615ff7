"""records/import_text.py: CSV/TSV exports of other labs (issue 12): force components, absurd values, flags."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import steplab_cmd

from steplab.records.importers import ForceImportError, load_forces, plate_cop_mm

RATE = 1000.0


def _landing(n: int = 3000, seed: int = 0) -> np.ndarray:
    """Vertical force [N] of a landing: unloaded, a 0.2 s half-sine to 1800 N, a 700 N plateau; 1 N noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    f = np.where(t >= 1.2, 700.0, 0.0)
    pulse = (t >= 1.0) & (t < 1.2)
    f[pulse] = 1800.0 * np.sin(np.pi * (t[pulse] - 1.0) / 0.2) + 700.0 * (t[pulse] - 1.0) / 0.2
    return f + rng.normal(0.0, 1.0, n)


def _write(path, header: list[str], cols: list[np.ndarray], delimiter: str = ",") -> None:
    np.savetxt(path, np.column_stack(cols), delimiter=delimiter, header=delimiter.join(header), comments="",
               fmt="%.6f")


# -- defect 2: shear columns are not plates ---------------------------------------------------------

def test_fx_fy_fz_is_one_plate_of_vertical_force(tmp_path):
    fz = _landing()
    n = fz.size
    t = np.arange(n) / RATE
    fx, fy = 0.08 * fz, -0.05 * fz
    p = tmp_path / "dj.csv"
    _write(p, ["time", "Fx", "Fy", "Fz"], [t, fx, fy, fz])
    lt = load_forces(p)
    assert list(lt.plates) == ["floor_left"]
    np.testing.assert_allclose(lt.plates["floor_left"].fz_n, np.round(fz, 6), atol=1e-6)
    assert lt.provenance_extra["shear_columns_ignored"] == ["Fx", "Fy"]
    assert lt.provenance_extra["vertical_columns"] == ["Fz"]
    lt = load_forces(p, plates="floor_left")  # the old code summed Fx + Fy + Fz here
    np.testing.assert_allclose(lt.plates["floor_left"].fz_n, np.round(fz, 6), atol=1e-6)


@pytest.mark.parametrize("template, order", [
    ("FP{p}_F{c}", "xyz"),
    ("F{c}{p}", "xyz"),
    ("Force.F{c}{p}", "xyz"),
    ("F{c}_{side} [N]", "xyz"),
    ("fp{p} f{c} (N)", "zyx"),
    ("{side}_F{c}", "zxy"),
])
def test_plate_prefixes_and_suffixes(tmp_path, template, order):
    a, b = _landing(seed=1), 0.6 * _landing(seed=2)
    names, data = [], []
    for plate, side, f in ((1, "left", a), (2, "right", b)):
        for c in order:
            names.append(template.format(p=plate, c=c, side=side))
            data.append(f if c == "z" else 0.1 * f)
    p = tmp_path / "two.tsv"
    _write(p, ["t"] + names, [np.arange(a.size) / RATE] + data, delimiter="\t")
    lt = load_forces(p)
    assert list(lt.plates) == ["floor_left", "floor_right"]
    np.testing.assert_allclose(lt.plates["floor_left"].fz_n, np.round(a, 6), atol=1e-6)
    np.testing.assert_allclose(lt.plates["floor_right"].fz_n, np.round(b, 6), atol=1e-6)
    assert len(lt.provenance_extra["shear_columns_ignored"]) == 4


def test_vicon_force_and_moment_columns_give_the_cop(tmp_path):
    fz = _landing(seed=3)
    x0, y0 = 30.0, -45.0  # mm
    mx, my = fz * y0 / 1000.0, -fz * x0 / 1000.0  # N·m about the centre: x = −My/Fz, y = Mx/Fz
    p = tmp_path / "vicon.csv"
    _write(p, ["Frame", "Force.Fx1", "Force.Fy1", "Force.Fz1", "Moment.Mx1", "Moment.My1", "Moment.Mz1"],
           [np.arange(fz.size), 0 * fz, 0 * fz, fz, mx, my, 0 * fz])
    lt = load_forces(p, rate_hz=RATE)
    pf = lt.plates["floor_left"]
    cop = plate_cop_mm(pf)
    loaded = pf.fz_n > 100.0
    np.testing.assert_allclose(cop[loaded], np.tile([x0, y0], (int(loaded.sum()), 1)), atol=0.05)
    assert lt.provenance_extra["ignored_columns"] == ["Moment.Mz1"]


def test_push_stored_negative_is_turned_into_the_reaction(tmp_path):
    fz = _landing(seed=4)
    p = tmp_path / "kistler.csv"
    _write(p, ["time", "Fz"], [np.arange(fz.size) / RATE, -fz])
    lt = load_forces(p)
    np.testing.assert_allclose(lt.plates["floor_left"].fz_n, np.round(fz, 6), atol=1e-6)
    assert lt.provenance_extra["negated_plates"] == ["floor_left"]


@pytest.mark.parametrize("header, words", [
    (["time", "Fx", "Fy"], "plate .* has no vertical force column Fz"),
    (["time", "Fz", "COPx_note", "Temp"], "column 'Temp' is neither time"),
    (["time", "Fx12", "Fx34", "Fz1"], "Kistler plate's sensor channels"),
    (["time", "Fz", "Fz"], "same force component"),
])
def test_component_files_that_do_not_fit_are_named(tmp_path, header, words):
    p = tmp_path / "bad.csv"
    _write(p, header, [np.arange(10) / RATE] + [np.full(10, 100.0)] * (len(header) - 1))
    with pytest.raises(ForceImportError, match=words):
        load_forces(p)


def test_plain_columns_keep_their_meaning(tmp_path):
    """Headers without component names (FP1, FP2 or cells) are read as before: one column per plate or cell."""
    a, b = _landing(seed=5), _landing(seed=6)
    p = tmp_path / "plain.csv"
    _write(p, ["time", "FP1", "FP2"], [np.arange(a.size) / RATE, a, b])
    lt = load_forces(p)
    assert "shear_columns_ignored" not in lt.provenance_extra
    np.testing.assert_allclose(lt.plates["floor_right"].fz_n, np.round(b, 6), atol=1e-6)


# -- absurd values: refused, never a warning ---------------------------------------------------------

@pytest.mark.parametrize("value", ["1e308", "-1e308", "4e4", "1.7976931348623157e308"])
def test_absurd_value_is_one_line_error(tmp_path, value):
    p = tmp_path / "huge.csv"
    rows = ["time,FP1,FP2"] + [f"{i / 1000:.3f},700.0,650.0" for i in range(50)]
    rows[20] = f"0.019,{value},650.0"
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(ForceImportError, match=r"huge.csv: line 21 column 'FP1' holds .* beyond any force plate"):
        load_forces(p)
    r = subprocess.run(steplab_cmd("analyze", str(p), "--protocol", "balance", "--json"), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Warning" not in r.stderr


def test_absurd_cells_and_times_are_refused(tmp_path):
    p = tmp_path / "cells.csv"
    rows = ["a1,a2"] + ["20000.0,20000.0"] * 10  # each cell possible, their sum is not
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(ForceImportError, match="sum of its cells of 4e\\+04 N is beyond"):
        load_forces(p, rate_hz=RATE, plates="floor_left")
    q = tmp_path / "time.csv"
    q.write_text("time,FP1\n0.0,1.0\n1e308,2.0\n")
    with pytest.raises(ForceImportError, match="column 'time' holds 1e\\+308"):
        load_forces(q)


@pytest.mark.parametrize("steps", ["0,5e-324,1e-323", "0,1e-7,2e-7", "0,2,4"])
def test_time_steps_outside_any_rate_are_refused_without_a_warning(tmp_path, steps):
    p = tmp_path / "steps.csv"
    p.write_text("time,Fz\n" + "".join(f"{t},700\n" for t in steps.split(",")))
    with pytest.raises(ForceImportError, match="steps.csv: time column 'time' steps by .* outside 1..100000 Hz"):
        load_forces(p)  # filterwarnings = error: a division overflow would fail here


# -- plausibility flags ------------------------------------------------------------------------------------

def test_flat_top_is_saturation(tmp_path):
    fz = np.minimum(_landing(seed=7), 1500.0)  # the converter clips at 1500 N for 68 ms
    p = tmp_path / "clip.csv"
    _write(p, ["time", "Fz"], [np.arange(fz.size) / RATE, fz])
    lt = load_forces(p)
    assert lt.provenance_extra["saturated_samples"] == int(np.sum(fz >= 1500.0)) > 40
    q = tmp_path / "fine.csv"
    _write(q, ["time", "Fz"], [np.arange(fz.size) / RATE, _landing(seed=7)])
    assert "saturated_samples" not in load_forces(q).provenance_extra


def test_cop_far_off_is_flagged(tmp_path):
    fz = _landing(seed=8)
    p = tmp_path / "cop.csv"
    _write(p, ["time", "Fz", "Mx", "My"], [np.arange(fz.size) / RATE, fz, fz * 13.9, 0 * fz])  # y = 13.9 m
    lt = load_forces(p)
    assert "cop_outside_plate" in lt.provenance_extra["flags"]


def test_walkway_columns_left_out(tmp_path):
    a, b = _landing(seed=9), _landing(seed=10)
    z = np.zeros_like(a)
    p = tmp_path / "walk.csv"
    _write(p, ["time", "FP1", "FP2", "FP3", "FP4"], [np.arange(a.size) / RATE, z, a, b, z])
    with pytest.raises(ForceImportError, match="--plates"):
        load_forces(p)
    lt = load_forces(p, plates="-,floor_left,floor_right,-")
    assert list(lt.plates) == ["floor_left", "floor_right"]
    np.testing.assert_allclose(lt.plates["floor_left"].fz_n, np.round(a, 6), atol=1e-6)
    assert lt.provenance_extra["ignored_plates"] == [1, 4]
    with pytest.raises(ForceImportError, match="leaves every plate out"):
        load_forces(p, plates="-,-,-,-")


def test_smooth_peak_stored_in_whole_newtons_is_not_saturation(tmp_path):
    """A filtered export rounded to 1 N holds a slow squat's peak for ~20 ms: a step of 1 N, not a clip."""
    t = np.arange(4000) / RATE
    f = np.round(700.0 + 200.0 * np.sin(2 * np.pi * 0.5 * t), 0)
    top = f == f.max()
    assert top.sum() > 15  # the peak sits at one value for longer than 10 ms
    p = tmp_path / "squat.csv"
    np.savetxt(p, np.column_stack([t, f]), delimiter=",", header="time,Fz", comments="", fmt="%.3f")
    assert "saturated_samples" not in load_forces(p).provenance_extra
