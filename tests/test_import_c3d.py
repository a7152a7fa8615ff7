"""records/import_c3d.py: other labs' C3D files (issue 12).

Every fixture is a C3D file written here with ezc3d from a known loading (the drop
landing of tests/test_c3d_types.py), then changed the way another lab's file differs:
a y-up or x-up lab, an analog-only export, other unit spellings, a ZERO baseline, a
cut or garbled file, saturated plates, a COP off the plate, degenerate CORNERS.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import ezc3d
import numpy as np
import pytest
from conftest import steplab_cmd
from test_c3d_types import BW_N, RATE_HZ, check_plates, one_plate, two_plates, write_c3d

from steplab.records import import_c3d
from steplab.records.importers import ForceImportError, load_forces, plate_cop_mm

# lab rotations taking a z-up lab to another lab's axes (vector in the z-up lab → the same vector there)
Z_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # x → X, y → −Z, z → Y
Z_TO_X_UP = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # z → X


def relabel(src: Path, dst: Path, **changes) -> Path:
    """A copy of ``src`` through ezc3d with parameters replaced: GROUP_NAME=value."""
    c = ezc3d.c3d(str(src))
    for key, value in changes.items():
        group, name = key.split("__")
        c["parameters"][group][name]["value"] = value
    c.write(str(dst))
    return dst


def rotated_lab(src: Path, dst: Path, rot: np.ndarray) -> Path:
    """The same trial surveyed in a lab with other axes: only the CORNERS (lab coordinates) change."""
    c = ezc3d.c3d(str(src))
    corners = np.asarray(c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"], dtype=float)
    c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"] = np.einsum("ij,jkp->ikp", rot, corners)
    c.write(str(dst))
    return dst


# -- defect 1: the lab's vertical ----------------------------------------------------------

@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_y_up_lab_gives_the_z_up_forces_and_cop(tmp_path, kind):
    src = tmp_path / "zup.c3d"
    plates = two_plates(kind)
    write_c3d(src, kind, plates, seed=40 + kind)
    yup = rotated_lab(src, tmp_path / "yup.c3d", Z_TO_Y_UP)
    a, b = load_forces(src), load_forces(yup)
    assert a.provenance_extra["lab_vertical_axis"] == "+Z"
    assert b.provenance_extra["lab_vertical_axis"] == "+Y"
    check_plates(b, plates, ("floor_left", "floor_right"))  # Fz and COP against the built-in loading
    for role in a.plates:
        np.testing.assert_allclose(b.plates[role].fz_n, a.plates[role].fz_n, rtol=0, atol=1e-6 * BW_N)
        np.testing.assert_allclose(plate_cop_mm(b.plates[role]), plate_cop_mm(a.plates[role]), atol=1e-6)


def test_x_up_lab_turns_the_cop_into_its_horizontal_axes(tmp_path):
    src = tmp_path / "zup.c3d"
    plates = one_plate(2)
    write_c3d(src, 2, plates, seed=3)
    xup = load_forces(rotated_lab(src, tmp_path / "xup.c3d", Z_TO_X_UP))
    assert xup.provenance_extra["lab_vertical_axis"] == "+X"
    pf = xup.plates["floor_left"]
    np.testing.assert_allclose(pf.fz_n, plates[0]["f_n"], rtol=0, atol=2e-4 * BW_N)
    # vertical lab frame of an x-up lab: x = lab Y (= the z-up lab's y), y = lab Z (= the z-up lab's −x)
    cop = plate_cop_mm(pf)
    loaded = pf.fz_n >= 20.0
    px, py = plates[0]["p_lab_mm"]
    np.testing.assert_allclose(cop[loaded, 0], py, atol=0.05)
    np.testing.assert_allclose(cop[loaded, 1], -px, atol=0.05)


def test_tilted_and_inconsistent_plates_are_refused(tmp_path):
    src = tmp_path / "zup.c3d"
    write_c3d(src, 2, two_plates(2), seed=4)
    a = math.radians(30.0)
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
    with pytest.raises(ForceImportError, match="tilted 30.0°"):
        load_forces(rotated_lab(src, tmp_path / "tilted.c3d", tilt))
    c = ezc3d.c3d(str(src))
    corners = np.asarray(c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"], dtype=float)
    corners[:, :, 1] = Z_TO_Y_UP @ corners[:, :, 1]  # plate 2 surveyed in other axes
    c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"] = corners
    c.write(str(tmp_path / "mixed.c3d"))
    with pytest.raises(ForceImportError, match="different lab axes"):
        load_forces(tmp_path / "mixed.c3d")


# -- defect 3: cut or garbled files ------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.5, 0.9, None])
def test_truncated_file_is_refused(tmp_path, fraction):
    src = tmp_path / "whole.c3d"
    write_c3d(src, 2, one_plate(2), seed=8)
    data = src.read_bytes()
    # the data's end from the header words: data start block, 1 point + 60 analog values a frame, float32
    data_start = int.from_bytes(data[16:18], "little")
    end = (data_start - 1) * 512 + 325 * (4 * 1 + 60) * 4
    assert end <= len(data)
    cut = tmp_path / "cut.c3d"
    cut.write_bytes(data[:int(len(data) * fraction) if fraction else end - 1])  # None: one byte short
    with pytest.raises(ForceImportError, match=r"cut.c3d: truncated C3D file: the header declares 325 frames"):
        load_forces(cut)


def test_whole_file_reads_with_every_sample(tmp_path):
    src = tmp_path / "whole.c3d"
    write_c3d(src, 2, one_plate(2), seed=8)
    assert load_forces(src).n_samples == 3250


@pytest.mark.parametrize("value", [2.4e38, 4.0e4, -3.5e4])
def test_physically_impossible_force_is_refused(tmp_path, value):
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=9)
    c = ezc3d.c3d(str(src))
    c["data"]["analogs"][0, 2, 1700] = value  # one garbled Fz sample
    c.write(str(tmp_path / "garbled.c3d"))
    with pytest.raises(ForceImportError, match="garbled.c3d: force platform 1: force of .* beyond any force plate"):
        load_forces(tmp_path / "garbled.c3d")


@pytest.mark.parametrize("bit", [0x20, 0x10, 0x08])
def test_one_flipped_data_byte_is_refused(tmp_path, bit):
    """One flipped exponent bit of a float Fz sample on the plateau: ×2^64, ×2^32 or ×2^16."""
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=9)
    data = bytearray(src.read_bytes())
    start = (int.from_bytes(data[16:18], "little") - 1) * 512
    frame_bytes = (4 * 1 + 60) * 4  # one point (x, y, z, residual), 10 samples × 6 channels, float32
    frame, sample, channel = 200, 3, 2  # on the body-weight plateau, the Fz channel
    at = start + frame * frame_bytes + 16 + (sample * 6 + channel) * 4 + 3  # little-endian: sign and exponent
    data[at] ^= bit
    (tmp_path / "flipped.c3d").write_bytes(bytes(data))
    with pytest.raises(ForceImportError, match="flipped.c3d: force platform 1: force of .* beyond any force plate"):
        load_forces(tmp_path / "flipped.c3d")


def test_not_a_c3d_file(tmp_path):
    p = tmp_path / "x.c3d"
    p.write_bytes(b"\x02\x00" + b"\x00" * 2000)
    with pytest.raises(ForceImportError, match="x.c3d: cannot read C3D file .*0x50"):
        load_forces(p)


# -- defect 4: a reader that crashes -----------------------------------------------------------

def test_a_crashing_reader_is_one_error(tmp_path, monkeypatch):
    """The reader child dies of a real SIGSEGV: the importer names the file and the crash."""
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=9)
    crasher = tmp_path / "crash_reader.py"
    crasher.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setattr(import_c3d, "READER", crasher)
    with pytest.raises(ForceImportError, match=r"ok.c3d: cannot read C3D file \(the C3D reader crashed with "
                                               r"signal 11"):
        load_forces(src)


def test_flipped_parameter_names_never_take_steplab_down(tmp_path):
    """A flipped byte in each USED/SCALE name (one of them makes ezc3d 1.x segfault): one line, exit 2."""
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=9)
    data = bytearray(src.read_bytes())
    param_start = (data[0] - 1) * 512
    data_start = (int.from_bytes(data[16:18], "little") - 1) * 512
    sites = [i for name in (b"USED", b"SCALE") for i in range(param_start, data_start)
             if data[i:i + len(name)] == name]
    assert len(sites) >= 4
    for k, i in enumerate(sites):
        bad = bytearray(data)
        bad[i + 1] ^= 0x20  # one bit: an upper-case letter of the name turned lower case
        path = tmp_path / f"flip{k}.c3d"
        path.write_bytes(bytes(bad))
        r = subprocess.run(steplab_cmd("analyze", str(path), "--protocol", "drop-landing", "--json"),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode in (0, 2), (i, r.returncode, r.stderr)
        if r.returncode == 2:
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and f"flip{k}.c3d" in lines[0] and "Traceback" not in r.stderr
            assert r.stdout == ""


@pytest.mark.parametrize("record", [b"\x04\x03ZERO", b"\x07\x03CORNERS"])
def test_garbled_parameter_record_does_not_exhaust_memory(tmp_path, record):
    """One flipped bit in a parameter record's length byte made ezc3d reserve ~12 GB for an 85 kB file."""
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=9)
    data = bytearray(src.read_bytes())
    i = data.find(record) - 1  # the description length of the parameter before it
    assert i > 512
    data[i] ^= 0x80
    (tmp_path / "record.c3d").write_bytes(bytes(data))
    with pytest.raises(ForceImportError, match=r"record.c3d: cannot read C3D file"):
        load_forces(tmp_path / "record.c3d")


def test_reader_memory_is_capped(tmp_path, monkeypatch):
    """With a cap far below what Python needs, a valid file fails in the child: the cap is applied there."""
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=9)
    monkeypatch.setattr(import_c3d, "READER_BASE_BYTES", 1 << 20)
    monkeypatch.setattr(import_c3d, "READER_BYTES_PER_FILE_BYTE", 1)
    with pytest.raises(ForceImportError, match=r"ok.c3d: cannot read C3D file"):
        load_forces(src)


# -- defect 5: analog-only files ------------------------------------------------------------------

def test_analog_only_file_uses_analog_rate(tmp_path):
    src = tmp_path / "ok.c3d"
    plates = one_plate(3)
    write_c3d(src, 3, plates, seed=12)
    c = ezc3d.c3d(str(src))
    c["parameters"]["POINT"]["RATE"]["value"] = np.array([0.0])
    c["parameters"]["POINT"]["LABELS"]["value"] = []
    c["data"]["points"] = np.zeros((4, 0, c["data"]["points"].shape[2]))
    del c["data"]["meta_points"]
    c.write(str(tmp_path / "analog_only.c3d"))
    assert ezc3d.c3d(str(tmp_path / "analog_only.c3d"))["header"]["analogs"]["frame_rate"] == 0.0
    t = load_forces(tmp_path / "analog_only.c3d")
    check_plates(t, plates, ("floor_left",))


def test_analog_rate_contradicting_the_header_is_refused(tmp_path):
    """ANALOG:RATE garbled from 1000 to 500 Hz while POINT:RATE × 10 samples per frame says 1000 Hz."""
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=24)
    data = bytearray(src.read_bytes())
    param_start, data_start = 512, (int.from_bytes(data[16:18], "little") - 1) * 512
    at = [i for i in range(param_start, data_start - 4) if data[i:i + 4] == struct.pack("<f", 1000.0)]
    assert len(at) == 1  # the one float 1000.0 of the parameters: ANALOG:RATE
    data[at[0]:at[0] + 4] = struct.pack("<f", 500.0)
    (tmp_path / "rate.c3d").write_bytes(bytes(data))
    with pytest.raises(ForceImportError, match="rate.c3d: ANALOG:RATE 500 Hz contradicts the header's analog rate "
                                               "1000 Hz"):
        load_forces(tmp_path / "rate.c3d")


# -- defect 6: unit spellings ------------------------------------------------------------------------

@pytest.mark.parametrize("units", [["NT"] * 3 + ["NTmm"] * 3, ["N"] * 3 + ["V"] * 3, ["ADC"] * 6, [""] * 6,
                                   ["Newtons"] * 3 + ["N.mm"] * 3])
def test_unit_spellings_of_real_files(tmp_path, units):
    src = tmp_path / "ok.c3d"
    plates = one_plate(2)
    write_c3d(src, 2, plates, seed=13)
    check_plates(load_forces(relabel(src, tmp_path / "units.c3d", ANALOG__UNITS=units)), plates, ("floor_left",))


def test_point_units_truncated_to_mete(tmp_path):
    """A lab in metres with POINT:UNITS cut to four characters: CORNERS, ORIGIN and N·m moments in metres."""
    src = tmp_path / "ok.c3d"
    plates = one_plate(2)
    write_c3d(src, 2, plates, seed=14)
    c = ezc3d.c3d(str(src))
    fp = c["parameters"]["FORCE_PLATFORM"]
    fp["CORNERS"]["value"] = np.asarray(fp["CORNERS"]["value"], dtype=float) / 1000.0
    fp["ORIGIN"]["value"] = np.asarray(fp["ORIGIN"]["value"], dtype=float) / 1000.0
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mete"]
    c["parameters"]["ANALOG"]["UNITS"]["value"] = ["N", "N", "N", "V", "V", "V"]  # N·(POINT:UNITS) = N·m
    c["data"]["analogs"][0, 3:6] /= 1000.0
    c.write(str(tmp_path / "metres.c3d"))
    check_plates(load_forces(tmp_path / "metres.c3d"), plates, ("floor_left",))


@pytest.mark.parametrize("change, words", [
    (dict(ANALOG__UNITS=["furlong"] * 6), "force channel 1 has the unknown unit 'furlong'"),
    (dict(ANALOG__UNITS=["N"] * 3 + ["Nparsec"] * 3), "moment channel 4 has the unknown unit 'Nparsec'"),
    (dict(POINT__UNITS=["inch"]), "POINT:UNITS 'inch' is not a length unit"),
])
def test_unknown_units_are_named(tmp_path, change, words):
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=15)
    with pytest.raises(ForceImportError, match=words):
        load_forces(relabel(src, tmp_path / "bad_units.c3d", **change))


# -- defect 7: FORCE_PLATFORM:ZERO ----------------------------------------------------------------------

BASELINE = np.array([3.0, -2.0, 16.0, 900.0, -700.0, 150.0])  # N and N·mm on the six TYPE-2 channels


def _with_baseline(tmp_path, zero) -> tuple[Path, list[dict], np.ndarray]:
    src = tmp_path / "ok.c3d"
    plates = one_plate(2)
    write_c3d(src, 2, plates, seed=16)
    c = ezc3d.c3d(str(src))
    raw = np.asarray(c["data"]["analogs"][0], dtype=float) + BASELINE[:, None]
    c["data"]["analogs"][0] = raw
    c["parameters"]["FORCE_PLATFORM"]["ZERO"]["value"] = np.array(zero)
    path = tmp_path / "baseline.c3d"
    c.write(str(path))
    return path, plates, np.asarray(ezc3d.c3d(str(path))["data"]["analogs"][0], dtype=float)


def test_zero_range_baseline_is_subtracted(tmp_path):
    path, plates, raw = _with_baseline(tmp_path, [1, 10])  # frames 1..10: the subject is still on the box
    t = load_forces(path)
    z = t.provenance_extra["c3d_zero"]
    assert z["frames"] == [1, 10] and z["applied"] == [1]
    # independent: the plate's Fz channel (plate z down: the push) less its mean over analog samples 0..99
    expected = raw[2] - raw[2, :100].mean()
    np.testing.assert_allclose(t.plates["floor_left"].fz_n, expected, atol=1e-3)
    assert z["baseline_fz_n"][0] == pytest.approx(raw[2, :100].mean(), abs=1e-3)  # about +16 N, as added
    check_plates(t, plates, ("floor_left",))  # the COP too is back where the load acts


def test_zero_range_that_is_loaded_is_not_applied(tmp_path):
    path, _, raw = _with_baseline(tmp_path, [200, 210])  # the body-weight plateau
    t = load_forces(path)
    assert t.provenance_extra["c3d_zero"]["applied"] == []
    assert "zero_range_loaded" in t.provenance_extra["flags"]
    np.testing.assert_allclose(t.plates["floor_left"].fz_n, raw[2], atol=1e-3)


@pytest.mark.parametrize("zero", [[0, 0], [1, 0], [5, 400]])
def test_zero_range_naming_no_frames_is_ignored(tmp_path, zero):
    path, _, raw = _with_baseline(tmp_path, zero)
    t = load_forces(path)
    assert "c3d_zero" not in t.provenance_extra
    np.testing.assert_allclose(t.plates["floor_left"].fz_n, raw[2], atol=1e-3)


def test_real_sample_zero_baseline():
    """The c3d.org TYPE-2 file names ZERO = 1..10: its Fz is ezc3d's less the mean of analog samples 0..199.

    (This file stores the plate's output with Fz < 0 under load: the reaction is its negative.)"""
    from conftest import shared_real_data

    path = shared_real_data() / "c3d_sample10" / "TYPE-2.C3D"
    t = load_forces(path)
    ez = ezc3d.c3d(str(path), extract_forceplat_data=True)["data"]["platform"][0]["force"][2]
    assert ez.max() > 300.0
    assert t.provenance_extra["c3d_zero"]["applied"] == [1]
    np.testing.assert_allclose(t.plates["floor_left"].fz_n, ez - ez[:200].mean(), atol=2e-4 * ez.max())


# -- defect 8: plausibility -------------------------------------------------------------------------------

def test_saturated_plate_is_counted(tmp_path):
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=17)
    c = ezc3d.c3d(str(src))
    fz = np.asarray(c["data"]["analogs"][0, 2], dtype=float)
    c["data"]["analogs"][0, 2] = np.minimum(fz, 1000.0)  # the amplifier clips the push at 1000 N
    c.write(str(tmp_path / "clipped.c3d"))
    t = load_forces(tmp_path / "clipped.c3d")
    expected = int(np.sum(np.minimum(fz, 1000.0) >= 1000.0))
    assert expected > 50
    assert t.provenance_extra["saturated_samples"] == expected
    assert "saturated_samples" not in load_forces(src).provenance_extra


def test_cop_outside_the_plate_is_flagged(tmp_path):
    src = tmp_path / "off.c3d"
    plates = one_plate(2)
    plates[0]["p_lab_mm"] = (35.0, -13_900.0)  # 13.9 m from the centre of a 400 × 600 mm plate
    write_c3d(src, 2, plates, seed=18)
    t = load_forces(src)
    assert "cop_outside_plate" in t.provenance_extra["flags"]
    assert t.provenance_extra["cop_outside_plate_samples"]["floor_left"] > 2000
    ok = tmp_path / "on.c3d"
    write_c3d(ok, 2, one_plate(2), seed=18)
    assert "flags" not in load_forces(ok).provenance_extra


@pytest.mark.parametrize("scale", [1e13, 1e-6])
def test_degenerate_corners_are_refused(tmp_path, scale):
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=19)
    c = ezc3d.c3d(str(src))
    corners = np.asarray(c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"], dtype=float)
    c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"] = corners * scale
    c.write(str(tmp_path / "degenerate.c3d"))
    with pytest.raises(ForceImportError, match="CORNERS are degenerate"):
        load_forces(tmp_path / "degenerate.c3d")


def test_non_rectangular_corners_are_refused(tmp_path):
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=19)
    c = ezc3d.c3d(str(src))
    corners = np.asarray(c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"], dtype=float)
    corners[:, 2, 0] = corners[:, 1, 0]  # two corners in one place
    c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"] = corners
    c.write(str(tmp_path / "triangle.c3d"))
    with pytest.raises(ForceImportError, match="CORNERS are degenerate"):
        load_forces(tmp_path / "triangle.c3d")


# -- defect 9: more plates than roles ------------------------------------------------------------------------

def test_walkway_plates_left_out(tmp_path):
    src = tmp_path / "walkway.c3d"
    pl = two_plates(2)
    spare = [dict(rot=pl[0]["rot"], centre_mm=(200.0 + 600.0 * k, 1200.0, 0.0), p_lab_mm=(0.0, 0.0), frac=0.0,
                  origin_mm=pl[0]["origin_mm"]) for k in range(4)]
    plates = [spare[0], pl[0], pl[1], spare[1], spare[2], spare[3]]
    write_c3d(src, 2, plates, seed=21)
    with pytest.raises(ForceImportError, match=r"6 plates found; .*- for a plate to leave out"):
        load_forces(src)
    t = load_forces(src, plates="-,floor_left,floor_right,-,-,-")
    check_plates(t, pl, ("floor_left", "floor_right"))
    assert t.provenance_extra["ignored_plates"] == [1, 4, 5, 6]
    with pytest.raises(ForceImportError, match="names 3 plates but the file has 6"):
        load_forces(src, plates="-,floor_left,floor_right")


def test_child_reader_is_cheap_and_isolated(tmp_path):
    """The reader child imports ezc3d and NumPy only: it runs without steplab on its path."""
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=22)
    out = tmp_path / "out.npz"
    r = subprocess.run([sys.executable, "-I", str(import_c3d.READER), str(src), str(out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        assert z["analogs"].shape == (6, 3250)
    assert RATE_HZ == 1000.0


def test_unforeseen_parameter_values_are_still_one_import_error(tmp_path):
    """A NaN channel number or plate type: a ForceImportError naming the file, not another exception."""
    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, one_plate(2), seed=23)
    for name, value in (("FORCE_PLATFORM__CHANNEL", np.full((6, 1), np.nan)),
                        ("FORCE_PLATFORM__TYPE", np.array([np.nan]))):
        c = ezc3d.c3d(str(src))
        group, param = name.split("__")
        c["parameters"][group][param]["value"] = value
        c["parameters"][group][param]["type"] = 4  # float
        c.write(str(tmp_path / "nan.c3d"))
        with pytest.raises(ForceImportError, match="nan.c3d: "):
            load_forces(tmp_path / "nan.c3d")


def test_random_bit_flips_in_header_and_parameters_are_one_line_or_a_result(tmp_path, capsys):
    """60 seeded single-bit flips in the header and parameter blocks: exit 2 with one line naming the file, or a
    result; never a signal (the reader is a child), a traceback or a warning."""
    from steplab.cli import main

    src = tmp_path / "ok.c3d"
    write_c3d(src, 2, two_plates(2), seed=25)
    data = src.read_bytes()
    end = (int.from_bytes(data[16:18], "little") - 1) * 512
    rng = np.random.default_rng(2026)
    refused = 0
    for k in range(60):
        bad = bytearray(data)
        i = int(rng.integers(0, end))
        bad[i] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flip{k}.c3d"
        path.write_bytes(bytes(bad))
        rc = main(["analyze", str(path), "--protocol", "drop-landing", "--json"])
        out, err = capsys.readouterr()
        assert rc in (0, 2), (i, rc, err)
        if rc == 2:
            refused += 1
            lines = err.strip().splitlines()
            assert len(lines) == 1 and f"flip{k}.c3d" in lines[0], (i, err)
            assert out == ""
        else:
            json.loads(out)
        path.unlink()
    assert refused >= 5, refused  # flips in the structure are caught, not analysed
