"""``steplab analyze`` run as a real subprocess on a trial file, a C3D file and a TSV of forces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_real_data

from steplab.acquisition.rig import default_rig
from steplab.acquisition.trial_file import Trial, write_trial
from steplab.dsp import analyze_forces
from steplab.dsp.streaming import synthetic_step_down

TOP_KEYS = {"protocol", "sample_rate_hz", "body_weight_n", "body_mass_kg", "reps", "provenance"}
REP_KEYS = {"lead", "t_onset_s", "t_contact_s", "metrics", "flags"}


def real(*parts: str) -> Path:
    p = shared_real_data().joinpath(*parts)
    if not p.exists():
        pytest.fail(f"shared real data missing: {p} (the shared folder must sit beside the repository)")
    return p


def steplab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "steplab.cli", "analyze", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def check_schema(d: dict) -> None:
    assert TOP_KEYS <= set(d)
    assert isinstance(d["protocol"], str) and isinstance(d["sample_rate_hz"], float)
    assert isinstance(d["provenance"], dict)
    for rep in d["reps"]:
        assert set(rep) == REP_KEYS
        assert rep["lead"] in ("left", "right", None)
        for k in ("t_onset_s", "t_contact_s"):
            assert rep[k] is None or isinstance(rep[k], float)
        assert all(v is None or isinstance(v, float) for v in rep["metrics"].values())
        assert all(isinstance(f, str) for f in rep["flags"])


def _write_step_down_trial(path: Path) -> dict:
    rig = default_rig()
    rec = synthetic_step_down(1000.0, ("left", "right"), seed=11)
    n = rec["box"].fz_n.shape[0]
    counts = np.zeros((n, rig.channels), dtype=np.int32)
    for plate in rig.plates:
        pf = rec[plate.role]
        fz = pf.fz_n
        x = np.zeros(n) if pf.my_nm is None else -pf.my_nm / np.where(np.abs(fz) > 1e-9, fz, 1.0) * 1000.0
        for cell in plate.cells:
            # lever rule on a rectangle: share of a point load at (x, 0) carried by this corner
            share = 0.25 * (1.0 + x * np.sign(cell.x_mm) / abs(cell.x_mm))
            counts[:, cell.channel] = np.rint(fz * share * cell.nominal_counts_per_n).astype(np.int32)
    trial = Trial(counts, np.arange(n, dtype=np.int64), 1000.0, rig,
                  {"quality": {"lost_samples": 0, "crc_errors": 0, "gaps": []}, "calibration": None})
    write_trial(path, trial)
    return rec


def test_trial_file_json_matches_core(tmp_path):
    rec = _write_step_down_trial(tmp_path / "sd.steplab")
    r = steplab(tmp_path / "sd.steplab", "--protocol", "step-down", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    check_schema(d)
    assert d["protocol"] == "step-down" and d["sample_rate_hz"] == 1000.0
    assert d["provenance"]["calibration_id"] == "nominal"
    assert d["provenance"]["rig_hash"] == default_rig().hash()
    ref = analyze_forces(rec, 1000.0, "step-down")
    assert len(d["reps"]) == len(ref.reps) == 2
    assert d["reps"][0]["lead"] == "left"
    assert d["body_weight_n"] == pytest.approx(ref.body_weight_n, rel=1e-5)
    for got, exp in zip(d["reps"], ref.reps):
        if exp.t_contact_s is None or got["t_contact_s"] is None:
            continue  # core issue: plate contact one sample before the floor-total run (reported)
        assert got["lead"] == exp.lead
        assert got["t_contact_s"] == pytest.approx(exp.t_contact_s, abs=1e-3)
        for name in ("landing_peak_force_bw", "lowering_duration_s", "trail_support_at_contact_pct"):
            assert got["metrics"][name] == pytest.approx(exp.metrics[name], rel=1e-3), name
        # box COP sway: the synthetic lowering sways the box COP ±12 mm (range 24 mm)
        assert got["metrics"]["box_cop_ml_range_mm"] == pytest.approx(24.0, abs=1.5)


def test_c3d_and_tsv_json():
    r = steplab(real("c3d_sample10", "TYPE-2.C3D"), "--protocol", "balance", "--json", "--body-mass", "40")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    check_schema(d)
    assert d["sample_rate_hz"] == 1200.0 and d["body_mass_kg"] == 40.0
    assert d["provenance"]["source_format"] == "c3d"
    tsv = real("dual_plate_jumps", "Dual-DJ-Fz.txt")
    r = steplab(tsv, "--rate", "1000", "--protocol", "drop-landing", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    check_schema(d)
    assert d["sample_rate_hz"] == 1000.0
    assert len(d["reps"]) >= 1
    # independent check: body weight close to the mean of the last second of the raw file
    raw = np.loadtxt(tsv, skiprows=1)
    assert d["body_weight_n"] == pytest.approx(raw[-1000:].sum(axis=1).mean(), rel=0.02)
    m = d["reps"][0]["metrics"]
    peak_left = raw[:, 0].max() / d["body_weight_n"]
    assert m["landing_peak_force_bw_left"] == pytest.approx(peak_left, rel=0.05)
    assert {"landing_peak_force_bw_right", "landing_peak_force_bw_symmetry_index_pct"} <= set(m)
    r = steplab(tsv, "--rate", "1000", "--protocol", "drop-landing")
    assert r.returncode == 0 and "landing_peak_force_bw_left" in r.stdout and "{" not in r.stdout


@pytest.mark.parametrize("args, words", [
    (["{missing}"], "no such file"),
    (["{tsv}"], "--rate"),
    (["{tsv}", "--rate", "abc"], "--rate"),
    (["{tsv}", "--rate", "-1"], "--rate"),
    (["{c3d}", "--rate", "1000"], "contradicts"),
    (["{tsv}", "--rate", "1000", "--protocol", "jump"], "--protocol"),
    (["{tsv}", "--rate", "1000", "--lead", "middle"], "--lead"),
    (["{tsv}", "--rate", "1000", "--plates", "box,floor_left,floor_right"], "split evenly"),
    (["{tsv}", "--rate", "1000", "--body-mass", "2"], "--body-mass"),
    (["{empty}"], "empty"),
    (["{corrupt}"], "cannot read C3D"),
    (["{unknown}"], "unknown file type"),
])
def test_errors_are_one_line(tmp_path, args, words):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "corrupt.c3d").write_bytes(b"\x00" * 600)
    (tmp_path / "x.dat").write_text("1 2\n3 4\n")
    subs = {"missing": tmp_path / "nope.csv", "tsv": real("dual_plate_jumps", "Dual-SJ-Fz.txt"),
            "c3d": real("c3d_sample10", "TYPE-4.C3D"), "empty": tmp_path / "empty.csv",
            "corrupt": tmp_path / "corrupt.c3d", "unknown": tmp_path / "x.dat"}
    before = sorted(p.name for p in tmp_path.iterdir())
    r = steplab(*[a.format(**subs) for a in args], "--json")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and words in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # writes nothing


# -- issue 12: other labs' files; several files in one process ------------------------------------------

def _c3d_pair(tmp_path: Path, kind: int, two: bool) -> tuple[Path, Path]:
    """A C3D drop landing (z-up lab) and the same trial surveyed in a y-up lab."""
    from test_c3d_types import one_plate, two_plates, write_c3d
    from test_import_c3d import Z_TO_Y_UP, rotated_lab

    src = tmp_path / f"zup_{kind}.c3d"
    write_c3d(src, kind, two_plates(kind) if two else one_plate(kind), seed=50 + kind)
    return src, rotated_lab(src, tmp_path / f"yup_{kind}.c3d", Z_TO_Y_UP)


@pytest.mark.parametrize("kind, two, protocol", [(2, True, "drop-landing"), (3, True, "drop-landing"),
                                                 (4, False, "balance")])
def test_y_up_copy_gives_the_same_metrics(tmp_path, kind, two, protocol):
    zup, yup = _c3d_pair(tmp_path, kind, two)
    out = []
    for path in (zup, yup):
        r = steplab(path, "--protocol", protocol, "--json")
        assert r.returncode == 0, r.stderr
        out.append(json.loads(r.stdout))
    a, b = out
    assert a["provenance"]["lab_vertical_axis"] == "+Z" and b["provenance"]["lab_vertical_axis"] == "+Y"
    assert a["body_weight_n"] == pytest.approx(b["body_weight_n"], rel=1e-9)
    assert 600.0 < a["body_weight_n"] < 800.0
    assert len(a["reps"]) == len(b["reps"]) >= 1
    assert a["flags"] == b["flags"]
    for ra, rb in zip(a["reps"], b["reps"]):
        assert ra["metrics"].keys() == rb["metrics"].keys()
        assert len(ra["metrics"]) > 3
        for k, v in ra["metrics"].items():
            if v is None:
                assert rb["metrics"][k] is None, k
            else:
                assert rb["metrics"][k] == pytest.approx(v, rel=1e-6, abs=1e-6), k


def _lines(text: str) -> list[dict]:
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def test_directory_batch_json_lines(tmp_path):
    batch = tmp_path / "lab"
    batch.mkdir()
    _c3d_pair(batch, 2, True)
    whole = (batch / "zup_2.c3d").read_bytes()
    (batch / "cut.c3d").write_bytes(whole[:len(whole) // 2])
    (batch / "notes.md").write_text("not a recording")
    tsv = real("dual_plate_jumps", "Dual-DJ-Fz.txt")
    r = steplab(batch, tsv, "--protocol", "drop-landing", "--rate", "1000", "--json")
    # the C3D files carry their own rate (1000 Hz): --rate agrees with them
    assert r.returncode == 2, r.stderr
    rows = _lines(r.stdout)
    assert [Path(d["file"]).name for d in rows] == ["cut.c3d", "yup_2.c3d", "zup_2.c3d", tsv.name]
    assert "truncated" in rows[0]["error"] and set(rows[0]) == {"file", "error"}
    for d in rows[1:]:
        assert "error" not in d
        check_schema(d)
    assert rows[1]["body_weight_n"] == pytest.approx(rows[2]["body_weight_n"], rel=1e-9)  # y-up = z-up
    assert rows[1]["provenance"]["source_file"] == "yup_2.c3d"
    err = r.stderr.strip().splitlines()
    assert len(err) == 2 and "cut.c3d" in err[0] and "truncated" in err[0] and "1 of 4 files failed" in err[1]
    assert "Traceback" not in r.stderr


def test_batch_all_good_exit_zero_and_progress_on_stderr(tmp_path):
    zup, yup = _c3d_pair(tmp_path, 1, False)
    r = steplab(zup, yup, "--protocol", "drop-landing", "--json", "--progress")
    assert r.returncode == 0, r.stderr
    rows = _lines(r.stdout)  # stdout holds only the JSON lines
    assert [d["file"] for d in rows] == [str(zup), str(yup)]
    assert "steplab analyze" in r.stderr and "2/2" in r.stderr  # the tqdm bar
    r = steplab(zup, yup, "--protocol", "drop-landing")
    assert r.returncode == 0 and r.stderr == ""  # not a terminal: no bar
    assert f"== {zup} ==" in r.stdout and "landing_peak_force_bw" in r.stdout


def test_single_file_json_has_no_file_key(tmp_path):
    zup, _ = _c3d_pair(tmp_path, 2, False)
    r = steplab(zup, "--protocol", "drop-landing", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert "file" not in d and TOP_KEYS <= set(d) and len(r.stdout.splitlines()) == 1


def test_100_hz_file_names_the_file_and_the_option(tmp_path):
    p = tmp_path / "slow.csv"
    t = np.arange(1500) / 100.0
    rng = np.random.default_rng(1)
    f = 700.0 + rng.normal(0.0, 2.0, t.size)
    np.savetxt(p, np.column_stack([t, f]), delimiter=",", header="time,Fz", comments="")
    r = steplab(p, "--protocol", "balance", "--json")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "slow.csv" in line and "--force-cutoff" in line and "100 Hz" in line and "\n" not in line
    r = steplab(p, "--protocol", "balance", "--json", "--force-cutoff", "40")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["provenance"]["params"]["force_cutoff_hz"] == 40.0


@pytest.mark.parametrize("level_n, flags", [(35.0, {"body_weight_implausible"}),
                                            (5760.0, {"body_weight_implausible"}),
                                            (735.0, set())])
def test_body_weight_outside_human_range_is_flagged(tmp_path, level_n, flags):
    p = tmp_path / "stance.csv"
    t = np.arange(4000) / 1000.0
    rng = np.random.default_rng(2)
    f = level_n + rng.normal(0.0, 0.5, t.size)
    np.savetxt(p, np.column_stack([t, f]), delimiter=",", header="time,Fz", comments="")
    r = steplab(p, "--protocol", "balance", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["body_weight_n"] == pytest.approx(level_n, rel=0.01)
    assert {"body_weight_implausible"} & set(d["flags"]) == flags
    assert {"body_weight_implausible"} & set(d["provenance"]["flags"]) == flags


def test_saturated_plates_are_flagged(tmp_path):
    """Two plates stuck at 2,883 N: a 5,766 N 'body weight', saturated and implausible."""
    p = tmp_path / "stuck.csv"
    t = np.arange(3000) / 1000.0
    f = np.full(t.size, 2883.0)
    np.savetxt(p, np.column_stack([t, f, f]), delimiter=",", header="time,FP1,FP2", comments="")
    r = steplab(p, "--protocol", "balance", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"saturated", "body_weight_implausible"} <= set(d["flags"])
    assert d["provenance"]["saturated_samples"] == 6000
