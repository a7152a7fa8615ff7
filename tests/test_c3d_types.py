"""C3D force platforms of TYPE 1, 2, 3 and 4, written with ezc3d from a known loading, read back.

Each file holds a drop landing built from first principles: an unloaded stretch (the
subject still on the box, the plate below 20 N), a half-sine landing pulse that stops a
70 kg body falling from 0.30 m, then a body-weight plateau.  The subject's push on each
plate acts at a known point of its surface (with shear and a free moment), and the
analog channels of each TYPE are produced here by a forward model of the plate (the
C3D user guide's channel definitions): the importer must invert them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import ezc3d
import numpy as np
import pytest
from ezc3d import ezc3d as _swig  # parameter type codes

from steplab.records.importers import load_forces, plate_cop_mm

G = 9.80665
RATE_HZ = 1000.0
POINT_RATE_HZ = 100.0
MASS_KG, DROP_M, PULSE_S = 70.0, 0.30, 0.25
UNLOADED_S, PLATEAU_S = 1.0, 2.0
BW_N = MASS_KG * G

# plate A: x along the lab x, y against the lab y, z down (the usual AMTI mounting)
ROT_A = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
# plate B: turned 90° (plate x along lab y, plate y along lab x, z down)
ROT_B = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
CAL_DIAG = np.array([1.5, 1.6, 6.0, 740.0, 730.0, 390.0])  # N/V and N·mm/V


def profile_n() -> tuple[np.ndarray, np.ndarray]:
    """Vertical load [N] of the whole landing (before any split between plates), and the pulse mask."""
    v_td = math.sqrt(2 * G * DROP_M)
    d = v_td * math.pi / (2 * PULSE_S)  # ∫ m·D·sin(πτ/T) dτ = m·v_td: the pulse stops the fall
    n = int(round((UNLOADED_S + PULSE_S + PLATEAU_S) * RATE_HZ))
    t = np.arange(n) / RATE_HZ
    tau = t - UNLOADED_S
    f = np.where(tau >= PULSE_S, BW_N, 0.0)
    ph = (tau >= 0) & (tau < PULSE_S)
    f[ph] = MASS_KG * d * np.sin(np.pi * tau[ph] / PULSE_S) + BW_N * tau[ph] / PULSE_S
    return f, ph


def peak_of_pulse_n() -> float:
    v_td = math.sqrt(2 * G * DROP_M)
    d = v_td * math.pi / (2 * PULSE_S)
    tau = np.linspace(0.0, PULSE_S, 200_001)
    return float(np.max(MASS_KG * d * np.sin(np.pi * tau / PULSE_S) + BW_N * tau / PULSE_S))


def cal_matrix(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = np.diag(CAL_DIAG)
    k += rng.normal(0.0, 0.01, (6, 6)) * np.sqrt(np.outer(CAL_DIAG, CAL_DIAG))  # cross-talk
    return k


def plate_channels(kind: int, f_mag: np.ndarray, rot: np.ndarray, p_lab_mm: tuple[float, float],
                   origin_mm: np.ndarray, cal: np.ndarray | None) -> np.ndarray:
    """The analog channels a plate of ``kind`` outputs for the subject's push ``f_mag`` at ``p_lab_mm``.

    Push on the plate in the lab (z up): (0.05 f, −0.03 f, −f) N with a free moment of
    0.002·f N·m about the vertical.  Channels are in N, N·mm, mm (TYPE 4: volts).
    """
    f_lab = np.vstack((0.05 * f_mag, -0.03 * f_mag, -f_mag))
    t_lab = np.vstack((0 * f_mag, 0 * f_mag, 0.002 * f_mag))
    f_p, t_p = rot.T @ f_lab, rot.T @ t_lab  # plate axes
    p_p_m = rot.T @ np.array([p_lab_mm[0], p_lab_mm[1], 0.0]) / 1000.0
    if kind == 1:
        tz_nmm = t_p[2] * 1000.0  # free moment about the plate z at the COP
        return np.vstack((f_p, np.full_like(f_mag, p_p_m[0] * 1000.0), np.full_like(f_mag, p_p_m[1] * 1000.0), tz_nmm))
    if kind in (2, 4):
        # ORIGIN d points from the sensor origin O to the surface centre: the load acts at d + P from O
        r = origin_mm / 1000.0 + p_p_m
        m_o = np.cross(r[:, None], f_p, axisa=0, axisb=0, axisc=0) + t_p
        out = np.vstack((f_p, m_o * 1000.0))
        if kind == 2:
            return out
        assert cal is not None
        return np.linalg.solve(cal, out)  # the volts the matrix turns into N, N·mm
    # TYPE 3: sensors k = 1..4 in quadrants (+a,+b) (−a,+b) (−a,−b) (+a,−b), surface |az0| above them
    a, b, az0 = origin_mm[0] / 1000.0, origin_mm[1] / 1000.0, -abs(origin_mm[2]) / 1000.0
    r = p_p_m + np.array([0.0, 0.0, az0])
    m_o = np.cross(r[:, None], f_p, axisa=0, axisb=0, axisc=0) + t_p
    s, u, w = f_p[2] / 4, m_o[0] / (4 * b), m_o[1] / (4 * a)
    fz = [s + u - w, s + u + w, s - u + w, s - u - w]  # no twist: Fz1 − Fz2 + Fz3 − Fz4 = 0
    fx12, fx34 = f_p[0] / 2 - m_o[2] / (4 * b), f_p[0] / 2 + m_o[2] / (4 * b)
    fy14, fy23 = f_p[1] / 2 + m_o[2] / (4 * a), f_p[1] / 2 - m_o[2] / (4 * a)
    ch = np.vstack((fx12, fx34, fy14, fy23, *fz))
    # independent check of the distribution against the Kistler moment formulas
    assert np.allclose(b * (ch[4] + ch[5] - ch[6] - ch[7]), m_o[0])
    assert np.allclose(a * (-ch[4] + ch[5] + ch[6] - ch[7]), m_o[1])
    assert np.allclose(b * (ch[1] - ch[0]) + a * (ch[2] - ch[3]), m_o[2])
    return ch


LABELS = {1: ["FX", "FY", "FZ", "COPX", "COPY", "TZ"], 2: ["FX", "FY", "FZ", "MX", "MY", "MZ"],
          3: ["FX12", "FX34", "FY14", "FY23", "FZ1", "FZ2", "FZ3", "FZ4"], 4: ["V1", "V2", "V3", "V4", "V5", "V6"]}
UNITS = {1: ["N", "N", "N", "mm", "mm", "Nmm"], 2: ["N", "N", "N", "Nmm", "Nmm", "Nmm"], 3: ["N"] * 8, 4: ["V"] * 6}
ORIGIN = {1: (0.0, 0.0, -10.0), 2: (1.5, -0.8, -40.0), 3: (120.0, 200.0, -45.0), 4: (-1.2, 0.7, -38.0)}
SIZE_MM = (400.0, 600.0)


def _param(c, group: str, name: str, value, kind) -> None:
    c.add_parameter(group, name, value if kind == _swig.CHAR else np.asarray(value, dtype=float))
    c["parameters"][group][name]["type"] = kind
    if kind != _swig.CHAR:
        c["parameters"][group][name]["value"] = np.asarray(value)


def write_c3d(path, kind: int, plates: list[dict], seed: int = 0) -> None:
    """One C3D file; each plate: rot, centre_mm, p_lab_mm, frac (share of the load), origin_mm."""
    f_all, _ = profile_n()
    rng = np.random.default_rng(seed)
    n = f_all.size
    nch = len(LABELS[kind])
    data, labels, units, corners, origins, channels, cals = [], [], [], [], [], [], []
    for i, pl in enumerate(plates):
        f = pl["frac"] * f_all + rng.normal(0.0, 1.0, n)  # 1 N amplifier noise: the unloaded plate hovers near 0
        pl["f_n"] = f
        cal = cal_matrix(seed + i) if kind == 4 else None
        data.append(plate_channels(kind, f, pl["rot"], pl["p_lab_mm"], np.array(pl["origin_mm"]), cal))
        labels += [f"{lab}{i + 1}" for lab in LABELS[kind]]
        units += UNITS[kind]
        half = np.array(SIZE_MM) / 2
        quads = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
        corners.append(np.column_stack([np.array(pl["centre_mm"]) + pl["rot"] @ np.array([sx * half[0], sy * half[1], 0.0])
                                        for sx, sy in quads]))
        origins.append(pl["origin_mm"])
        channels.append(np.arange(1, nch + 1) + i * nch)
        if cal is not None:
            cals.append(cal)
    analogs = np.vstack(data)
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = np.array([POINT_RATE_HZ])
    c["parameters"]["ANALOG"]["RATE"]["value"] = np.array([RATE_HZ])
    c["parameters"]["POINT"]["LABELS"]["value"] = ["M1"]
    _param(c, "POINT", "UNITS", ["mm"], _swig.CHAR)
    c["parameters"]["ANALOG"]["LABELS"]["value"] = labels
    c["parameters"]["ANALOG"]["SCALE"]["value"] = np.full(len(labels), 0.5)
    c["parameters"]["ANALOG"]["OFFSET"]["value"] = np.zeros(len(labels), dtype=int)
    c["parameters"]["ANALOG"]["GEN_SCALE"]["value"] = np.array([2.0])
    _param(c, "ANALOG", "UNITS", units, _swig.CHAR)
    _param(c, "FORCE_PLATFORM", "USED", [len(plates)], _swig.INT)
    _param(c, "FORCE_PLATFORM", "TYPE", [kind] * len(plates), _swig.INT)
    _param(c, "FORCE_PLATFORM", "CHANNEL", np.column_stack(channels), _swig.INT)
    _param(c, "FORCE_PLATFORM", "CORNERS", np.stack(corners, axis=2), _swig.FLOAT)
    _param(c, "FORCE_PLATFORM", "ORIGIN", np.array(origins, dtype=float).T, _swig.FLOAT)
    if cals:
        _param(c, "FORCE_PLATFORM", "CAL_MATRIX", np.stack(cals, axis=2), _swig.FLOAT)
    n_frames = int(n * POINT_RATE_HZ / RATE_HZ)
    assert n_frames * RATE_HZ / POINT_RATE_HZ == n
    c["data"]["points"] = np.zeros((4, 1, n_frames))
    c["data"]["points"][3] = 1.0
    c["data"]["analogs"] = analogs[None, :, :]
    c.write(str(path))


def one_plate(kind: int, origin=None) -> list[dict]:
    return [dict(rot=ROT_A, centre_mm=(200.0, 300.0, 0.0), p_lab_mm=(35.0, -60.0), frac=1.0,
                 origin_mm=ORIGIN[kind] if origin is None else origin)]


def two_plates(kind: int) -> list[dict]:
    return [dict(rot=ROT_A, centre_mm=(200.0, 300.0, 0.0), p_lab_mm=(-25.0, 80.0), frac=0.6, origin_mm=ORIGIN[kind]),
            dict(rot=ROT_B, centre_mm=(700.0, 300.0, 0.0), p_lab_mm=(40.0, 15.0), frac=0.4, origin_mm=ORIGIN[kind])]


def check_plates(t, plates: list[dict], roles: tuple[str, ...]) -> None:
    assert t.source_format == "c3d" and t.rate_hz == pytest.approx(RATE_HZ)
    assert list(t.plates) == list(roles)
    for role, pl in zip(roles, plates):
        pf = t.plates[role]
        f = pl["f_n"]
        # Fz positive under load, equal to the built-in push (float32 storage; TYPE 4 through a matrix)
        np.testing.assert_allclose(pf.fz_n, f, rtol=0, atol=2e-4 * f.max())
        assert pf.fz_n.max() > 0.5 * BW_N * pl["frac"]
        cop = plate_cop_mm(pf, cop_min_force_n=20.0)
        loaded = pf.fz_n >= 20.0
        assert loaded.sum() > 2000 and (~loaded).sum() > 900
        # the COP of the point load is its position about the surface centre, in lab axes
        np.testing.assert_allclose(cop[loaded, 0], pl["p_lab_mm"][0], atol=0.05)
        np.testing.assert_allclose(cop[loaded, 1], pl["p_lab_mm"][1], atol=0.05)
        assert np.all(np.isnan(cop[~loaded]))  # unloaded: NaN, never ±1e17


@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_one_plate_force_and_cop(tmp_path, kind):
    path = tmp_path / f"type{kind}.c3d"
    plates = one_plate(kind)
    write_c3d(path, kind, plates, seed=kind)
    t = load_forces(path)
    check_plates(t, plates, ("floor_left",))
    assert t.provenance_extra["c3d_plate_types"] == [kind]
    assert t.provenance_extra["c3d_points_rate_hz"] == pytest.approx(POINT_RATE_HZ)


@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_two_plates_force_and_cop(tmp_path, kind):
    path = tmp_path / f"type{kind}_two.c3d"
    plates = two_plates(kind)
    write_c3d(path, kind, plates, seed=10 + kind)
    t = load_forces(path)
    check_plates(t, plates, ("floor_left", "floor_right"))
    t = load_forces(path, plates="floor_right,floor_left")
    check_plates(t, plates, ("floor_right", "floor_left"))


@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_agrees_with_ezc3d_platform_output_where_ezc3d_is_right(tmp_path, kind):
    """ezc3d's own force and COP (about the surface centre) for the same file.

    For TYPE 1 only ezc3d's COP and force are compared: its TYPE-1 moments have the
    opposite sign to its TYPE-2 moments, which is why the importer converts itself."""
    path = tmp_path / f"type{kind}_ez.c3d"
    plates = two_plates(kind)
    write_c3d(path, kind, plates, seed=20 + kind)
    t = load_forces(path)
    raw = ezc3d.c3d(str(path), extract_forceplat_data=True)["data"]["platform"]
    for role, pl, ez in zip(("floor_left", "floor_right"), plates, raw):
        pf = t.plates[role]
        np.testing.assert_allclose(pf.fz_n, -ez["force"][2], atol=2e-4 * pl["f_n"].max())
        loaded = pf.fz_n >= 20.0
        ours = plate_cop_mm(pf)[loaded]
        theirs = (ez["center_of_pressure"][:2] - ez["corners"].mean(axis=1)[:2, None]).T[loaded]
        np.testing.assert_allclose(ours, theirs, atol=0.05)
        if kind != 1:
            np.testing.assert_allclose(pf.mx_nm, -ez["moment"][0] / 1000.0, atol=1e-4 * pl["f_n"].max())


def test_type3_with_positive_az0_keeps_the_sensor_spacing(tmp_path):
    """A Kistler ORIGIN with az0 written as a positive depth: only az0's sign is corrected."""
    path = tmp_path / "type3_posz.c3d"
    plates = one_plate(3, origin=(120.0, 200.0, 45.0))
    write_c3d(path, 3, plates, seed=5)
    check_plates(load_forces(path), plates, ("floor_left",))


@pytest.mark.parametrize("kind", [2, 4])
def test_type2_type4_origin_with_positive_z_is_the_reversed_vector(tmp_path, kind):
    """The older AMTI description (surface-centre → origin, z > 0) of the same plate reads the same."""
    path = tmp_path / f"type{kind}_posz.c3d"
    plates = one_plate(kind)
    write_c3d(path, kind, plates, seed=7)
    c = ezc3d.c3d(str(path))
    c["parameters"]["FORCE_PLATFORM"]["ORIGIN"]["value"] = -np.asarray(c["parameters"]["FORCE_PLATFORM"]["ORIGIN"]["value"])
    c.write(str(path))
    check_plates(load_forces(path), plates, ("floor_left",))


def test_type2_moments_in_newton_metres(tmp_path):
    """ANALOG:UNITS 'Nm' on the moment channels: read as N·m, not N·(POINT:UNITS)."""
    path = tmp_path / "type2_nm.c3d"
    plates = one_plate(2)
    write_c3d(path, 2, plates, seed=6)
    c = ezc3d.c3d(str(path))
    c["data"]["analogs"][0, 3:6] /= 1000.0
    c["parameters"]["ANALOG"]["UNITS"]["value"] = ["N", "N", "N", "Nm", "Nm", "Nm"]
    c.write(str(path))
    check_plates(load_forces(path), plates, ("floor_left",))


def _analyze(path) -> dict:
    r = subprocess.run([sys.executable, "-m", "steplab.cli", "analyze", str(path), "--protocol", "drop-landing", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("kind,n_plates", [(1, 1), (3, 2), (4, 2)])
def test_cli_drop_landing_peak(tmp_path, kind, n_plates):
    path = tmp_path / f"drop_type{kind}_{n_plates}.c3d"
    plates = one_plate(kind) if n_plates == 1 else two_plates(kind)
    write_c3d(path, kind, plates, seed=30 + kind)
    d = _analyze(path)
    assert d["provenance"]["source_format"] == "c3d" and d["sample_rate_hz"] == pytest.approx(RATE_HZ)
    assert d["body_weight_n"] == pytest.approx(BW_N, rel=2e-3)  # weighed on the final quiet stance
    assert len(d["reps"]) == 1
    m = d["reps"][0]["metrics"]
    peak_bw = peak_of_pulse_n() / BW_N
    assert peak_bw > 2.0  # a real landing, well above the plateau
    for side, pl in zip(("left", "right"), plates):
        key = f"landing_peak_force_bw_{side}"  # one plate: the floor_left plate's metrics
        assert m[key] == pytest.approx(pl["frac"] * peak_bw, rel=5e-3), key
