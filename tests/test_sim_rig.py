"""The simulated rig: streaming counts, truth, physics identities, calibration robot, speed."""

from __future__ import annotations

import numpy as np
import pytest

from steplab.acquisition.rig import default_rig, split_box_rig
from steplab.acquisition.sim_cells import cop_from_cell_loads
from steplab.acquisition.sim_movements import SCENARIOS
from steplab.acquisition.sim_rig import SimulatedRigModel, simulate_trial
from steplab.acquisition.sim_subject import G_M_S2, Subject
from steplab.constants import ADC_FULL_SCALE_COUNTS

RIGS = {"12ch": default_rig(), "16ch": split_box_rig()}


def _newtons(model: SimulatedRigModel, counts: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Counts → cell loads with the hidden parameters inverted (what a perfect calibration gives)."""
    return model.hidden.loads_from_counts(counts, t_s)


@pytest.mark.parametrize("rig_id", list(RIGS))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_runs_on_both_rigs(rig_id, scenario):
    rig = RIGS[rig_id]
    counts, truth = simulate_trial(rig, Subject(), scenario, 15.0, 500.0, seed=1)
    assert counts.shape == (7500, rig.channels) and counts.dtype == np.int32
    assert truth.fz_n.shape == (7500, len(rig.plates))
    assert np.all(np.isfinite(truth.fz_n)) and np.all(truth.fz_n >= -1e-9)
    total = truth.total_fz_n
    if scenario == "empty":
        assert np.all(total == 0.0)
    else:
        # the subject is always somewhere on the rig: the first second is quiet stance at body weight
        assert total[:500].mean() == pytest.approx(Subject().body_weight_n, rel=0.01)
    if scenario in ("step-down", "forward-step-down", "drop-landing", "squat", "balance"):
        assert truth.events and all(ev.protocol == scenario for ev in truth.events)


def test_step_down_lands_on_the_lead_plate_and_box_load_splits_on_the_split_box():
    counts, truth = simulate_trial(split_box_rig(), Subject(), "step-down", 12.0, 1000.0, seed=3)
    ev = truth.events[0]
    lead_plate = truth.fz(f"floor_{ev.lead}")
    trail_plate = truth.fz(f"floor_{ev.stance}")
    i_c = int(round(ev.t_contact_s * 1000.0))
    assert lead_plate[i_c + 5] > 20.0 and trail_plate[i_c + 5] == 0.0
    # quiet stance on the split box: both halves carry about half the weight
    bl, br = truth.fz("box_left")[:800].mean(), truth.fz("box_right")[:800].mean()
    assert bl == pytest.approx(br, rel=0.1) and bl + br == pytest.approx(Subject().body_weight_n, rel=0.01)
    # while the trail limb lowers the body, only its half of the box is loaded
    i_mid = int(round(0.5 * (ev.t_onset_s + ev.t_contact_s) * 1000.0))
    trail_half = truth.fz(f"box_{ev.stance}")[i_mid]
    lead_half = truth.fz(f"box_{ev.lead}")[i_mid]
    assert trail_half > 500.0 and lead_half == 0.0


def test_impulse_momentum_across_the_lowering_at_the_output_rate():
    subject = Subject(body_mass_kg=64.0)
    rate = 2000.0
    _, truth = simulate_trial(default_rig(), subject, "step-down", 20.0, rate, seed=2)
    assert len(truth.events) >= 2
    m = subject.body_mass_kg
    for ev in truth.events:
        i0, i1 = int(round(ev.t_onset_s * rate)), int(round(ev.t_contact_s * rate))
        f = truth.total_fz_n[i0:i1 + 1] - subject.body_weight_n
        impulse = np.trapezoid(f, dx=1.0 / rate)
        dv = truth.com_v_m_s[i1] - truth.com_v_m_s[i0]
        assert impulse == pytest.approx(m * dv, abs=0.01 * m * abs(dv) + 0.02)
        assert -dv == pytest.approx(ev.touchdown_speed_m_s, abs=0.02)
        # and across the whole rep (quiet to quiet): no net momentum change
        j0, j1 = int(round(ev.t_start_s * rate)), int(round(ev.t_end_s * rate)) - 1
        whole = np.trapezoid(truth.total_fz_n[j0:j1 + 1] - subject.body_weight_n, dx=1.0 / rate)
        assert whole == pytest.approx(m * (truth.com_v_m_s[j1] - truth.com_v_m_s[j0]), abs=0.05)


def test_quiet_stance_counts_invert_to_body_weight_and_the_true_cop():
    subject = Subject(body_mass_kg=77.0)
    rig = default_rig()
    model = SimulatedRigModel(rig, subject, "quiet", seed=4, rate_hz=1000.0)
    counts = model.read_counts(5000)
    truth = model.truth
    loads = _newtons(model, counts, truth.t_s)
    box = rig.plate("box")
    fz, x, y = cop_from_cell_loads(box, loads[:, list(box.channels)])
    bw = 77.0 * G_M_S2
    assert truth.fz("box").mean() == pytest.approx(bw, rel=0.002)
    assert fz.mean() == pytest.approx(truth.fz("box").mean(), abs=0.5)
    assert np.sqrt(np.mean((fz - truth.fz("box")) ** 2)) < 1.0  # noise and a little ringing only
    assert np.sqrt(np.mean((x - truth.cop_x_mm[:, 0]) ** 2)) < 1.0
    assert np.sqrt(np.mean((y - truth.cop_y_mm[:, 0]) ** 2)) < 1.0
    assert np.all(np.isnan(truth.cop_x_mm[:, 1]))  # nobody on the floor plates: NaN, never huge


@pytest.mark.parametrize("blocks", [1, 7, 1000])
def test_streaming_in_blocks_gives_the_same_counts_as_one_call(blocks):
    rig = split_box_rig()
    n = 1400 if blocks == 1 else 5000
    whole = SimulatedRigModel(rig, Subject(), "drop-landing", seed=11, rate_hz=4000.0).read_counts(n)
    model = SimulatedRigModel(rig, Subject(), "drop-landing", seed=11, rate_hz=4000.0)
    parts = []
    done = 0
    while done < n:
        k = min(blocks, n - done)
        parts.append(model.read_counts(k))
        done += k
    assert np.array_equal(np.concatenate(parts), whole)
    other = SimulatedRigModel(rig, Subject(), "drop-landing", seed=12, rate_hz=4000.0).read_counts(n)
    assert not np.array_equal(other, whole)


def test_calibration_robot_masses_are_static_loads_at_their_position():
    rig = default_rig()
    model = SimulatedRigModel(rig, Subject(), "empty", seed=6, rate_hz=1000.0)
    model.read_counts(500)
    model.place_mass("floor_left", 40.0, -120.0, 20.0)
    counts = model.read_counts(1500)
    t = model.truth.t_s[-1500:]
    loads = _newtons(model, counts, t)
    plate = rig.plate("floor_left")
    fz, x, y = cop_from_cell_loads(plate, loads[:, list(plate.channels)])
    settled = slice(800, 1500)  # after the 0.3 s settling transient
    assert fz[settled].mean() == pytest.approx(20.0 * G_M_S2, abs=0.3)
    assert x[settled].mean() == pytest.approx(40.0, abs=0.5)
    assert y[settled].mean() == pytest.approx(-120.0, abs=0.5)
    assert np.abs(loads[settled][:, list(rig.plate("box").channels)].sum(axis=1).mean()) < 0.3
    model.clear_masses()
    counts = model.read_counts(1000)
    loads = _newtons(model, counts, model.truth.t_s[-1000:])
    assert abs(loads[600:, list(plate.channels)].sum(axis=1).mean()) < 0.3
    with pytest.raises(ValueError, match="no plate"):
        model.place_mass("trampoline", 0.0, 0.0, 10.0)
    with pytest.raises(ValueError, match="outside"):
        model.place_mass("box", 900.0, 0.0, 10.0)
    with pytest.raises(ValueError, match="mass_kg"):
        model.place_mass("box", 0.0, 0.0, -1.0)


def test_an_overload_saturates_at_the_24_bit_limit():
    model = SimulatedRigModel(default_rig(), Subject(), "empty", seed=0, rate_hz=1000.0)
    model.place_mass("box", 0.0, 0.0, 1000.0)
    counts = model.read_counts(1000)
    assert np.all(np.abs(counts[600:, :4]) == ADC_FULL_SCALE_COUNTS)
    assert np.all(np.abs(counts[:, 4:]) < ADC_FULL_SCALE_COUNTS)


def test_rate_change_and_reset_keep_the_movement_continuous():
    model = SimulatedRigModel(default_rig(), Subject(), "squat", seed=1, rate_hz=1000.0)
    model.read_counts(3000)
    model.set_rate(250.0)
    counts = model.read_counts(500)
    assert counts.shape == (500, 12)
    model.reset()
    model.read_counts(100)
    truth = model.truth
    dt = np.diff(truth.t_s)
    np.testing.assert_allclose(dt[:2999], 1e-3)
    np.testing.assert_allclose(dt[3000:], 4e-3)
    assert model.time_s == pytest.approx(3.0 + 600 * 4e-3)
    assert np.max(np.abs(np.diff(truth.com_z_m))) < 0.01  # no jump in the COM
    assert model.samples_since_reset == 100 and model.samples_generated == 3600
    with pytest.raises(ValueError, match="rate_hz"):
        model.set_rate(0.0)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown scenario"):
        SimulatedRigModel(default_rig(), Subject(), "cartwheel")
    model = SimulatedRigModel(default_rig())
    with pytest.raises(ValueError, match="n_samples"):
        model.read_counts(-3)
    with pytest.raises(ValueError, match="seconds"):
        simulate_trial(default_rig(), Subject(), "quiet", 0.0)


def test_truth_history_is_bounded_for_a_long_running_device():
    model = SimulatedRigModel(default_rig(), Subject(), "quiet", seed=0, rate_hz=1000.0, keep_truth_s=2.0)
    for _ in range(10):
        model.read_counts(1000)
    t = model.truth.t_s
    assert t[-1] == pytest.approx(9.999) and t[0] >= 9.999 - 3.0


def test_sixteen_channels_at_4khz_stream_in_blocks_without_a_seam():
    """Block-wise reading (as the device server does) gives the same counts as one long read.

    How much faster than real time this runs is a benchmark figure (`steplab bench`,
    benchmarks/bench_sim.py), not a test: a busy machine changes it.
    """
    a = SimulatedRigModel(split_box_rig(), Subject(), "session", seed=0, rate_hz=4000.0)
    b = SimulatedRigModel(split_box_rig(), Subject(), "session", seed=0, rate_hz=4000.0)
    whole = a.read_counts(8000)
    blocks = np.concatenate([b.read_counts(400) for _ in range(20)])
    assert whole.shape == (8000, 16) and whole.dtype == np.int32
    np.testing.assert_array_equal(blocks, whole)
