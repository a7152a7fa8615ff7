"""Shared by the export tests: simulated trials with their analysis, and patient histories.

A trial is made the honest way, in process: the simulated rig (``simulate_trial``: subject
physics, hidden cell offsets, gains and noise) gives raw counts, the empty rig gives the
tare, a stretch of samples is removed as a transmission gap, the trial is written as a
real trial file and analysed exactly as ``steplab analyze --json`` does.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import numpy as np

from steplab.acquisition.rig import default_rig
from steplab.acquisition.sim_rig import simulate_trial
from steplab.acquisition.sim_subject import Subject
from steplab.acquisition.trial_file import Trial, read_trial, write_trial
from steplab.calibration.arrays import CalibrationArrays, nominal_calibration
from steplab.cmd_analyze import analyze_file
from steplab.records.export_model import ExportSubject, ExportTrial

RATE_HZ = 1000.0
NAME = "Johanna Quendelmeyer"
BIRTH = dt.date(1961, 7, 23)
RIG_SERIAL = "RIGSN-778812"
DEVICE_SERIAL = "DEVSN-99431"
STARTED = "2026-03-04T10:11:12.000+00:00"
GAP = (7300, 25)  # 25 samples lost at timeline position 7300


def _calibration_dict(cal: CalibrationArrays) -> dict:
    return {"calibration_id": cal.calibration_id, "calibration_hash": cal.calibration_hash,
            "plate_roles": list(cal.plate_roles), "channel_index": cal.channel_index.tolist(),
            "offsets_counts": cal.offsets_counts.tolist(), "linear": cal.linear.tolist(),
            "quadratic": cal.quadratic.tolist(), "time_since_tare_s": 12.0}


@functools.lru_cache(maxsize=8)
def _simulated(scenario: str, seconds: float, seed: int, asymmetry: float, involved: str | None):
    rig = default_rig(sample_rate_hz=RATE_HZ, serial=RIG_SERIAL)
    nominal = nominal_calibration(rig)
    empty, _ = simulate_trial(rig, None, "empty", 2.0, RATE_HZ, seed=seed)
    cal = CalibrationArrays(nominal.plate_roles, nominal.channel_index, empty.mean(axis=0)[nominal.channel_index],
                            nominal.linear, nominal.quadratic, calibration_id=f"cal-sim-{seed}")
    subject = Subject(involved_limb=involved, asymmetry=asymmetry)
    counts, truth = simulate_trial(rig, subject, scenario, seconds, RATE_HZ, seed=seed)
    return rig, cal, counts, truth


def make_trial_file(path: Path, scenario: str = "step-down", seconds: float = 20.0, seed: int = 3,
                    gap: tuple[int, int] | None = GAP, asymmetry: float = 0.0, involved: str | None = None) -> Path:
    """A simulated trial file with an embedded tared calibration, device info and (optionally) a gap."""
    rig, cal, counts, _ = _simulated(scenario, seconds, seed, asymmetry, involved)
    index = np.arange(counts.shape[0], dtype=np.int64)
    keep = np.ones(counts.shape[0], dtype=bool)
    gaps = []
    if gap is not None:
        keep[gap[0]:gap[0] + gap[1]] = False
        gaps = [{"at_sample": gap[0], "length": gap[1]}]
    meta = {
        "started_at": STARTED,
        "software_version": "test",
        "device": {"address": "/dev/pts/7", "info": {"serial": DEVICE_SERIAL, "firmware": "1.2"}},
        "calibration": _calibration_dict(cal),
        "journal": "journal-abc.bin",
        "quality": {"frames": 100, "samples": int(keep.sum()), "lost_samples": int((~keep).sum()), "crc_errors": 0,
                    "gaps": gaps, "saturated_samples": 0},
    }
    trial = Trial(counts=np.ascontiguousarray(counts[keep]), sample_index=index[keep], sample_rate_hz=RATE_HZ,
                  rig=rig, meta=meta)
    return write_trial(path, trial)


def make_export_trial(path: Path, trial_id: str = "T1", protocol: str = "step-down", **kw) -> ExportTrial:
    """A trial file made by :func:`make_trial_file`, analysed like ``steplab analyze --json``."""
    f = make_trial_file(path, scenario=protocol, **kw)
    analysis = analyze_file(str(f), protocol=protocol).to_json_dict()
    return ExportTrial(trial_id=trial_id, protocol=protocol, trial=read_trial(f), analysis=analysis,
                       protocol_version=1, lead=None, result_version=1,
                       analysis_params=dict(analysis["provenance"].get("params") or {"protocol": protocol}))


def subjects() -> tuple[ExportSubject, ExportSubject]:
    """(pseudonymised, identified) versions of the same patient."""
    return (ExportSubject.pseudonymised("PT-0042", involved="left", birth_year=1961),
            ExportSubject.identified_as("PT-0042", NAME, BIRTH, involved="left"))
