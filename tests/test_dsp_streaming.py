"""Streaming analysis: causal filter state, rep detection latency and agreement with the batch core."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from steplab.dsp import AnalysisParams, PlateForces, analyze_forces
from steplab.dsp import _streaming_kernels as SK
from steplab.dsp.streaming import StreamingAnalyzer, measure_streaming, synthetic_step_down

RATE = 1000.0
EXACT_METRIC_RTOL = 1e-6
DRIFT_ATOL_M_S = 0.01


def _blocks(rec: dict[str, PlateForces], step: int):
    n = next(iter(rec.values())).fz_n.shape[0]
    for s in range(0, n, step):
        yield s + min(step, n - s), {
            r: PlateForces(pf.fz_n[s:s + step],
                           None if pf.mx_nm is None else pf.mx_nm[s:s + step],
                           None if pf.my_nm is None else pf.my_nm[s:s + step]) for r, pf in rec.items()}


def test_sos_block_carries_state_like_one_long_sosfilt():
    rng = np.random.default_rng(3)
    x = rng.normal(500.0, 50.0, (2, 1234))
    sos = signal.butter(2, 100.0 / 500.0, output="sos")
    zi0 = signal.sosfilt_zi(sos)
    ref = np.vstack([signal.sosfilt(sos, x[p], zi=zi0 * x[p, 0])[0] for p in range(2)])
    zi = np.ascontiguousarray(zi0[None, :, :] * x[:, 0][:, None, None])
    out = np.empty_like(x)
    edges = [0, 1, 7, 100, 101, 555, 1000, 1234]  # uneven block sizes, including 1-sample blocks
    for a, b in zip(edges[:-1], edges[1:]):
        y = np.empty((2, b - a))
        SK.sos_block(np.ascontiguousarray(x[:, a:b]), np.ascontiguousarray(sos), zi, y)
        out[:, a:b] = y
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("leads", [("left", "right", "left"), ("right", "right", "left", "left")])
def test_streaming_reps_match_batch_and_arrive_within_100ms(leads):
    rec = synthetic_step_down(RATE, leads, seed=len(leads))
    batch = analyze_forces(rec, RATE, "step-down")
    assert len(batch.reps) == len(leads)  # the batch sees every rep (sanity of the recording)
    sa = StreamingAnalyzer(RATE, tuple(rec), "step-down")
    got = []
    for n_seen, blk in _blocks(rec, 10):
        for rep in sa.push(blk):
            got.append((n_seen, rep))
    assert sa.finish() == []
    assert sa.body_weight_n == pytest.approx(batch.body_weight_n, rel=1e-12)
    assert len(got) == len(batch.reps)
    ends = [t for name, t in sa.events if name == "rep_end"]
    for (n_seen, rep), ref in zip(got, batch.reps):
        assert rep.lead == ref.lead
        assert rep.t_onset_s == pytest.approx(ref.t_onset_s, abs=1e-9)
        assert rep.t_contact_s == pytest.approx(ref.t_contact_s, abs=1e-9)
        assert rep.flags == ref.flags
        assert set(rep.metrics) == set(ref.metrics)
        for name, v in ref.metrics.items():
            if name == "integration_drift_m_s":
                assert rep.metrics[name] == pytest.approx(v, abs=DRIFT_ATOL_M_S)
            elif v is None:
                assert rep.metrics[name] is None, name
            else:
                assert rep.metrics[name] == pytest.approx(v, rel=EXACT_METRIC_RTOL, abs=1e-9), name
        # reported by the push holding the rep's end: within 100 ms of data after it
        end_s = max(t for t in ends if t <= n_seen / RATE)
        assert 0.0 <= n_seen / RATE - end_s <= 0.100
        if ref.t_contact_s is not None:
            # the end comes after the landing has stabilised (stabilisation hold of 1 s)
            assert end_s >= ref.t_contact_s + ref.metrics["time_to_stabilization_s"] + 1.0


def test_live_events_and_velocity():
    rec = synthetic_step_down(RATE, ("left", "right"), noise_n=0.5)
    sa = StreamingAnalyzer(RATE, tuple(rec), "step-down")
    v_min = 0.0
    for _, blk in _blocks(rec, 10):
        sa.push(blk)
        if sa.velocity_m_s is not None:
            v_min = min(v_min, sa.velocity_m_s)
    names = [n for n, _ in sa.events]
    assert names[:4] == ["movement", "contact_left", "arrest", "rep_end"]
    t = dict(sa.events[:4])
    # synthetic: lowering starts at 2.0 s, contact at 2.6 s; arrest 0.25 s of braking later at most
    assert 2.0 < t["movement"] < 2.6
    assert t["contact_left"] == pytest.approx(2.6, abs=0.01)
    assert t["contact_left"] < t["arrest"] < t["contact_left"] + 0.25
    # weighing ends at 3 s, so the first rep is caught up in one block; during the second rep
    # the live velocity reaches the analytic peak descent speed 2·0.6/π m/s
    assert -v_min == pytest.approx(2 * 0.6 / np.pi, rel=0.02)


def test_live_left_share_for_biofeedback():
    n = 3000
    rec = {"floor_left": np.full(n, 412.0), "floor_right": np.full(n, 274.0)}
    sa = StreamingAnalyzer(RATE, ("floor_left", "floor_right"), "squat")
    assert sa.left_share_pct is None
    for s in range(0, n, 10):
        sa.push({k: v[s:s + 10] for k, v in rec.items()})
    assert sa.left_share_pct == pytest.approx(412.0 / 686.0 * 100.0, rel=1e-9)
    assert sa.body_weight_n == pytest.approx(686.0)
    sa.push({"floor_left": np.zeros(200), "floor_right": np.zeros(200)})
    assert sa.left_share_pct is None  # stepped off: the causal filter has settled below 20 N


def test_drop_landing_matches_batch_with_body_mass():
    # two landings from the box onto both plates: off the plates, impact, quiet stance, walk off
    rate, m, g = RATE, 70.0, 9.80665
    bw = m * g
    rng = np.random.default_rng(5)
    pieces = []
    for k, lead_first in enumerate(("left", "right")):
        off = np.zeros(int(1.5 * rate))
        t = np.arange(int(0.3 * rate)) / rate
        impact = bw * (1.0 + 2.0 * np.sin(np.pi * t / 0.3) ** 2 * np.exp(-t / 0.1))
        quiet = np.full(int(2.5 * rate), bw)
        leave = bw * np.linspace(1.0, 0.0, int(0.5 * rate)) if k == 0 else np.zeros(0)  # ends standing
        first = np.concatenate([off, impact, quiet, leave]) * 0.5
        lag = 5  # the first foot lands 5 ms before the other
        second = np.concatenate([np.zeros(lag), first[:-lag]])
        pieces.append((first, second) if lead_first == "left" else (second, first))
    fl = np.concatenate([p[0] for p in pieces])
    fr = np.concatenate([p[1] for p in pieces])
    fl = fl + rng.normal(0, 0.5, fl.shape[0])
    fr = fr + rng.normal(0, 0.5, fr.shape[0])
    rec = {"floor_left": PlateForces(fl), "floor_right": PlateForces(fr)}
    batch = analyze_forces(rec, rate, "drop-landing", body_mass_kg=m)
    assert len(batch.reps) == 2
    sa = StreamingAnalyzer(rate, tuple(rec), "drop-landing", body_mass_kg=m)
    got = []
    for _, blk in _blocks(rec, 10):
        got.extend(sa.push(blk))
    got.extend(sa.finish())
    assert [r.lead for r in got] == [r.lead for r in batch.reps] == ["left", "right"]
    for rep, ref in zip(got, batch.reps):
        assert rep.t_contact_s == pytest.approx(ref.t_contact_s, abs=1e-9)
        for name in ("landing_peak_force_bw_left", "landing_peak_force_bw_right", "time_to_peak_s_left",
                     "impulse_100ms_bw_s_right", "peak_deceleration_m_s2"):
            assert rep.metrics[name] == pytest.approx(ref.metrics[name], rel=1e-6), name


def test_argument_validation():
    with pytest.raises(ValueError, match="rate_hz"):
        StreamingAnalyzer(0.0, ("box",))
    with pytest.raises(ValueError, match="protocol"):
        StreamingAnalyzer(RATE, ("box",), "jump")
    with pytest.raises(ValueError, match="roles"):
        StreamingAnalyzer(RATE, ("box", "wall"))
    with pytest.raises(ValueError, match="Nyquist"):
        StreamingAnalyzer(100.0, ("box",), params=AnalysisParams())
    sa = StreamingAnalyzer(RATE, ("box", "floor_left"))
    with pytest.raises(ValueError, match="missing"):
        sa.push({"box": np.ones(10)})
    with pytest.raises(ValueError, match="NaN"):
        sa.push({"box": np.array([1.0, np.nan]), "floor_left": np.ones(2)})
    with pytest.raises(ValueError, match="samples"):
        sa.push({"box": np.ones(3), "floor_left": np.ones(2)})


def test_measure_streaming_block_time():
    res = measure_streaming(block_ms=10.0, reps=2)
    assert res["block_ms"] == 10.0 and res["reps"] == 2
    assert res["blocks"] > 1000
    assert 0.0 < res["p50_ms"] <= res["p99_ms"] <= res["max_ms"]
    # the target (p99 well under 1 ms per 10 ms block) is a figure of `steplab bench`, not a test
    # assertion: the suite must hold on a slow, busy machine (it read 3.5 ms under load)
