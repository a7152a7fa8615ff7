"""C3D export round trip: a simulated step-down trial → C3D → ezc3d and a plain-NumPy reader → same forces and COP.

The NumPy reader below is written from the C3D file format (c3d.org user guide): the
512-byte header, the parameter section (groups and parameters), the float data blocks,
and the FORCE_PLATFORM TYPE-2 definition (forces and moments about the plate origin,
ORIGIN, CORNERS).  It shares no code with ezc3d or with steplab's importer.
"""

from __future__ import annotations

import struct
from pathlib import Path

import ezc3d
import numpy as np
import pytest
from _export_helpers import BIRTH, DEVICE_SERIAL, GAP, NAME, RIG_SERIAL, make_export_trial, subjects

from steplab.dsp import analyze_forces
from steplab.records.export_c3d import MAX_C3D_FRAMES, c3d_framing, point_frame_ratio, write_trial_c3d
from steplab.records.export_csv import ExportError
from steplab.records.importers import load_forces, plate_cop_mm

ROLES = ("box", "floor_left", "floor_right")


# -- an independent C3D reader (Intel byte order, float data, as ezc3d writes) -----------------------

def read_c3d_numpy(path: Path) -> tuple[dict, dict, np.ndarray]:
    """(header, parameters {GROUP: {NAME: value}}, analog data (channels, samples) after scaling)."""
    raw = path.read_bytes()
    param_block, magic = raw[0], raw[1]
    assert magic == 0x50
    words = struct.unpack("<256h", raw[:512])
    n_points, analog_per_frame, first, last = words[1], words[2], words[3], words[4]
    scale = struct.unpack("<f", raw[12:16])[0]
    data_start = words[8]
    analog_sub = words[9]
    frame_rate = struct.unpack("<f", raw[20:24])[0]
    assert scale < 0, "float data expected"
    off = (param_block - 1) * 512
    assert raw[off + 3] == 84, "Intel processor type expected"
    pos = off + 4
    groups: dict[int, str] = {}
    params: dict[str, dict] = {}
    pending: list[tuple[int, str, object]] = []
    while True:
        nchars = abs(struct.unpack("<b", raw[pos:pos + 1])[0])
        gid = struct.unpack("<b", raw[pos + 1:pos + 2])[0]
        if nchars == 0:
            break
        name = raw[pos + 2:pos + 2 + nchars].decode("ascii")
        p = pos + 2 + nchars
        nxt = struct.unpack("<h", raw[p:p + 2])[0]
        body = p + 2
        if gid < 0:
            groups[-gid] = name
        else:
            kind = struct.unpack("<b", raw[body:body + 1])[0]
            ndim = raw[body + 1]
            dims = list(raw[body + 2:body + 2 + ndim])
            d0 = body + 2 + ndim
            count = int(np.prod(dims)) if ndim else 1
            size = abs(kind) * count
            blob = raw[d0:d0 + size]
            if kind == -1:
                if ndim <= 1:
                    value: object = [blob.decode("ascii").rstrip()]
                else:
                    w = dims[0]
                    value = [blob[i * w:(i + 1) * w].decode("ascii").rstrip() for i in range(count // w)] if w else []
            else:
                dt = {1: "<i1", 2: "<i2", 4: "<f4"}[kind]
                arr = np.frombuffer(blob, dtype=dt).astype(np.float64)
                value = arr.reshape(dims[::-1]).T if ndim > 1 else arr  # C3D arrays are column-major
            pending.append((gid, name, value))
        if nxt == 0:
            break
        pos = p + nxt
    for gid, name, value in pending:
        params.setdefault(groups[gid], {})[name] = value
    n_ch = analog_per_frame // analog_sub
    n_frames = last - first + 1
    per_frame = 4 * n_points + analog_per_frame
    data = np.frombuffer(raw, dtype="<f4", count=per_frame * n_frames, offset=(data_start - 1) * 512)
    data = data.reshape(n_frames, per_frame)[:, 4 * n_points:]
    analog = data.reshape(n_frames * analog_sub, n_ch).T.astype(np.float64)
    a = params["ANALOG"]
    offset = np.asarray(a["OFFSET"])[:n_ch]
    ch_scale = np.asarray(a["SCALE"])[:n_ch]
    gen = float(np.asarray(a["GEN_SCALE"]).ravel()[0])
    analog = (analog - offset[:, None]) * ch_scale[:, None] * gen
    header = {"points": n_points, "analog_rate_hz": frame_rate * analog_sub, "frame_rate_hz": frame_rate}
    return header, params, analog


def numpy_plates(params: dict, analog: np.ndarray) -> list[dict]:
    """TYPE-2 plates by the C3D definition: reaction Fz (up, N) and COP in the lab (mm), per plate."""
    fp = params["FORCE_PLATFORM"]
    n = int(fp["USED"][0])
    out = []
    for i in range(n):
        assert int(fp["TYPE"][i]) == 2
        ch = np.asarray(fp["CHANNEL"])[:, i].astype(int) - 1
        f, m = analog[ch[0:3]], analog[ch[3:6]] / 1000.0   # N, N·m about the plate origin (plate axes)
        d = np.asarray(fp["ORIGIN"])[:, i] / 1000.0         # plate origin → surface centre
        m_c = m + np.cross(f.T, d).T                         # moment about the surface centre
        corners = np.asarray(fp["CORNERS"])[:, :, i]
        ex = corners[:, 0] - corners[:, 1]
        ey = corners[:, 0] - corners[:, 3]
        ex, ey = ex / np.linalg.norm(ex), ey / np.linalg.norm(ey)
        rot = np.column_stack((ex, ey, np.cross(ex, ey)))
        centre = corners.mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cop_p = np.vstack((-m_c[1] / f[2] * 1000.0, m_c[0] / f[2] * 1000.0, np.zeros(f.shape[1])))
        cop_lab = centre[:, None] + rot @ cop_p
        f_lab = rot @ f
        out.append({"fz_up_n": -f_lab[2], "cop_mm": cop_lab[:2], "centre": centre})
    return out


# -- the trial ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("c3d")
    et = make_export_trial(d / "trial.npz")
    pseudo, identified = subjects()
    c3d = write_trial_c3d(d / "trial.c3d", et, pseudo, body_mass_kg=71.5)
    c3d_id = write_trial_c3d(d / "trial-identified.c3d", et, identified, body_mass_kg=71.5)
    ours = load_forces(d / "trial.npz")  # the forces steplab's analysis of the trial uses
    return et, c3d, c3d_id, ours


def test_ezc3d_reads_three_platforms_with_our_forces_and_cop(exported):
    et, c3d, _, ours = exported
    c = ezc3d.c3d(str(c3d), extract_forceplat_data=True)
    plats = c["data"]["platform"]
    assert len(plats) == 3
    rig = et.trial.rig
    n = ours.n_samples
    assert n == et.trial.n_samples + GAP[1]  # the lost stretch is on the C3D timeline (interpolated)
    for plate, role in zip(plats, ROLES, strict=True):
        pf = ours.plates[role]
        peak = float(np.max(np.abs(pf.fz_n)))
        assert peak > 300.0
        force = np.asarray(plate["force"])
        assert force.shape == (3, n)
        np.testing.assert_allclose(-force[2], pf.fz_n, rtol=0, atol=2e-6 * peak + 1e-4)  # float32 storage
        np.testing.assert_allclose(force[:2], 0.0, atol=1e-9)
        cop = plate_cop_mm(pf)
        loaded = ~np.isnan(cop[:, 0])
        assert loaded.sum() > 1000
        centre = np.array(rig.plate(role).centre_mm)
        ez_cop = np.asarray(plate["center_of_pressure"])
        np.testing.assert_allclose(ez_cop[0, loaded], cop[loaded, 0] + centre[0], atol=0.01)
        np.testing.assert_allclose(ez_cop[1, loaded], cop[loaded, 1] + centre[1], atol=0.01)
        np.testing.assert_allclose(ez_cop[2, loaded], centre[2], atol=1e-6)  # on the plate's top surface
    assert c["parameters"]["PROCESSING"]["Bodymass"]["value"][0] == pytest.approx(71.5)


def test_an_independent_numpy_reader_gets_the_same_forces_and_cop(exported):
    et, c3d, _, ours = exported
    header, params, analog = read_c3d_numpy(c3d)
    assert header["analog_rate_hz"] == pytest.approx(1000.0)
    assert params["POINT"]["UNITS"] == ["mm"]
    plates = numpy_plates(params, analog)
    assert len(plates) == 3
    for got, role in zip(plates, ROLES, strict=True):
        pf = ours.plates[role]
        peak = float(np.max(np.abs(pf.fz_n)))
        np.testing.assert_allclose(got["fz_up_n"], pf.fz_n, rtol=0, atol=2e-6 * peak + 1e-4)
        cop = plate_cop_mm(pf)
        loaded = ~np.isnan(cop[:, 0])
        centre = np.array(et.trial.rig.plate(role).centre_mm)
        np.testing.assert_allclose(got["centre"], centre, atol=1e-4)
        np.testing.assert_allclose(got["cop_mm"][0, loaded], cop[loaded, 0] + centre[0], atol=0.01)
        np.testing.assert_allclose(got["cop_mm"][1, loaded], cop[loaded, 1] + centre[1], atol=0.01)
    # the lost samples are marked in the Received channel and listed in STEPLAB
    labels = params["ANALOG"]["LABELS"]
    received = analog[labels.index("Received")]
    first = int(et.trial.sample_index[0])
    lost = np.flatnonzero(received == 0.0) + first
    np.testing.assert_array_equal(lost, np.arange(GAP[0], GAP[0] + GAP[1]))
    assert params["STEPLAB"]["GAP_AT"][0] == GAP[0] and params["STEPLAB"]["GAP_LENGTH"][0] == GAP[1]
    assert params["PROCESSING"]["Bodymass"][0] == pytest.approx(71.5)


def test_events_carry_the_reps_times_and_limb_context(exported):
    et, c3d, _, _ = exported
    c = ezc3d.c3d(str(c3d))
    ev = c["parameters"]["EVENT"]
    labels, contexts = list(ev["LABELS"]["value"]), list(ev["CONTEXTS"]["value"])
    times = np.asarray(ev["TIMES"]["value"])
    t_s = times[0] * 60.0 + times[1]
    assert int(ev["USED"]["value"][0]) == len(labels) == len(contexts) == t_s.size
    reps = et.analysis["reps"]
    assert len(reps) >= 2 and {r["lead"] for r in reps} == {"left", "right"}
    for rep in reps:
        ctx = rep["lead"].capitalize()
        m = rep["metrics"]
        expected = {"Onset": rep["t_onset_s"], "Foot Strike": rep["t_contact_s"],
                    "Peak Force": rep["t_contact_s"] + m["time_to_peak_s"],
                    "Arrest": rep["t_contact_s"] + m["landing_phase_duration_s"],
                    "Stabilisation": rep["t_contact_s"] + m["time_to_stabilization_s"]}
        for label, t in expected.items():
            hits = [k for k in range(len(labels)) if labels[k] == label and contexts[k] == ctx
                    and abs(t_s[k] - t) < 1e-5]
            assert len(hits) == 1, (label, ctx, t)
    # events in time order: onset < contact < peak < arrest for each rep
    assert np.all(np.diff(t_s) >= 0)


def test_analysing_the_c3d_gives_the_trials_reps_and_metrics(exported):
    et, c3d, _, _ = exported
    loaded = load_forces(c3d)
    assert loaded.source_format == "c3d" and list(loaded.plates) == list(ROLES)
    again = analyze_forces(loaded.plates, loaded.rate_hz, "step-down").to_json_dict()
    ref = et.analysis
    assert len(again["reps"]) == len(ref["reps"]) >= 2
    assert again["body_weight_n"] == pytest.approx(ref["body_weight_n"], rel=0.01)
    compared = 0
    for a, b in zip(ref["reps"], again["reps"], strict=True):
        assert a["lead"] == b["lead"]
        assert b["t_onset_s"] == pytest.approx(a["t_onset_s"], rel=0.01)
        assert b["t_contact_s"] == pytest.approx(a["t_contact_s"], rel=0.01)
        assert set(a["metrics"]) == set(b["metrics"])
        for name, va in a["metrics"].items():
            vb = b["metrics"][name]
            assert (va is None) == (vb is None), name
            if va is not None:
                assert vb == pytest.approx(va, rel=0.01, abs=1e-9), name
                compared += 1
    assert compared >= 20


def test_pseudonymised_c3d_has_no_name_birth_date_or_serials(exported):
    _, c3d, c3d_id, _ = exported
    blob = c3d.read_bytes()
    for secret in (NAME, BIRTH.isoformat(), RIG_SERIAL, DEVICE_SERIAL, "2026-03-04"):
        assert secret.encode() not in blob, secret
    assert b"PT-0042" in blob
    ident = c3d_id.read_bytes()
    assert NAME.encode() in ident and BIRTH.isoformat().encode() in ident and RIG_SERIAL.encode() in ident


def test_an_existing_file_is_never_replaced(exported, tmp_path):
    et, _, _, _ = exported
    out = tmp_path / "out"
    out.mkdir()
    target = out / "x.c3d"
    target.write_bytes(b"keep")
    with pytest.raises(ExportError, match="already exists"):
        write_trial_c3d(target, et, subjects()[0])
    assert target.read_bytes() == b"keep"
    assert sorted(p.name for p in out.iterdir()) == ["x.c3d"]  # no temporary left behind
    with pytest.raises(ExportError, match="does not exist"):
        write_trial_c3d(tmp_path / "missing" / "x.c3d", et, subjects()[0])


@pytest.mark.parametrize(("n", "rate", "ratio"), [(20000, 1000.0, 10), (19999, 1000.0, 1), (8000, 4000.0, 40),
                                                  (1001, 1000.0, 1), (600, 1200.0, 12)])
def test_frame_ratio_divides_the_samples(n, rate, ratio):
    assert point_frame_ratio(n, rate) == ratio
    assert n % ratio == 0


@pytest.mark.parametrize(("n", "rate"), [(70001, 1000.0), (65536, 1000.0), (300007, 4000.0), (20000, 1000.0)])
def test_long_trials_fit_the_c3d_frame_count(n, rate):
    ratio, pad = c3d_framing(n, rate)
    assert (n + pad) % ratio == 0 and (n + pad) // ratio <= MAX_C3D_FRAMES and 0 <= pad < ratio
    assert pad == 0 or (ratio == round(rate / 100) and n % ratio)


def test_a_trial_too_long_for_c3d_is_refused_in_one_line():
    with pytest.raises(ExportError, match="too long for a C3D file"):
        c3d_framing(1000 * 3600, 1000.0)


def test_a_long_trial_round_trips_every_sample(tmp_path):
    """70 001 samples at 1 kHz: ezc3d would stop at frame 65 535 if the frames were not grouped."""
    from _export_helpers import make_export_trial

    et = make_export_trial(tmp_path / "long.npz", "LONG", protocol="step-down", seconds=70.001, seed=11, gap=None)
    assert et.trial.n_samples == 70001
    out = write_trial_c3d(tmp_path / "long.c3d", et, subjects()[0])
    c = ezc3d.c3d(str(out), extract_forceplat_data=True)
    fz = -np.asarray(c["data"]["platform"][1]["force"])[2]
    ours = load_forces(tmp_path / "long.npz").plates["floor_left"].fz_n
    assert fz.size == 70010  # padded to whole 10-sample frames
    np.testing.assert_allclose(fz[:70001], ours, atol=2e-6 * np.abs(ours).max() + 1e-4)
    received = np.asarray(c["data"]["analogs"])[0, -1]
    assert received[:70001].all() and not received[70001:].any()
    assert int(c["parameters"]["STEPLAB"]["END_PADDING"]["value"][0]) == 9


def test_steplab_analyze_reads_the_exported_c3d_like_the_trial(exported):
    import json
    import subprocess

    from conftest import steplab_cmd

    et, c3d, _, _ = exported
    r = subprocess.run(steplab_cmd("analyze", str(c3d), "--protocol", "step-down", "--json"), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["provenance"]["source_format"] == "c3d"
    assert [x["lead"] for x in got["reps"]] == [x["lead"] for x in et.analysis["reps"]]
    for a, b in zip(et.analysis["reps"], got["reps"], strict=True):
        assert b["t_contact_s"] == pytest.approx(a["t_contact_s"], rel=0.01)
        assert b["metrics"]["landing_peak_force_bw"] == pytest.approx(a["metrics"]["landing_peak_force_bw"], rel=0.01)


def test_drop_landing_events_export_the_lead_plates_peak_only():
    from steplab.records._export_events import rep_events

    rep = {"lead": "right", "t_onset_s": 1.0, "t_contact_s": 2.0, "flags": [],
           "metrics": {"time_to_peak_s_right": 0.05, "time_to_peak_s_left": 0.04, "landing_phase_duration_s": 0.3,
                       "time_to_stabilization_s": 0.9}}
    ev = rep_events({"reps": [rep, {**rep, "flags": ["lead_override_contradicted"]}, {**rep, "lead": None}]})
    first = [(e.kind, e.context, round(e.time_s, 9)) for e in ev if e.rep == 1]
    assert first == [("onset", "Right", 1.0), ("contact", "Right", 2.0), ("peak", "Right", 2.05),
                     ("arrest", "Right", 2.3), ("stabilisation", "Right", 2.9)]
    assert not [e for e in ev if e.rep in (2, 3) and e.kind == "peak"]
    assert {e.context for e in ev if e.rep == 3} == {"General"}
    assert rep_events({"reps": [rep]}, rep_accepted=[False]) == []
