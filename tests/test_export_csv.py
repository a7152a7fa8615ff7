"""CSV trial export: metadata header, raw counts as received, forces and COP from an independent NumPy calibration."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from _export_helpers import BIRTH, DEVICE_SERIAL, GAP, NAME, RIG_SERIAL, STARTED, make_export_trial, subjects

from steplab.records.export_csv import ExportError, write_trial_csv


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("csv")
    et = make_export_trial(d / "trial.npz")
    pseudo, identified = subjects()
    return et, write_trial_csv(d / "trial.csv", et, pseudo), write_trial_csv(d / "trial-id.csv", et, identified)


def _read(path):
    header, rows = {}, []
    gaps = []
    with open(path, encoding="utf-8", newline="") as fh:
        lines = fh.read().splitlines()
    body = [ln for ln in lines if not ln.startswith("#")]
    for ln in lines:
        if ln.startswith("# ") and ": " in ln:
            k, v = ln[2:].split(": ", 1)
            if k == "gap":
                gaps.append(v)
            else:
                header[k] = v
    reader = csv.reader(body)
    cols = next(reader)
    rows = list(reader)
    return header, gaps, cols, rows


def _col(cols, rows, name) -> np.ndarray:
    j = cols.index(name)
    return np.array([float(r[j]) if r[j] != "" else np.nan for r in rows])


def test_rows_hold_the_received_counts_and_their_timeline(exported):
    et, path, _ = exported
    header, gaps, cols, rows = _read(path)
    t = et.trial
    assert len(rows) == t.n_samples
    assert gaps == [f"at_sample={GAP[0]} length={GAP[1]}"]
    assert header["lost_samples"] == str(GAP[1]) and header["protocol"] == "step-down" and header["patient"] == "PT-0042"
    assert cols[:2] == ["time_s", "sample_index"]
    np.testing.assert_array_equal(_col(cols, rows, "sample_index").astype(np.int64), t.sample_index)
    np.testing.assert_allclose(_col(cols, rows, "time_s"), t.sample_index / t.sample_rate_hz, atol=1e-6)
    for plate in t.rig.plates:
        for cell in plate.cells:
            np.testing.assert_array_equal(_col(cols, rows, f"{cell.name}_counts").astype(np.int64),
                                          t.counts[:, cell.channel])


def test_forces_and_cop_follow_the_trials_own_calibration(exported):
    et, path, _ = exported
    _, _, cols, rows = _read(path)
    cal = et.trial.meta["calibration"]
    ci = np.asarray(cal["channel_index"])
    off = np.asarray(cal["offsets_counts"])
    lin, quad = np.asarray(cal["linear"]), np.asarray(cal["quadratic"])
    counts = et.trial.counts.astype(np.float64)
    for p, role in enumerate(cal["plate_roles"]):
        c = counts[:, ci[p]] - off[p]          # (n, K) tared counts of this plate's cells
        fz = c @ lin[p, 0] + (c ** 2) @ quad[p, 0]
        mx = c @ lin[p, 1] + (c ** 2) @ quad[p, 1]
        my = c @ lin[p, 2] + (c ** 2) @ quad[p, 2]
        got = _col(cols, rows, f"{role}_fz_n")
        np.testing.assert_allclose(got, fz, atol=6e-5)  # written with 4 decimals
        assert np.nanmax(got) > 300
        loaded = fz >= 20.0
        x, y = _col(cols, rows, f"{role}_cop_x_mm"), _col(cols, rows, f"{role}_cop_y_mm")
        np.testing.assert_allclose(x[loaded], -my[loaded] / fz[loaded] * 1000.0, atol=6e-4)
        np.testing.assert_allclose(y[loaded], mx[loaded] / fz[loaded] * 1000.0, atol=6e-4)
        assert np.all(np.isnan(x[~loaded])) and np.all(np.isnan(y[~loaded]))  # empty below 20 N, never huge


def test_pseudonymised_csv_has_no_name_birth_date_time_or_serials(exported):
    _, path, path_id = exported
    text = path.read_text(encoding="utf-8")
    for secret in (NAME, BIRTH.isoformat(), RIG_SERIAL, DEVICE_SERIAL, STARTED[:10], "/dev/pts"):
        assert secret not in text, secret
    assert "# birth_year: 1961" in text and "# identified: no" in text
    ident = path_id.read_text(encoding="utf-8")
    for s in (NAME, BIRTH.isoformat(), RIG_SERIAL, DEVICE_SERIAL, STARTED):
        assert s in ident, s


def test_an_existing_csv_is_never_replaced(exported, tmp_path):
    et, path, _ = exported
    before = path.read_bytes()
    with pytest.raises(ExportError, match="already exists"):
        write_trial_csv(path, et, subjects()[0])
    assert path.read_bytes() == before


def test_an_uncalibrated_trial_says_so_and_uses_the_nominal_gains(exported, tmp_path):
    from steplab.records.export_model import ExportTrial

    et, _, _ = exported
    t = et.trial
    raw = type(t)(counts=t.counts, sample_index=t.sample_index, sample_rate_hz=t.sample_rate_hz, rig=t.rig,
                  meta={**t.meta, "calibration": None})
    out = write_trial_csv(tmp_path / "raw.csv", ExportTrial("U", "step-down", raw, et.analysis), subjects()[0])
    header, _, cols, rows = _read(out)
    assert header["calibration_id"] == "nominal (uncalibrated)"
    plate = t.rig.plate("floor_left")
    fz = sum(t.counts[:, c.channel].astype(float) / c.nominal_counts_per_n for c in plate.cells)
    np.testing.assert_allclose(_col(cols, rows, "floor_left_fz_n"), fz, atol=6e-5)
